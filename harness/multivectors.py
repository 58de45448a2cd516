"""`MultiVectors`: a padded batch of per-item vector sets with their true lengths."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from harness.errors import HarnessError


@dataclass(frozen=True)
class MultiVectors:
    """vectors [N, T, D]; lengths [N]; rows past lengths[i] are zero.

    Single-vector models have T = 1, MetaEmbed T = 16 (queries) or 64 (candidates), and
    ColBERT-style models variable lengths padded to the batch maximum.
    """

    vectors: torch.Tensor
    lengths: torch.Tensor

    def __post_init__(self) -> None:
        if self.vectors.dim() != 3:
            raise ValueError(f"vectors must be [N, T, D], got shape {tuple(self.vectors.shape)}")
        if self.lengths.dim() != 1 or self.lengths.shape[0] != self.vectors.shape[0]:
            raise ValueError(
                f"lengths must be [N] with N = {self.vectors.shape[0]}, got shape {tuple(self.lengths.shape)}"
            )
        if self.lengths.dtype != torch.long:
            object.__setattr__(self, "lengths", self.lengths.long())
        if len(self.lengths) and (
            int(self.lengths.min()) < 0 or int(self.lengths.max()) > self.vectors.shape[1]
        ):
            raise ValueError("lengths must lie in [0, T]")

    @classmethod
    def from_list(cls, rows: Sequence[torch.Tensor], dim: int | None = None) -> MultiVectors:
        """Pad a list of [t_i, D] tensors into one batch."""
        if not rows:
            if dim is None:
                raise ValueError("an empty list needs dim=")
            return cls(torch.zeros(0, 1, dim), torch.zeros(0, dtype=torch.long))
        width = max(1, max(int(r.shape[0]) for r in rows))
        d = int(rows[0].shape[-1])
        out = rows[0].new_zeros(len(rows), width, d)
        for i, row in enumerate(rows):
            out[i, : row.shape[0]] = row
        return cls(out, torch.tensor([int(r.shape[0]) for r in rows], dtype=torch.long))

    @classmethod
    def cat(cls, parts: Sequence[MultiVectors]) -> MultiVectors:
        """Concatenate along items, padding T to the widest part."""
        if not parts:
            raise ValueError("nothing to concatenate")
        width = max(p.max_len for p in parts)
        padded = [
            p.vectors
            if p.max_len == width
            else torch.nn.functional.pad(p.vectors, (0, 0, 0, width - p.max_len))
            for p in parts
        ]
        return cls(torch.cat(padded), torch.cat([p.lengths for p in parts]))

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def max_len(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[2])

    def mask(self) -> torch.Tensor:
        """[N, T] bool, True on real vectors."""
        return (
            torch.arange(self.max_len, device=self.lengths.device)[None, :] < self.lengths[:, None]
        )

    def prefix(self, r: int | None) -> MultiVectors:
        """The first r vectors of each item (None: all). Meaningful for nested models only."""
        if r is None or r >= self.max_len:
            return self
        return MultiVectors(self.vectors[:, :r], self.lengths.clamp(max=r))

    def select(self, index: torch.Tensor | Sequence[int]) -> MultiVectors:
        index = torch.as_tensor(index, dtype=torch.long)
        return MultiVectors(
            self.vectors.index_select(0, index), self.lengths.index_select(0, index)
        )

    def slice(self, start: int, stop: int) -> MultiVectors:
        return MultiVectors(self.vectors[start:stop], self.lengths[start:stop])

    def chunks(self, size: int, r: int | None = None):
        """(offset, MultiVectors) blocks of at most `size` items, first `r` vectors of each."""
        for start in range(0, len(self), size):
            yield start, self.slice(start, min(len(self), start + size)).prefix(r)

    @property
    def dtype(self) -> torch.dtype:
        return self.vectors.dtype

    @property
    def nbytes(self) -> int:
        return self.vectors.numel() * self.vectors.element_size()

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MultiVectors:
        return MultiVectors(
            self.vectors.to(device=device, dtype=dtype), self.lengths.to(device=device)
        )

    def zero_padding(self) -> MultiVectors:
        """A copy whose padded rows are exactly zero (encoders may leave garbage there)."""
        return MultiVectors(
            self.vectors * self.mask().unsqueeze(-1).to(self.vectors.dtype), self.lengths
        )


def check_embeddings(
    mv: MultiVectors, ids: Sequence[str], *, model: str, role: str, collapse: bool = True
) -> None:
    """Refuse NaN / infinite embeddings and collapsed models whose items all embed alike.

    MMEB's official rule counts a tie as correct, so a model that maps everything to the same
    vectors would otherwise score 100%.
    """
    if len(mv) == 0:
        return
    n, row = len(mv), mv.vectors[0].numel()
    # Checked block by block (about 16 MiB of float32 at a time), so the check adds one block,
    # not a float copy of every embedding, to what is in memory.
    step = max(1, (16 << 20) // max(1, 4 * row))
    reference = mv.vectors[0].reshape(-1).float()
    bad_ids: list[str] = []
    bad_count, alike = 0, collapse and n > 1
    for start in range(0, n, step):
        flat = mv.vectors[start : start + step].reshape(-1, row).float()
        bad = ~torch.isfinite(flat).all(dim=1)
        if bool(bad.any()):
            bad_count += int(bad.sum())
            bad_ids += [ids[start + i] for i in bad.nonzero().flatten()[:3].tolist()]
        if alike:
            alike = bool((flat == reference).all())
    if bad_count:
        raise HarnessError(
            f"model {model!r} produced NaN or infinite {role} embeddings for {bad_count} of "
            f"{n} items (e.g. {', '.join(map(repr, bad_ids[:3]))}); check its weights and dtype "
            f"(try --model-args dtype=float32)"
        )
    if alike and bool((mv.lengths == mv.lengths[0]).all()):
        raise HarnessError(
            f"model {model!r} gave all {n} distinct {role} items identical embeddings; "
            f"its scores would be meaningless (every MMEB tie counts as correct). Check the checkpoint."
        )
