"""Dataset snapshots in the Hugging Face hub layout: find them, read their parquet, fetch them.

Offline, `--data-dir DIR` (or HARNESS_DATA_DIR) holds `DIR/<org>/<name>/`, laid out exactly as
the hub repo (what `hf download --repo-type dataset ORG/NAME --local-dir DIR/ORG/NAME` writes).
Online, the same files come from the hub at the spec's pinned revision through huggingface_hub
(into its cache). Either way the loaders read the same parquet files.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.task import DatasetRef, TaskSpec

log = logging.getLogger(__name__)

Downloader = Callable[..., str]


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or os.environ.get(
        "HF_DATASETS_OFFLINE", "0"
    ).lower() in ("1", "true", "yes")


def prefetch_hint(task_names: Iterable[str], data_dir: str | os.PathLike | None) -> str:
    target = str(data_dir) if data_dir is not None else "DIR"
    return f"python -m harness prefetch --tasks {','.join(task_names)} --data-dir {target}"


def _is_task(name: str) -> bool:
    from harness.registry import task_specs

    try:
        return name in task_specs()
    except HarnessError:
        return False


def default_data_dir() -> Path:
    """Where online runs keep the snapshots they download (same layout as --data-dir)."""
    from harness.constants import harness_home

    return harness_home() / "data"


def snapshot_dir(ref: DatasetRef, data_dir: str | os.PathLike | None) -> Path | None:
    """`data_dir/<org>/<name>` when it exists."""
    if data_dir is None:
        return None
    path = Path(data_dir) / ref.path
    return path if path.is_dir() else None


def dataset_root(spec: TaskSpec, data_dir: str | os.PathLike | None) -> Path:
    """The local folder with a task's dataset repo files (see `fetch_root`)."""
    return fetch_root(
        spec.dataset, data_dir, name=spec.name, files=spec.files, archives=spec.archives
    )


def fetch_root(
    ref: DatasetRef,
    data_dir: str | os.PathLike | None,
    *,
    name: str,
    files: Sequence[str] | None = None,
    archives: Sequence[str] = (),
) -> Path:
    """The local folder with the dataset repo's files.

    A snapshot in `data_dir` (or in the default data dir) is used as it is. A `data_dir` means
    offline snapshots, so a dataset missing there is an error and the network is not touched;
    so is one missing while HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set. Otherwise the repo is
    fetched at the pinned revision into the default data dir first.
    """
    for folder in (data_dir, default_data_dir()):
        local = snapshot_dir(ref, folder)
        if local is not None:
            return local
    revision = ref.revision or "main"
    hint = prefetch_hint([name], data_dir)
    if not _is_task(name):  # a training source: prefetch names tasks only
        where = Path(str(data_dir) if data_dir is not None else "DIR") / ref.path
        hint = (
            f"hf download {ref.path} --repo-type dataset --revision {revision} --local-dir {where}"
        )
    if data_dir is not None:
        raise HarnessError(
            f"dataset {ref.path} (revision {revision}) is not in --data-dir {str(data_dir)!r} "
            f"(looked for {Path(data_dir) / ref.path}); fetch it where the hub is reachable "
            f"with: {hint}, or drop --data-dir to download it into {default_data_dir()}"
        )
    if _offline():
        raise HarnessError(
            f"dataset {ref.path} (revision {revision}) is not downloaded and no --data-dir was "
            f"given, and the hub is switched off (HF_HUB_OFFLINE); fetch it once with: {hint}"
        )
    target = default_data_dir()
    try:
        prefetch([(ref, files, archives)], target)
    except HarnessError as exc:
        raise HarnessError(
            f"dataset {ref.path} is not downloaded and no --data-dir was given; {exc}; fetch it "
            f"where the hub is reachable with: {hint}"
        ) from exc
    return target / ref.path


def parquet_files(root: Path, config: str | None, split: str) -> list[Path]:
    """Parquet files of one config and split, in the layouts the hub uses."""
    patterns = (
        [
            f"{config}/{split}-*.parquet",
            f"{config}/{split}/*.parquet",
            f"{config}/{split}.parquet",
            f"data/{config}/{split}-*.parquet",
            f"data/{config}-{split}-*.parquet",
        ]
        if config
        else [
            f"data/{split}-*.parquet",
            f"{split}-*.parquet",
            f"data/{split}/*.parquet",
            f"{split}/*.parquet",
        ]
    )
    for pattern in patterns:
        found = sorted(root.glob(pattern))
        if found:
            return found
    raise HarnessError(
        f"no parquet files for config {config or 'default'!r}, split {split!r} under {root} "
        f"(looked for {', '.join(patterns)}); the snapshot is incomplete: fetch it again with prefetch"
    )


