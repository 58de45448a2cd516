"""The shared shell of every backbone-based encoder: batching, no-grad encoding, the model card.

Subclasses implement `embed(items, role)`, a differentiable map from items to padded vectors
(used as it is by training), and say what their card looks like.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from baselines.backbones import Backbone
from harness.budgets import Budget
from harness.multivectors import MultiVectors
from harness.protocol import Item, ModelCard, Role, check_role

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class BackboneEncoder(torch.nn.Module):
    family = "single"
    nested = True

    def __init__(self, backbone: Backbone, *, name: str, args: dict[str, Any]):
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model  # registered as a submodule, so .parameters() sees it
        self.name = name
        self.args = dict(args)

    # ---------------------------------------------------------------- to implement
    def embed(
        self, items: Sequence[Item], role: Role, num_vectors: int | None = None
    ) -> MultiVectors:
        raise NotImplementedError

    def budgets(self) -> tuple[Budget, ...]:
        return (Budget(1, 1),)

    def max_vectors(self) -> tuple[int | None, int | None]:
        return 1, 1

    def dim(self) -> int:
        return self.backbone.hidden_size

    def preprocessing(self) -> str:
        return f"{self.family}-v1|{self.backbone.kind}"

    # ---------------------------------------------------------------- protocol
    def own_weights_digest(self) -> str:
        """A digest of the weights this encoder adds to its backbone (changes the cache key)."""
        digest = hashlib.sha256()
        for name, param in sorted(self.named_parameters()):
            if not name.startswith("model.") or "lora_" in name:
                digest.update(name.encode())
                digest.update(param.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def card(self) -> ModelCard:
        q, c = self.max_vectors()
        return ModelCard(
            name=self.name,
            family=self.family,
            backbone=self.backbone.name,
            revision=self.backbone.revision,
            n_params=sum(p.numel() for p in self.parameters()),
            dim=self.dim(),
            modalities=self.backbone.modalities,
            budgets=self.budgets(),
            nested=self.nested,
            dtype=DTYPE_NAMES.get(self.backbone.dtype, str(self.backbone.dtype)),
            query_vectors=q,
            candidate_vectors=c,
            preprocessing=f"{self.preprocessing()}|weights={self.own_weights_digest()}",
            args=self.card_args(),
        )

    def card_args(self) -> dict[str, Any]:
        args = dict(self.args)
        if hasattr(self.backbone, "ocr_engine"):
            args["ocr_engine"] = self.backbone.ocr_engine  # which engine reads page images, if any
        return args

    def encode(
        self,
        items: Sequence[Item],
        *,
        role: Role,
        batch_size: int = 32,
        num_vectors: int | None = None,
    ) -> MultiVectors:
        check_role(role)
        parts = []
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(items), batch_size):
                    mv = self.embed(items[start : start + batch_size], role, num_vectors)
                    parts.append(
                        MultiVectors(mv.vectors.to(self.backbone.dtype).cpu(), mv.lengths.cpu())
                    )
        finally:
            self.train(was_training)
        return (
            MultiVectors.cat(parts)
            if parts
            else MultiVectors(torch.zeros(0, 1, self.dim()), torch.zeros(0, dtype=torch.long))
        )


def gather_rows(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """hidden [B, T, H] at positions [B, S] -> [B, S, H]."""
    return hidden[torch.arange(hidden.shape[0], device=hidden.device)[:, None], positions]


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Column of each row's last real token, for left or right padding."""
    width = attention_mask.shape[1]
    columns = torch.arange(width, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), columns, -1).amax(dim=1)
