"""Embedding cache: shards of item ranges, written atomically, skipped when already present.

A shard's file name carries its item range and a digest of its items' content hashes; its
directory carries a digest of everything else that changes vectors (model name, revision, args,
dtype, preprocessing, role, vector count). So a rerun finds finished shards and encodes only the
rest, and a shard never depends on which worker wrote it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from harness import faults
from harness.constants import DEFAULT_SHARD_SIZE, harness_home
from harness.distributed import Dist
from harness.errors import HarnessError
from harness.multivectors import MultiVectors, check_embeddings
from harness.protocol import Encoder, Item
from harness.results import public_mode

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
COLLAPSE_CHECK_ITEMS = 16  # shards this large are checked for collapse before being written
# Without a disk cache (--no-cache), how much of this run's embeddings stay in memory for reuse
# by later tasks of the same run.
MEMORY_CACHE_BYTES = 2 << 30


def default_cache_dir() -> Path:
    return harness_home()


def check_writable(path: str | os.PathLike, what: str) -> Path:
    """Create `path` and prove it is writable, or fail before any work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        # "File exists" from mkdir means a part of the path is a file (or a dangling link)
        blocker = next(
            (
                p
                for p in [path, *path.parents]
                if (p.is_symlink() and not p.exists()) or (p.exists() and not p.is_dir())
            ),
            None,
        )
        why = (
            f"{str(blocker)!r} is a file or a broken link, not a folder"
            if blocker is not None
            else exc.strerror
        )
        raise HarnessError(
            f"{what} {str(path)!r} is not writable ({why}); choose another with "
            f"--{what.replace(' ', '-')}"
        ) from exc
    return path


def code_digest(encoder: Encoder) -> str:
    """A digest of the source files that define the encoder: its class and every base class
    outside torch and the standard library, and its backbone's class when it has one. Editing
    an encoder's code (a researcher's own `module:factory` above all) changes its cache key, so
    vectors of the old code are never reused."""
    classes = [*type(encoder).__mro__]
    backbone = getattr(encoder, "backbone", None)
    if backbone is not None:
        classes += type(backbone).__mro__
    files = set()
    for cls in classes:
        module = getattr(cls, "__module__", "") or ""
        if module == "builtins" or module.split(".")[0] in ("torch", "typing", "abc"):
            continue
        try:
            files.add(inspect.getsourcefile(cls))
        except (TypeError, OSError):
            continue
    digest = hashlib.sha256()
    for path in sorted(f for f in files if f):
        try:
            digest.update(Path(path).read_bytes())
        except OSError:
            continue
    return digest.hexdigest()[:16]


