"""ColBERT-style baselines: every token's last-layer state, projected to 128 dimensions and
L2-normalised, padding masked; a token-level twin of any backbone. ColQwen2 and ColPali run
through transformers' retrieval classes.

`pool_factor` > 1 merges each run of that many consecutive candidate tokens into their mean
(token pooling), shrinking the index by about that factor: run it at several factors to put a
ColBERT-style model on the quality-versus-cost curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.baselines.backbones import (
    Backbone,
    bound_image,
    int_option,
    resolve_device,
    resolve_dtype,
    resolve_model_path,
)
from harness.baselines.encoder import DTYPE_NAMES, BackboneEncoder, build_encoder
from harness.baselines.naive_multi import chunk_means
from harness.budgets import Budget
from harness.errors import HarnessError, UsageError
from harness.multivectors import MultiVectors
from harness.protocol import IMAGE_PLACEHOLDER, Item, ModelCard, Role, check_role


def pool_tokens(vectors: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean of each run of `factor` consecutive vectors [t, D] -> [ceil(t / factor), D]."""
    if factor <= 1 or vectors.shape[0] <= 1:
        return vectors
    return torch.stack([chunk.mean(0) for chunk in torch.split(vectors, factor)])


# Candidate-side budgets: at most that many vectors per page, by pooling contiguous tokens.
POOLED_BUDGETS: tuple[Budget, ...] = (
    Budget(None, None),
    Budget(None, 64),
    Budget(None, 32),
    Budget(None, 16),
)


def reduce_tokens(mv: MultiVectors, role: str, num_vectors: int | None) -> MultiVectors:
    """Token pooling as a budget: each item's vectors merged into at most `num_vectors` means of
    contiguous runs, re-normalised. Derived from the full encoding, so nothing is re-encoded."""
    if num_vectors is None or mv.max_len <= num_vectors:
        return mv
    rows = [
        torch.nn.functional.normalize(
            chunk_means(mv.vectors[i, : mv.lengths[i]].float(), num_vectors), dim=-1
        ).to(mv.vectors.dtype)
        for i in range(len(mv))
    ]
    return MultiVectors.from_list(rows, dim=mv.dim)


class TokenLevel(BackboneEncoder):
    family = "colbert"
    nested = False  # smaller budgets pool tokens (see reduce), they are not prefixes

    def __init__(
        self,
        backbone: Backbone,
        *,
        dim: int = 128,
        pool_factor: int = 1,
        seed: int = 0,
        name: str,
        args: dict[str, Any],
    ):
        super().__init__(backbone, name=name, args=args)
        if pool_factor < 1:
            raise UsageError(f"pool_factor must be >= 1, got {pool_factor}")
        self.pool_factor = int(pool_factor)
        self.projection = None
        if dim:
            generator = torch.Generator().manual_seed(seed)
            self.projection = torch.nn.Linear(backbone.hidden_size, int(dim), bias=False).to(
                backbone.device
            )
            with torch.no_grad():
                self.projection.weight.copy_(
                    torch.randn(int(dim), backbone.hidden_size, generator=generator)
                    / backbone.hidden_size**0.5
                )

    def embed(
        self, items: Sequence[Item], role: Role, num_vectors: int | None = None
    ) -> MultiVectors:
        prepared = self.backbone.prepare(items)
        hidden = self.backbone.hidden_states(prepared)
        if self.projection is not None:
            hidden = self.projection(hidden.to(self.projection.weight.dtype))
        hidden = torch.nn.functional.normalize(hidden.float(), dim=-1)
        rows = []
        for b in range(len(items)):
            tokens = hidden[b][prepared.attention_mask[b].bool()]
            rows.append(pool_tokens(tokens, self.pool_factor) if role == "candidate" else tokens)
        return MultiVectors.from_list(rows)

    def budgets(self) -> tuple[Budget, ...]:
        return POOLED_BUDGETS

    def max_vectors(self) -> tuple[None, None]:
        return None, None

    def reduce(self, mv: MultiVectors, role: str, num_vectors: int | None) -> MultiVectors:
        return reduce_tokens(mv, role, num_vectors)

    def preprocessing(self) -> str:
        return f"colbert-v1|pool={self.pool_factor}|{self.backbone.kind}|{getattr(self.backbone, 'template', '')}"


def load_colbert(
    backbone: str | None = None,
    *,
    dim: int = 128,
    pool_factor: int = 1,
    checkpoint: str | None = None,
    name: str | None = None,
    revision: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    seed: int = 0,
    **options: Any,
) -> TokenLevel:
    return build_encoder(
        TokenLevel,
        backbone,
        checkpoint,
        settings={"dim": dim, "pool_factor": pool_factor},
        saved=("dim",),
        extra={"seed": seed},
        name=name,
        default_name="colbert",
        suffix=f"-pool{pool_factor}" if pool_factor > 1 else "",
        revision=revision,
        device=device,
        dtype=dtype,
        options=options,
    )


