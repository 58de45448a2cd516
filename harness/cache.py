"""Embedding cache: shards of item ranges, written atomically, skipped when already present.

A shard's file name carries its item range and a digest of its items' content hashes; its
directory carries a digest of everything else that changes vectors (model name, revision, args,
dtype, preprocessing, role, vector count). So a rerun finds finished shards and encodes only the
rest, and a shard never depends on which worker wrote it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from harness.errors import HarnessError
from harness.multivectors import MultiVectors
from harness.protocol import Encoder, Item

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
DEFAULT_SHARD_SIZE = 512


def default_cache_dir() -> Path:
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "harness"))


def check_writable(path: str | os.PathLike, what: str) -> Path:
    """Create `path` and prove it is writable, or fail before any work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise HarnessError(
            f"{what} {str(path)!r} is not writable ({exc.strerror}); choose another with --{what.replace(' ', '-')}"
        ) from exc
    return path


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
    }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class EncodeStats:
    seconds: float = 0.0
    encoded: int = 0
    cached: int = 0


def _length_key(item: Item) -> tuple[int, int]:
    return (len(item.text or "") + len(item.instruction or ""), item.image is not None)


class EmbeddingCache:
    """Encodes unique items through the cache. `root=None` keeps nothing on disk."""

    def __init__(
        self, root: str | os.PathLike | None, shard_size: int = DEFAULT_SHARD_SIZE
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.shard_size = int(shard_size)

    def shard_dir(self, key: dict[str, Any]) -> Path | None:
        if self.root is None:
            return None
        digest = _digest(key)
        directory = self.root / "embeddings" / digest[:2] / digest
        directory.mkdir(parents=True, exist_ok=True)
        meta = directory / "key.json"
        if not meta.exists():
            meta.write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
        return directory

    def shard_path(self, directory: Path, items: Sequence[Item], start: int, stop: int) -> Path:
        digest = hashlib.sha256(
            "".join(i.content_hash for i in items[start:stop]).encode()
        ).hexdigest()
        return directory / f"{start:09d}-{stop:09d}-{digest[:20]}.safetensors"

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
    ) -> MultiVectors:
        """Embeddings of `items` in order; finished shards are read, the others encoded and written."""
        stats = stats if stats is not None else EncodeStats()
        directory = self.shard_dir(encoding_key(encoder, role, num_vectors))
        parts: list[MultiVectors] = []
        for start in range(0, len(items), self.shard_size):
            stop = min(len(items), start + self.shard_size)
            path = self.shard_path(directory, items, start, stop) if directory is not None else None
            if path is not None and path.exists():
                shard = load_file(path)
                parts.append(MultiVectors(shard["vectors"], shard["lengths"]))
                stats.cached += stop - start
                if progress is not None:
                    progress.update(stop - start)
            else:
                began = time.perf_counter()
                mv = self._encode_range(
                    encoder, items[start:stop], role, batch_size, num_vectors, progress
                )
                stats.seconds += time.perf_counter() - began
                stats.encoded += stop - start
                if path is not None:
                    _atomic_save({"vectors": mv.vectors, "lengths": mv.lengths}, path)
                parts.append(mv)
        if not parts:
            return MultiVectors(
                torch.zeros(0, 1, max(1, encoder.card.dim)), torch.zeros(0, dtype=torch.long)
            )
        return MultiVectors.cat(parts)

    def _encode_range(
        self,
        encoder: Encoder,
        items: Sequence[Item],
        role: str,
        batch_size: int,
        num_vectors: int | None,
        progress: Any,
    ) -> MultiVectors:
        # Similar lengths share a batch, so padding is small; the order is undone afterwards.
        order = sorted(range(len(items)), key=lambda i: (_length_key(items[i]), i))
        outputs: list[MultiVectors] = []
        card = encoder.card
        for b0 in range(0, len(order), batch_size):
            batch = [items[i] for i in order[b0 : b0 + batch_size]]
            kwargs: dict[str, Any] = {"role": role, "batch_size": batch_size}
            if num_vectors is not None:
                kwargs["num_vectors"] = num_vectors
            with torch.inference_mode():
                mv = encoder.encode(batch, **kwargs)
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
            if progress is not None:
                progress.update(len(batch))
        merged = MultiVectors.cat(outputs)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        return merged.select(inverse)
