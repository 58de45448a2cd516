"""Single-vector baselines on any backbone: last token (the paper's single-last, as in VLM2Vec),
mean pooling (as sentence-transformers), or the CLS token; L2-normalised, T = 1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.baselines.backbones import Backbone
from harness.baselines.encoder import (
    BackboneEncoder,
    build_encoder,
    gather_rows,
    last_positions,
)
from harness.errors import UsageError
from harness.multivectors import MultiVectors
from harness.protocol import Item, Role

POOLINGS = ("last", "mean", "cls")


class SingleVector(BackboneEncoder):
    family = "single"
    nested = True

    def __init__(
        self, backbone: Backbone, *, pooling: str = "last", name: str, args: dict[str, Any]
    ):
        if pooling not in POOLINGS:
            raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        super().__init__(backbone, name=name, args=args)
        self.pooling = pooling

    def embed(
        self, items: Sequence[Item], role: Role, num_vectors: int | None = None
    ) -> MultiVectors:
        prepared = self.backbone.prepare(items)
        hidden = self.backbone.hidden_states(prepared).float()
        mask = prepared.attention_mask
        if self.pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        elif self.pooling == "cls":
            first = torch.where(
                mask.bool(), torch.arange(mask.shape[1], device=mask.device), mask.shape[1]
            ).amin(1)
            pooled = gather_rows(hidden, first[:, None])[:, 0]
        else:
            pooled = gather_rows(hidden, last_positions(mask)[:, None])[:, 0]
        vectors = torch.nn.functional.normalize(pooled, dim=-1).unsqueeze(1)
        return MultiVectors(
            vectors, torch.ones(len(items), dtype=torch.long, device=vectors.device)
        )

    def preprocessing(self) -> str:
        return f"single-v1|{self.pooling}|{self.backbone.kind}|{getattr(self.backbone, 'template', '')}"


def load_single(
    backbone: str | None = None,
    *,
    pooling: str = "last",
    checkpoint: str | None = None,
    name: str | None = None,
    revision: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **options: Any,
) -> SingleVector:
    """A single-vector encoder; `checkpoint=` a folder written by `python -m harness train`."""
    return build_encoder(
        SingleVector,
        backbone,
        checkpoint,
        settings={"pooling": pooling},
        saved=("pooling",),
        name=name,
        default_name=lambda settings: f"single-{settings['pooling']}",
        revision=revision,
        device=device,
        dtype=dtype,
        options=options,
    )