class ColVision:
    """ColQwen2 / ColPali through transformers' `ColQwen2ForRetrieval` / `ColPaliForRetrieval`
    and their processors: queries through `process_queries`, page images through
    `process_images` (text-only candidates go through `process_queries`)."""

    def __init__(
        self,
        model: str,
        *,
        family_class: str,
        name: str,
        revision: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        pool_factor: int = 1,
        max_visual_tokens: int | None = None,
    ):
        import transformers

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        path = resolve_model_path(model)
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(path, revision=revision)
            self.model = getattr(transformers, family_class).from_pretrained(
                path, revision=revision, dtype=self.dtype
            )
        except OSError as exc:
            raise HarnessError(
                f"cannot load {family_class} from {model!r}: {str(exc).splitlines()[0]}"
            ) from exc
        self.model.to(self.device).eval()
        if max_visual_tokens and hasattr(self.processor, "image_processor"):
            ip = self.processor.image_processor
            patch = getattr(ip, "patch_size", 14) * getattr(ip, "merge_size", 2)
            ip.max_pixels = int_option("max_visual_tokens", max_visual_tokens) * patch * patch
        self.pool_factor = int(pool_factor)
        dim = int(getattr(self.model.config, "embedding_dim", 128))
        self._card = ModelCard(
            name=name,
            family="colbert",
            backbone=model,
            revision=revision,
            n_params=sum(p.numel() for p in self.model.parameters()),
            dim=dim,
            modalities=("text", "image"),
            budgets=POOLED_BUDGETS,
            nested=False,
            dtype=DTYPE_NAMES.get(self.dtype, str(self.dtype)),
            preprocessing=f"{family_class}-v1|pool={pool_factor}|max_visual_tokens={max_visual_tokens}",
            args={
                "model": model,
                "dtype": dtype,
                "pool_factor": pool_factor,
                "max_visual_tokens": max_visual_tokens,
            },
        )

    @property
    def card(self) -> ModelCard:
        return self._card

    def reduce(self, mv: MultiVectors, role: str, num_vectors: int | None) -> MultiVectors:
        return reduce_tokens(mv, role, num_vectors)

    def _run(self, batch: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if "pixel_values" in batch:
            batch["pixel_values"] = batch["pixel_values"].to(self.dtype)
        out = self.model(**batch)
        embeddings = out.embeddings if hasattr(out, "embeddings") else out[0]
        mask = batch["attention_mask"].bool()
        return [embeddings[b][mask[b]].float() for b in range(embeddings.shape[0])]

    def encode(self, items: Sequence[Item], *, role: Role, batch_size: int = 8) -> MultiVectors:
        check_role(role)
        rows: list[torch.Tensor] = [torch.empty(0)] * len(items)
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                chunk = list(range(start, min(len(items), start + batch_size)))
                pages = [i for i in chunk if role == "candidate" and items[i].image is not None]
                texts = [i for i in chunk if i not in pages]
                if pages:
                    images = [bound_image(items[i].open_image()) for i in pages]
                    for i, vectors in zip(
                        pages, self._run(self.processor.process_images(images=images)), strict=True
                    ):
                        rows[i] = pool_tokens(vectors, self.pool_factor)
                if texts:
                    queries = [
                        (items[i].text or "").replace(IMAGE_PLACEHOLDER, "").strip() for i in texts
                    ]
                    for i, vectors in zip(
                        texts, self._run(self.processor.process_queries(text=queries)), strict=True
                    ):
                        rows[i] = vectors
        mv = MultiVectors.from_list([r.cpu() for r in rows], dim=self._card.dim)
        return MultiVectors(mv.vectors.to(self.dtype), mv.lengths)


def load_colqwen2(model: str = "vidore/colqwen2-v1.0-hf", **kwargs: Any) -> ColVision:
    return ColVision(
        model, family_class="ColQwen2ForRetrieval", name=kwargs.pop("name", "colqwen2"), **kwargs
    )


def load_colpali(model: str = "vidore/colpali-v1.3-hf", **kwargs: Any) -> ColVision:
    return ColVision(
        model, family_class="ColPaliForRetrieval", name=kwargs.pop("name", "colpali"), **kwargs
    )


# what --model-args are checked against (harness.registry.check_arg_types)
load_colqwen2.delegates = ColVision.__init__  # type: ignore[attr-defined]
load_colpali.delegates = ColVision.__init__  # type: ignore[attr-defined]