def read_rows(
    files: Sequence[Path], required: Sequence[str], optional: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Rows of the parquet files as dicts; a missing required column names the column and file."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for path in files:
        names = parquet_columns(path)
        for column in required:
            if column not in names:
                raise HarnessError(
                    f"{path} has no column {column!r} (it has {', '.join(sorted(names))})"
                )
        columns = [c for c in (*required, *optional) if c in names]
        try:
            rows.extend(pq.read_table(path, columns=columns).to_pylist())
        except Exception as exc:  # pyarrow raises several types for damaged data pages
            raise HarnessError(
                f"{path} is not a readable parquet file ({exc}); fetch it again with prefetch"
            ) from exc
    return rows


def parquet_columns(path: Path) -> set[str]:
    """The column names of a parquet file, or an error naming the file when it is not one."""
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(path).names)
    except Exception as exc:  # pyarrow raises several types for files that are not parquet
        raise HarnessError(
            f"{path} is not a readable parquet file ({exc}); fetch it again with prefetch"
        ) from exc


def pick_column(files: Sequence[Path], *choices: str) -> str:
    """The first of `choices` present in the files' schema (datasets spell ids `query-id` or `query_id`)."""
    names = parquet_columns(files[0])
    for choice in choices:
        if choice in names:
            return choice
    raise HarnessError(
        f"{files[0]} has none of the columns {', '.join(choices)} (it has {', '.join(sorted(names))})"
    )


def image_reference(value: Any, root: Path) -> bytes | str | None:
    """An Image feature cell ({bytes, path}) as the bytes, or a path under the snapshot."""
    if value is None:
        return None
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        if value.get("path"):
            return str(root / value["path"])
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(root / str(value))


# ---------------------------------------------------------------- prefetch


def unzip_images(root: Path, archive: str = "images.zip", into: str = "images") -> Path | None:
    """Unzip `root/archive` into `root/into` once (a marker file per archive records completion)."""
    zipped = root / archive
    target = root / into
    marker = target / f".unzipped-{Path(archive).name}"
    if not zipped.exists():
        return None
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(zipped) as handle:
            handle.extractall(target)
    except zipfile.BadZipFile as exc:
        raise HarnessError(
            f"{zipped} is not a valid zip archive; delete it and run prefetch again"
        ) from exc
    marker.write_text("ok\n")
    return target


def prefetch_jobs(
    specs: Iterable[TaskSpec],
) -> list[tuple[DatasetRef, list[str] | None, list[str]]]:
    """One download per dataset repo and revision, with the union of what its tasks need."""
    merged: dict[tuple[str, str | None], tuple[set[str] | None, set[str]]] = {}
    for spec in specs:
        key = (spec.dataset.path, spec.dataset.revision)
        files, archives = merged.get(key, (set(), set()))
        files = None if files is None or spec.files is None else files | set(spec.files)
        merged[key] = (files, archives | set(spec.archives))
    return [
        (DatasetRef(path, revision), sorted(files) if files is not None else None, sorted(archives))
        for (path, revision), (files, archives) in merged.items()
    ]


def prefetch(
    refs: Iterable[tuple[DatasetRef, Sequence[str] | None, Sequence[str]]],
    data_dir: str | os.PathLike,
    *,
    download: Downloader | None = None,
) -> list[Path]:
    """Download each (dataset, allow_patterns, archives to unzip) into `data_dir/<org>/<name>`."""
    if download is None:
        from huggingface_hub import snapshot_download as download
    out = []
    for ref, patterns, archives in refs:
        target = Path(data_dir) / ref.path
        log.info("fetching %s@%s into %s", ref.path, ref.revision or "main", target)
        try:
            download(
                repo_id=ref.path,
                repo_type="dataset",
                revision=ref.revision,
                local_dir=str(target),
                allow_patterns=list(patterns) if patterns else None,
            )
        except HarnessError:
            raise
        except Exception as exc:
            raise HarnessError(
                f"could not download {ref.path}@{ref.revision or 'main'}: {type(exc).__name__}: {exc}"
            ) from exc
        for archive in archives:
            unzip_images(target, archive)
        out.append(target)
    return out
