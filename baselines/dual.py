"""CLIP and SigLIP dual encoders: text through the text tower, images through the vision tower,
one L2-normalised vector per item. An item with both (an MMEB query image with its
instruction) gets the normalised mean of the two, since the towers cannot fuse them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from harness.baselines.backbones import (
    bound_image,
    resolve_device,
    resolve_dtype,
    resolve_model_path,
)
from harness.baselines.encoder import DTYPE_NAMES
from harness.budgets import Budget
from harness.errors import HarnessError
from harness.multivectors import MultiVectors
from harness.protocol import IMAGE_PLACEHOLDER, Item, ModelCard, Role, check_role


def _features(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class DualEncoder:
    def __init__(
        self,
        model: str,
        *,
        name: str,
        revision: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        max_length: int = 64,
    ):
        from transformers import AutoModel, AutoProcessor

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        path = resolve_model_path(model)
        try:
            self.processor = AutoProcessor.from_pretrained(path, revision=revision)
            self.model = AutoModel.from_pretrained(path, revision=revision, dtype=self.dtype)
        except OSError as exc:
            raise HarnessError(
                f"cannot load dual encoder {model!r}: {str(exc).splitlines()[0]}"
            ) from exc
        self.model.to(self.device).eval()
        self.max_length = max_length
        config = self.model.config
        dim = int(getattr(config, "projection_dim", 0) or config.text_config.hidden_size)
        self._card = ModelCard(
            name=name,
            family="single",
            backbone=model,
            revision=revision,
            n_params=sum(p.numel() for p in self.model.parameters()),
            dim=dim,
            modalities=("text", "image"),
            budgets=(Budget(1, 1),),
            nested=True,
            dtype=DTYPE_NAMES.get(self.dtype, str(self.dtype)),
            query_vectors=1,
            candidate_vectors=1,
            preprocessing=f"dual-v1|max_length={max_length}",
            args={"model": model, "dtype": dtype, "max_length": max_length},
        )

    @property
    def card(self) -> ModelCard:
        return self._card

    def _text(self, texts: list[str]) -> torch.Tensor:
        batch = self.processor(
            text=texts,
            padding="max_length" if "siglip" in type(self.model).__name__.lower() else True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        batch = {
            k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")
        }
        return torch.nn.functional.normalize(
            _features(self.model.get_text_features(**batch)).float(), dim=-1
        )

    def _image(self, images: list) -> torch.Tensor:
        batch = self.processor(images=images, return_tensors="pt")
        pixels = batch["pixel_values"].to(self.device, self.dtype)
        return torch.nn.functional.normalize(
            _features(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1
        )

    def encode(self, items: Sequence[Item], *, role: Role, batch_size: int = 32) -> MultiVectors:
        check_role(role)
        out = []
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                batch = items[start : start + batch_size]
                texts = [(i.text or "").replace(IMAGE_PLACEHOLDER, "").strip() for i in batch]
                text_vectors = self._text([t or " " for t in texts])
                with_image = [b for b, i in enumerate(batch) if i.image is not None]
                vectors = text_vectors.clone()
                if with_image:
                    image_vectors = self._image(
                        [bound_image(batch[b].open_image()) for b in with_image]
                    )
                    for row, b in enumerate(with_image):
                        both = texts[b] != ""
                        v = image_vectors[row] + text_vectors[b] if both else image_vectors[row]
                        vectors[b] = torch.nn.functional.normalize(v, dim=-1)
                out.append(vectors)
        vectors = torch.cat(out).unsqueeze(1).to(self.dtype).cpu()
        return MultiVectors(vectors, torch.ones(len(items), dtype=torch.long))


def load_clip(model: str = "openai/clip-vit-base-patch32", **kwargs: Any) -> DualEncoder:
    return DualEncoder(model, name=kwargs.pop("name", "clip"), **kwargs)


def load_siglip(model: str = "google/siglip-base-patch16-224", **kwargs: Any) -> DualEncoder:
    return DualEncoder(model, name=kwargs.pop("name", "siglip"), **kwargs)


# what --model-args are checked against (harness.registry.check_arg_types)
load_clip.delegates = DualEncoder.__init__  # type: ignore[attr-defined]
load_siglip.delegates = DualEncoder.__init__  # type: ignore[attr-defined]
