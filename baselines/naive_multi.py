"""The paper's naive fixed-length multi-vector baseline: the token sequence split into K
contiguous chunks, each mean-pooled and L2-normalised. Chunks at K = 4 are not prefixes of the
chunks at K = 16, so the model is not nested: each budget is encoded on its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.baselines.backbones import Backbone
from harness.baselines.encoder import BackboneEncoder, build_encoder
from harness.budgets import METAEMBED_BUDGETS, Budget
from harness.multivectors import MultiVectors
from harness.protocol import Item, Role


def chunk_means(tokens: torch.Tensor, k: int) -> torch.Tensor:
    """[t, D] -> [min(k, t), D]: means of k nearly equal contiguous chunks."""
    return torch.stack([c.mean(0) for c in torch.tensor_split(tokens, min(k, tokens.shape[0]))])


class NaiveMulti(BackboneEncoder):
    family = "naive-multi"
    nested = False

    def __init__(
        self,
        backbone: Backbone,
        *,
        query_vectors: int = 16,
        candidate_vectors: int = 64,
        name: str,
        args: dict[str, Any],
    ):
        super().__init__(backbone, name=name, args=args)
        self.query_vectors, self.candidate_vectors = int(query_vectors), int(candidate_vectors)

    def embed(
        self, items: Sequence[Item], role: Role, num_vectors: int | None = None
    ) -> MultiVectors:
        k = num_vectors or (self.query_vectors if role == "query" else self.candidate_vectors)
        prepared = self.backbone.prepare(items)
        hidden = self.backbone.hidden_states(prepared).float()
        rows = [
            chunk_means(hidden[b][prepared.attention_mask[b].bool()], k) for b in range(len(items))
        ]
        return MultiVectors.from_list([torch.nn.functional.normalize(r, dim=-1) for r in rows])

    def budgets(self) -> tuple[Budget, ...]:
        return tuple(
            b
            for b in METAEMBED_BUDGETS
            if b.query <= self.query_vectors and b.candidate <= self.candidate_vectors
        )

    def max_vectors(self) -> tuple[int, int]:
        return self.query_vectors, self.candidate_vectors

    def preprocessing(self) -> str:
        return f"naive-multi-v1|{self.backbone.kind}|{getattr(self.backbone, 'template', '')}"


def load_naive_multi(
    backbone: str | None = None,
    *,
    query_vectors: int = 16,
    candidate_vectors: int = 64,
    checkpoint: str | None = None,
    name: str | None = None,
    revision: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    **options: Any,
) -> NaiveMulti:
    return build_encoder(
        NaiveMulti,
        backbone,
        checkpoint,
        settings={"query_vectors": query_vectors, "candidate_vectors": candidate_vectors},
        saved=("query_vectors", "candidate_vectors"),
        name=name,
        default_name="naive-multi",
        revision=revision,
        device=device,
        dtype=dtype,
        options=options,
    )
