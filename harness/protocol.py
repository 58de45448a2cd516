"""The encoder protocol every model implements, and the records it speaks in.

Importing this module does not import torch: `MultiVectors` lives in `harness.multivectors`.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from harness.budgets import Budget
from harness.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from PIL.Image import Image

    from harness.multivectors import MultiVectors

Role = Literal["query", "candidate"]
# MMEB's image placeholder in query and candidate text; each encoder places or strips it.
IMAGE_PLACEHOLDER = "<|image_1|>"
ROLES: tuple[Role, ...] = ("query", "candidate")


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise UsageError(f"role must be 'query' or 'candidate', got {role!r}")
    return role  # type: ignore[return-value]


@dataclass(frozen=True)
class Item:
    """One query or candidate. `image` is a lazy reference (a path or the encoded bytes)."""

    id: str
    text: str | None = None
    image: str | bytes | os.PathLike | None = None
    instruction: str | None = None

    def image_bytes(self) -> bytes | None:
        """The image file's bytes, read on demand; a missing file names the item and path."""
        if self.image is None:
            return None
        if isinstance(self.image, bytes | bytearray):
            return bytes(self.image)
        try:
            with open(self.image, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise HarnessError(
                f"item {self.id!r}: cannot read image {os.fspath(self.image)!r}: {exc.strerror}"
            ) from exc

    def open_image(self) -> Image:
        """The image as an RGB PIL image; a corrupt file names the item and path."""
        from PIL import Image as PILImage

        data = self.image_bytes()
        if data is None:
            raise HarnessError(f"item {self.id!r} has no image")
        try:
            with PILImage.open(io.BytesIO(data)) as img:
                return img.convert("RGB")
        except Exception as exc:  # PIL raises several types for bad files
            where = (
                "<bytes>" if isinstance(self.image, bytes | bytearray) else os.fspath(self.image)
            )
            raise HarnessError(
                f"item {self.id!r}: image {where!r} cannot be decoded: {exc}"
            ) from exc

    @cached_property
    def content_hash(self) -> str:
        """sha256 over text, image bytes and instruction: the embedding cache's item key."""
        digest = hashlib.sha256()
        for tag, value in (
            (b"text", self.text.encode("utf-8") if self.text is not None else None),
            (b"image", self.image_bytes()),
            (
                b"instruction",
                self.instruction.encode("utf-8") if self.instruction is not None else None,
            ),
        ):
            digest.update(tag)
            if value is None:
                digest.update(b"-")
            else:
                digest.update(str(len(value)).encode() + b":")
                digest.update(value)
        return digest.hexdigest()

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m, v in (("text", self.text), ("image", self.image)) if v is not None)


@dataclass(frozen=True)
class ModelCard:
    """What a model is and what it can do; echoed into every result file."""

    name: str
    family: str  # metaembed | single | colbert | naive-multi | test | ...
    backbone: str | None = None
    revision: str | None = None
    n_params: int | None = None
    dim: int = 0
    modalities: tuple[str, ...] = ("text",)
    budgets: tuple[Budget, ...] = (Budget(None, None),)
    # True when every budget is a prefix of the largest, so one encoding pass serves all budgets.
    nested: bool = True
    dtype: str = "float32"
    # Most vectors the model emits per item and role; None when the count varies (ColBERT-style).
    query_vectors: int | None = None
    candidate_vectors: int | None = None
    # Anything that changes vectors besides the weights (prompt format, image size, ...).
    preprocessing: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    # Parameters of the pretrained backbone alone (no adapters, meta tokens or projections):
    # the model size that size plots compare.
    backbone_params: int | None = None
    # How the weights were trained, when they come from a `harness train` checkpoint.
    training: dict[str, Any] | None = None

    def max_vectors(self, role: str) -> int | None:
        return self.query_vectors if role == "query" else self.candidate_vectors


@runtime_checkable
class Encoder(Protocol):
    """A retriever: role-aware encoding of items into (multi-)vectors.

    The encoder owns preprocessing (chat template, image placeholder, instruction placement);
    the harness owns batching order, caching, sharding and scoring. Models whose card is not
    `nested` either accept `num_vectors=` (the budget's side for that role) and produce that
    many vectors, or offer `reduce(multivectors, role, num_vectors)` deriving a smaller budget
    from the full encoding (token pooling), which the harness then calls instead of re-encoding.
    """

    @property
    def card(self) -> ModelCard: ...

    def encode(self, items: Sequence[Item], *, role: Role, batch_size: int) -> MultiVectors: ...


@runtime_checkable
class ReducingEncoder(Encoder, Protocol):
    """An encoder that derives a smaller budget from its full encoding (ColBERT-style token
    pooling): the harness encodes once and calls `reduce` per budget instead of re-encoding."""

    def reduce(self, mv: MultiVectors, role: Role, num_vectors: int | None) -> MultiVectors: ...


@runtime_checkable
class TrainableEncoder(Encoder, Protocol):
    """An encoder that `harness train` can train: a torch module over a backbone, with the
    weights it adds of its own, that saves itself as a checkpoint its family loads."""

    backbone: Any

    def save_pretrained(self, directory: Any, include_backbone: bool = False) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...
