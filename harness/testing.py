"""A deterministic test encoder, registered under the test-only name `test-hash`.

Vectors are seeded from item content: each word (and the image's bytes) maps to a fixed random
vector, and every slot adds its own seeded noise, so items that share words score higher, runs
are reproducible to the bit, and no weights are needed. Its scores mean nothing about any model.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import torch

from harness.budgets import METAEMBED_BUDGETS, Budget
from harness.errors import UsageError
from harness.multivectors import MultiVectors
from harness.protocol import Item, ModelCard, Role, check_role


def _seed(*parts: object) -> int:
    return (
        int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "little")
        >> 1
    )


class HashEncoder:
    """Nested by default (T = 16 query / 64 candidate slots, like MetaEmbed).

    nested=False makes it produce exactly the budget's count per call, each count with its own
    vectors, as a non-nested model would. ragged=True gives items varying lengths.
    """

    def __init__(
        self,
        dim: int = 32,
        query_vectors: int = 16,
        candidate_vectors: int = 64,
        nested: bool = True,
        ragged: bool = False,
        noise: float = 0.5,
        seed: int = 0,
        name: str = "test-hash",
        device: str = "cpu",  # accepted like any encoder's; vectors are always made on the CPU
    ) -> None:
        for key, value in (("dim", dim), ("query_vectors", query_vectors),
                           ("candidate_vectors", candidate_vectors)):  # fmt: skip
            if int(value) < 1:
                raise UsageError(f"--model-args {key}= must be at least 1, got {value}")
        self.dim, self.noise, self.seed, self.ragged = (
            int(dim),
            float(noise),
            int(seed),
            bool(ragged),
        )
        budgets = tuple(
            b
            for b in METAEMBED_BUDGETS
            if b.query <= query_vectors and b.candidate <= candidate_vectors
        ) or (Budget(query_vectors, candidate_vectors),)
        self._card = ModelCard(
            name=name,
            family="test",
            backbone="none",
            revision=None,
            n_params=0,
            dim=self.dim,
            modalities=("text", "image"),
            budgets=budgets,
            nested=bool(nested),
            dtype="float32",
            query_vectors=int(query_vectors),
            candidate_vectors=int(candidate_vectors),
            preprocessing="hash-v1",
            args={
                "dim": dim,
                "query_vectors": query_vectors,
                "candidate_vectors": candidate_vectors,
                "nested": nested,
                "ragged": ragged,
                "noise": noise,
                "seed": seed,
            },
        )
        self.calls: list[tuple[str, int]] = []
        self._words: dict[str, torch.Tensor] = {}

    @property
    def card(self) -> ModelCard:
        return self._card

    def _gaussian(self, seed: int, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))

    def _word(self, word: str) -> torch.Tensor:
        if word not in self._words:
            self._words[word] = self._gaussian(_seed("word", self.seed, word), (self.dim,))
        return self._words[word]

    def _base(self, item: Item) -> torch.Tensor:
        words = re.findall(r"\w+", (item.text or "").lower())
        if item.image is not None:
            words.append("<image:" + hashlib.sha256(item.image_bytes() or b"").hexdigest() + ">")
        if not words:
            return torch.zeros(self.dim)
        return torch.stack([self._word(w) for w in words]).mean(0)

    def encode(
        self,
        items: Sequence[Item],
        *,
        role: Role,
        batch_size: int = 32,
        num_vectors: int | None = None,
    ) -> MultiVectors:
        check_role(role)
        self.calls.append((role, len(items)))
        full = self._card.max_vectors(role)
        count = full if (self._card.nested or num_vectors is None) else min(num_vectors, full)
        rows = []
        for item in items:
            key = (item.content_hash, role, count if not self._card.nested else "nested")
            noise = self._gaussian(_seed("slots", self.seed, *key), (count, self.dim))
            vectors = torch.nn.functional.normalize(self._base(item) + self.noise * noise, dim=-1)
            length = 1 + _seed("len", item.content_hash, role) % count if self.ragged else count
            rows.append(vectors[:length])
        return MultiVectors.from_list(rows, dim=self.dim)