def encoding_key(encoder: Encoder, role: str, num_vectors: int | None) -> dict[str, Any]:
    card = encoder.card
    return {
        "format": CACHE_FORMAT,
        "model": card.name,
        "family": card.family,
        "backbone": card.backbone,
        "revision": card.revision,
        "args": card.args,
        "dtype": card.dtype,
        "preprocessing": card.preprocessing,
        "role": role,
        "num_vectors": num_vectors,
        "code": code_digest(encoder),
    }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _name_digest(path: Path) -> str:
    """The items digest a shard's file name carries (`START-STOP-DIGEST.safetensors`)."""
    return path.stem.rsplit("-", 1)[-1]


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    except OSError as exc:
        raise HarnessError(
            f"cannot write to the cache folder {path.parent} ({exc.strerror or exc}); fix its "
            "permissions, or pass --cache-dir DIR or --no-cache"
        ) from None
    os.close(fd)
    try:
        # the file records which items it holds (its name's digest), so a shard moved or
        # swapped under another name is caught when read
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            tmp,
            metadata={"items": _name_digest(path)},
        )
        faults.reach("shard-write")
        os.chmod(tmp, public_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def shard_damage(path: Path, items: int, dim: int | None = None) -> str | None:
    """Why a cached shard cannot be used (unreadable, truncated, wrong contents, values that are
    not finite), or None. safetensors refuses a file shorter than its header declares; the
    values are read to check them (nothing that fails the embedding checks is ever written, so
    a NaN here is damage on disk, not the model's doing)."""
    try:
        with safe_open(path, framework="pt") as handle:
            keys = set(handle.keys())
            if keys != {"vectors", "lengths"}:
                return f"it holds {', '.join(sorted(keys)) or 'nothing'}, not vectors and lengths"
            recorded = (handle.metadata() or {}).get("items")
            if recorded is not None and recorded != _name_digest(path):
                return "it holds the vectors of other items (moved or swapped under this name)"
            vectors = handle.get_slice("vectors").get_shape()
            lengths = handle.get_slice("lengths").get_shape()
            if len(vectors) == 3 and vectors[0] == items and list(lengths) == [items]:
                if dim and vectors[2] != dim:
                    return f"its vectors have {vectors[2]} dimensions, not the model's {dim}"
                counts = handle.get_tensor("lengths")
                if items and (int(counts.min()) < 0 or int(counts.max()) > vectors[1]):
                    return f"its lengths lie outside [0, {vectors[1]}]"
                values = handle.get_tensor("vectors")
                if not bool(torch.isfinite(values).all()):
                    bad = int((~torch.isfinite(values)).any(dim=-1).any(dim=-1).sum())
                    return f"{bad} of its {items} items hold NaN or infinite values"
    except Exception as exc:  # safetensors raises its own error types, and OSError
        return f"{type(exc).__name__}: {exc}"
    if len(vectors) != 3 or vectors[0] != items or list(lengths) != [items]:
        return f"it holds vectors {list(vectors)} and lengths {list(lengths)} for {items} items"
    return None


@dataclass(frozen=True)
class EncodeRequest:
    """What to embed and how: the encoder, the items in order, their role, the batch size,
    the number of vectors asked of a non-nested encoder, and a progress bar to advance."""

    encoder: Encoder
    items: Sequence[Item]
    role: str
    batch_size: int
    num_vectors: int | None = None
    progress: Any = None


@dataclass
class Shard:
    """Items [start, stop) of one encoding: a file in the cache, or in memory without a cache."""

    start: int
    stop: int
    path: Path | None = None
    data: MultiVectors | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    def load(self) -> MultiVectors:
        if self.data is not None:
            return self.data
        shard = load_file(self.path)
        return MultiVectors(shard["vectors"], shard["lengths"])


def load_shards(shards: Sequence[Shard], dim: int, release: bool = True) -> MultiVectors:
    """The shards' vectors in item order, in memory (an empty [0, 1, dim] set for no shards).

    The result is allocated once and filled shard by shard; with `release`, a shard's own
    in-memory copy is dropped once copied, so loading peaks at the embeddings plus one shard.
    """
    if not shards:
        return MultiVectors(torch.zeros(0, 1, max(1, dim)), torch.zeros(0, dtype=torch.long))
    shapes = [_shard_shape(s) for s in shards]
    width = max(shape[1] for shape, _ in shapes)
    vectors = torch.zeros(sum(len(s) for s in shards), width, shapes[0][0][2], dtype=shapes[0][1])
    lengths = torch.zeros(len(vectors), dtype=torch.long)
    offset = 0
    for shard in shards:
        part = shard.load()
        vectors[offset : offset + len(part), : part.max_len] = part.vectors
        lengths[offset : offset + len(part)] = part.lengths
        offset += len(part)
        if release:
            shard.data = None  # the copy above is the one kept
        del part
    return MultiVectors(vectors, lengths)


def _shard_shape(shard: Shard) -> tuple[list[int], torch.dtype]:
    if shard.data is not None:
        return list(shard.data.vectors.shape), shard.data.vectors.dtype
    with safe_open(shard.path, framework="pt") as handle:
        vectors = handle.get_slice("vectors")
        return vectors.get_shape(), _DTYPES.get(vectors.get_dtype(), torch.float32)


@dataclass
class EncodeStats:
    seconds: float = 0.0
    encoded: int = 0
    cached: int = 0
    per_rank: list[int] = field(default_factory=list)  # items each rank encoded

    def add(self, done: list[tuple[float, int]], cached: int) -> None:
        """One fill's (seconds, items encoded) of every rank, and the items found cached."""
        counts = [e for _, e in done]
        self.seconds += max(s for s, _ in done)  # ranks encode side by side
        self.encoded += sum(counts)
        self.per_rank = [
            a + b for a, b in zip(self.per_rank or [0] * len(counts), counts, strict=True)
        ]
        self.cached += cached


def _shard_digest(items: Sequence[Item], shard: Shard) -> str:
    """The shard's position and content: what a shard file's name holds."""
    text = f"{shard.start}-{shard.stop}:" + "".join(
        i.content_hash for i in items[shard.start : shard.stop]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _nbytes(mv: MultiVectors) -> int:
    return mv.vectors.numel() * mv.vectors.element_size()


def _length_key(item: Item) -> tuple[int, int]:
    return (len(item.text or "") + len(item.instruction or ""), item.image is not None)


class EmbeddingCache:
    """Encodes unique items through the cache. `root=None` keeps nothing on disk."""

    def __init__(
        self,
        root: str | os.PathLike | None,
        shard_size: int = DEFAULT_SHARD_SIZE,
        refresh: bool = False,
        memory_bytes: int = MEMORY_CACHE_BYTES,
    ) -> None:
        """`refresh`: re-encode every shard once in this process, whatever the cache holds
        (`--overwrite`)."""
        self.root = Path(root) if root is not None else None
        self.shard_size = int(shard_size)
        self.refresh = refresh
        self._written: set[Path] = set()  # shards this process wrote (fresh under refresh)
        # Without a disk cache, shards encoded in this run stay in memory (least recently used
        # first out past `memory_bytes`), so items that several tasks share are encoded once.
        self.memory_bytes = memory_bytes
        self._memory: OrderedDict[tuple[str, str], MultiVectors] = OrderedDict()

    def shard_dir(self, key: dict[str, Any]) -> Path | None:
        if self.root is None:
            return None
        digest = _digest(key)
        directory = self.root / "embeddings" / digest[:2] / digest
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass  # the folder takes new files (a parent may be writable while it is not)
        except OSError as exc:
            raise HarnessError(
                f"cannot write to the cache folder {directory} ({exc.strerror or exc}); fix its "
                "permissions, or pass --cache-dir DIR or --no-cache"
            ) from None
        meta = directory / "key.json"
        if not meta.exists():
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(key, indent=1, sort_keys=True, default=str))
            os.replace(tmp, meta)
        return directory

    def shard_path(self, directory: Path, items: Sequence[Item], start: int, stop: int) -> Path:
        digest = hashlib.sha256(
            "".join(i.content_hash for i in items[start:stop]).encode()
        ).hexdigest()
        return directory / f"{start:09d}-{stop:09d}-{digest[:20]}.safetensors"

    def fill(
        self,
        request: EncodeRequest,
        *,
        stats: EncodeStats | None = None,
        dist: Dist | None = None,
        keep: bool = True,
    ) -> list[Shard]:
        """Make sure every shard of `items` exists; returns the shards in item order.

        Shards this process encodes keep their vectors in memory too (`keep`), so loading them
        reads nothing back from disk; pass keep=False when the caller will stream them instead.

        Under torch.distributed, rank 0 lists the unfinished shards, the ranks encode disjoint
        ones (round robin), and the call returns on every rank only once all are written. Only
        shards are shared, never rank numbers, so a run may resume at another world size.
        """
        stats = stats if stats is not None else EncodeStats()
        dist = dist or Dist()
        encoder, items, progress = request.encoder, request.items, request.progress
        key = encoding_key(encoder, request.role, request.num_vectors)
        directory = self.shard_dir(key)
        if directory is None and dist.enabled:
            raise HarnessError(
                "a distributed run exchanges embeddings through the cache; drop --no-cache"
            )
        shards = [
            Shard(start, min(len(items), start + self.shard_size))
            for start in range(0, len(items), self.shard_size)
        ]
        for shard in shards:
            if directory is not None:
                shard.path = self.shard_path(directory, items, shard.start, shard.stop)
        memory_key = None
        if directory is None:
            memory_key = _digest(key)
            for shard in shards:
                shard.data = self._recall((memory_key, _shard_digest(items, shard)))
        missing = dist.broadcast(self._unfinished(shards, encoder.card.dim) if dist.is_main else [])
        seconds, encoded = 0.0, 0
        for i in missing[dist.rank :: dist.world_size]:
            began = time.perf_counter()
            self._encode_shard(request, shards[i], keep)
            seconds += time.perf_counter() - began
            encoded += len(shards[i])
        if memory_key is not None:
            for i in missing:
                self._remember((memory_key, _shard_digest(items, shards[i])), shards[i].data)
        # The gather doubles as the barrier after which every shard is on disk.
        stats.add(
            dist.all_gather((seconds, encoded)),
            cached=len(items) - sum(len(shards[i]) for i in missing),
        )
        if self.refresh:  # every rank now knows these shards are fresh
            self._written.update(s.path for s in shards if s.path is not None)
        if progress is not None:
            progress.update(len(items) - encoded)
        if dist.enabled:
            absent = [s.path for s in shards if not s.path.exists()]
            if absent:
                raise HarnessError(
                    f"shard {absent[0]} written by another rank is not visible here; --cache-dir "
                    f"must be on a filesystem that every rank shares"
                )
        return shards

    def _encode_shard(self, request: EncodeRequest, shard: Shard, keep: bool) -> None:
        """Encode one shard's items, check them, then (and only then) write the shard."""
        chosen = request.items[shard.start : shard.stop]
        mv = self._encode_range(request, chosen)
        check_embeddings(
            mv,
            [item.id for item in chosen],
            model=request.encoder.card.name,
            role=request.role,
            # a few distinct items may embed alike (text-only models on items that differ
            # in their image); a collapse shows in a large shard, and in the whole set later
            collapse=len(shard) >= COLLAPSE_CHECK_ITEMS,
        )
        if shard.path is not None:
            _atomic_save({"vectors": mv.vectors, "lengths": mv.lengths}, shard.path)
            faults.reach("shard-saved")
        if keep or shard.path is None:
            shard.data = mv

    def _unfinished(self, shards: list[Shard], dim: int | None = None) -> list[int]:
        """Indices of the shards to encode: absent, to refresh, or damaged (then deleted)."""
        missing = []
        for i, s in enumerate(shards):
            if s.path is None and s.data is not None:
                continue  # encoded earlier in this run, kept in memory
            if (
                s.path is None
                or not s.path.exists()
                or (self.refresh and s.path not in self._written)
            ):
                missing.append(i)
            elif (damage := shard_damage(s.path, len(s), dim)) is not None:
                if s.path.is_dir():
                    raise HarnessError(
                        f"cache shard {s.path} is a folder, not a file; remove it (or pass "
                        "--cache-dir elsewhere) and run again"
                    )
                log.warning("cache shard %s is damaged (%s); encoding it again", s.path, damage)
                s.path.unlink(missing_ok=True)
                missing.append(i)
        return missing

    def _recall(self, key: tuple[str, str]) -> MultiVectors | None:
        found = self._memory.get(key)
        if found is not None:
            self._memory.move_to_end(key)
        return found

    def _remember(self, key: tuple[str, str], mv: MultiVectors | None) -> None:
        if mv is None or self.memory_bytes <= 0:
            return
        self._memory[key] = mv
        self._memory.move_to_end(key)
        held = sum(_nbytes(v) for v in self._memory.values())
        while held > self.memory_bytes and len(self._memory) > 1:
            _, dropped = self._memory.popitem(last=False)
            held -= _nbytes(dropped)

    def encode(
        self,
        encoder: Encoder,
        items: Sequence[Item],
        *,
        role: str,
        batch_size: int,
        num_vectors: int | None = None,
        progress: Any = None,
        stats: EncodeStats | None = None,
        dist: Dist | None = None,
    ) -> MultiVectors:
        """Embeddings of `items` in order; finished shards are read, the others encoded and written."""
        request = EncodeRequest(encoder, items, role, batch_size, num_vectors, progress)
        return load_shards(self.fill(request, stats=stats, dist=dist), encoder.card.dim)

    def _encode_range(self, request: EncodeRequest, items: Sequence[Item]) -> MultiVectors:
        encoder, role, batch_size = request.encoder, request.role, request.batch_size
        num_vectors, progress = request.num_vectors, request.progress
        # Similar lengths share a batch, so padding is small; the order is undone afterwards.
        order = sorted(range(len(items)), key=lambda i: (_length_key(items[i]), i))
        outputs: list[MultiVectors] = []
        card = encoder.card
        for b0 in range(0, len(order), batch_size):
            batch = [items[i] for i in order[b0 : b0 + batch_size]]
            kwargs: dict[str, Any] = {"role": role, "batch_size": batch_size}
            if num_vectors is not None:
                kwargs["num_vectors"] = num_vectors
            try:
                with torch.inference_mode():
                    mv = encoder.encode(batch, **kwargs)
            except HarnessError:
                raise
            except Exception as exc:  # named in one line (-v: the traceback)
                raise HarnessError(
                    f"model {card.name!r} failed to encode a batch of {len(batch)} {role} items "
                    f"(first {batch[0].id!r}): {type(exc).__name__}: {exc}".splitlines()[0]
                ) from exc
            if not isinstance(mv, MultiVectors) or len(mv) != len(batch):
                raise HarnessError(
                    f"model {card.name!r} returned {len(mv) if isinstance(mv, MultiVectors) else type(mv).__name__} "
                    f"embeddings for a batch of {len(batch)} {role} items; encode() must return MultiVectors, one row per item"
                )
            if card.dim and mv.dim != card.dim:
                raise HarnessError(
                    f"model {card.name!r} card says dim {card.dim} but encode() returned dim {mv.dim}"
                )
            outputs.append(mv.to(device="cpu").zero_padding())
            faults.reach("encode-batch")
            if progress is not None:
                progress.update(len(batch))
        merged = MultiVectors.cat(outputs)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        return merged.select(inverse)


def _mapped(path: str | os.PathLike):
    """A shard's `vectors` as a read-only numpy memory map (bf16 as its raw uint16 bits):
    indexing it with rows reads those rows alone."""
    import numpy

    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        meta = json.loads(handle.read(size))["vectors"]
    begin, _ = meta["data_offsets"]
    kinds = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}
    return numpy.memmap(
        path,
        dtype=kinds[meta["dtype"]],
        mode="r",
        offset=8 + size + begin,
        shape=tuple(meta["shape"]),
    )


def _from_numpy(block: Any, dtype: torch.dtype) -> torch.Tensor:
    tensor = torch.from_numpy(block)
    return tensor.view(torch.bfloat16) if dtype == torch.bfloat16 else tensor


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
}


class ShardedVectors:
    """Embeddings left on disk in their cache shards, read slice by slice.

    safetensors memory-maps each shard, so a slice costs only its own bytes: scoring streams
    candidate blocks past the queries while no more than one block is resident. Lengths (one
    integer per item) are kept in memory. `transform` (e.g. an encoder's `reduce`) is applied to
    every block as it is read.
    """

    def __init__(self, shards: Sequence[Shard], transform: Any = None) -> None:
        if any(s.path is None for s in shards):
            raise ValueError("ShardedVectors needs shards written to disk")
        self.shards = list(shards)
        self.transform = transform
        self.offsets = [s.start for s in self.shards]
        shapes, lengths, dtypes = [], [], set()
        for shard in self.shards:
            with safe_open(shard.path, framework="pt") as handle:
                vectors = handle.get_slice("vectors")
                shapes.append(vectors.get_shape())
                dtypes.add(vectors.get_dtype())
                lengths.append(handle.get_tensor("lengths").long())
        self._lengths = torch.cat(lengths) if lengths else torch.zeros(0, dtype=torch.long)
        self._max_len = max((shape[1] for shape in shapes), default=1)
        self.dim = shapes[0][2] if shapes else 0
        self.dtype = _DTYPES.get(next(iter(dtypes), "F32"), torch.float32)
        element = torch.empty(0, dtype=self.dtype).element_size()
        self.nbytes = sum(shape[0] * shape[1] * shape[2] for shape in shapes) * element

    def __len__(self) -> int:
        return int(self._lengths.shape[0])

    @property
    def max_len(self) -> int:
        return self._max_len

    @property
    def lengths(self) -> torch.Tensor:
        """Lengths after `transform` (computed by one streaming pass when there is one)."""
        if self.transform is None:
            return self._lengths
        if not hasattr(self, "_transformed_lengths"):
            self._transformed_lengths = torch.cat(
                [mv.lengths for _, mv in self.chunks(self.shard_items())]
            )
        return self._transformed_lengths

    def shard_items(self) -> int:
        return max((len(s) for s in self.shards), default=1)

    def chunks(self, size: int, r: int | None = None):
        """(offset, MultiVectors) blocks of `size` items (the last may be shorter), first `r`
        vectors of each. A block spans as many shards as it needs: shards are read slice by
        slice into one block buffer, so small shards do not make small blocks, and no more
        than the block and one slice are resident."""
        width = self.max_len if r is None else min(r, self.max_len)
        buffer: torch.Tensor | None = None
        filled, first = 0, 0
        for shard in self.shards:
            with safe_open(shard.path, framework="pt") as handle:
                vectors = handle.get_slice("vectors")
                a = 0
                while a < len(shard):
                    rows = min(size, len(self) - shard.start - a)
                    if buffer is None and a + rows <= len(shard):  # the block lies in this shard
                        piece = vectors[a : a + rows] if r is None else vectors[a : a + rows, :r]
                        yield shard.start + a, self._block(piece, shard.start + a)
                        a += rows
                        continue
                    if buffer is None:
                        buffer = torch.empty(rows, width, self.dim, dtype=self.dtype)
                        filled, first = 0, shard.start + a
                    b = min(len(shard), a + len(buffer) - filled)
                    piece = vectors[a:b] if r is None else vectors[a:b, :r]
                    buffer[filled : filled + b - a, : piece.shape[1]] = piece
                    buffer[filled : filled + b - a, piece.shape[1] :] = 0  # pads stay zero
                    filled += b - a
                    a = b
                    if filled == len(buffer):
                        yield first, self._block(buffer, first)
                        buffer = None

    def _block(self, vectors: torch.Tensor, first: int) -> MultiVectors:
        lengths = self._lengths[first : first + len(vectors)].clamp(max=vectors.shape[1])
        mv = MultiVectors(vectors, lengths)
        return self.transform(mv) if self.transform is not None else mv

    def take(self, rows: Sequence[int]) -> MultiVectors:
        """The given items (in that order), read from their shards: what a single extra page
        needs, without loading the corpus."""
        return self.gather(torch.as_tensor(list(rows), dtype=torch.long))

    def gather(self, rows: torch.Tensor, r: int | None = None) -> MultiVectors:
        """The given rows (in that order, repeats allowed), first `r` vectors of each, read from
        the memory-mapped shards: only the rows asked for are read (a cascade's second stage
        gathers each query's shortlist this way)."""
        import numpy

        rows = torch.as_tensor(rows, dtype=torch.long).reshape(-1)
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= len(self)):
            raise IndexError(f"rows outside [0, {len(self)})")
        width = self.max_len if r is None or self.transform is not None else min(r, self.max_len)
        shard_of = torch.searchsorted(torch.tensor(self.offsets), rows, right=True) - 1
        used = torch.unique(shard_of).tolist()
        maps = {i: _mapped(self.shards[i].path) for i in used}
        narrow = any(maps[i].shape[1] < width for i in used)  # their pads must read as zero
        kind = maps[used[0]].dtype if used else "<f4"
        # numpy copies whole rows (memcpy) where torch's index_copy_ goes element by element
        out = (numpy.zeros if narrow else numpy.empty)((len(rows), width, self.dim), dtype=kind)
        for index in used:
            at = (shard_of == index).nonzero(as_tuple=True)[0]
            local, order = torch.sort(rows[at] - self.shards[index].start)  # in file order
            block = maps[index][local.numpy(), :width]
            out[at[order].numpy(), : block.shape[1]] = block
        mv = MultiVectors(_from_numpy(out, self.dtype), self._lengths[rows].clamp(max=width))
        if self.transform is not None:
            mv = self.transform(mv).prefix(r)
        return mv
