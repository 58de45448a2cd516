"""Encoders for tests of bad model output; they wrap the harness's test encoder."""

from __future__ import annotations

import torch

from harness.multivectors import MultiVectors
from harness.testing import HashEncoder


class NaNEncoder(HashEncoder):
    """NaN in the first vector of every item whose id starts with `doc-` (the corpus task's pages)."""

    def __init__(self, **kw):
        super().__init__(name="test-nan", **kw)

    def encode(self, items, *, role, batch_size=32, num_vectors=None):
        mv = super().encode(items, role=role, batch_size=batch_size, num_vectors=num_vectors)
        vectors = mv.vectors.clone()
        for i, item in enumerate(items):
            if item.id.startswith("doc-"):
                vectors[i, 0, 0] = float("nan")
        return MultiVectors(vectors, mv.lengths)


class ConstantEncoder(HashEncoder):
    """Every page (id `doc-...`) gets the same vectors: a collapsed model."""

    def __init__(self, **kw):
        super().__init__(name="test-constant", **kw)

    def encode(self, items, *, role, batch_size=32, num_vectors=None):
        mv = super().encode(items, role=role, batch_size=batch_size, num_vectors=num_vectors)
        pages = torch.tensor([item.id.startswith("doc-") for item in items])
        vectors = torch.where(pages[:, None, None], torch.ones_like(mv.vectors), mv.vectors)
        lengths = torch.where(pages, mv.max_len, mv.lengths)
        return MultiVectors(vectors, lengths)


class FailingEncoder(HashEncoder):
    """Raises after `fail_after` encode calls: an interruption in the middle of a run."""

    def __init__(self, fail_after: int, **kw):
        super().__init__(**kw)
        self.fail_after = fail_after

    def encode(self, items, *, role, batch_size=32, num_vectors=None):
        if len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("injected interruption")
        return super().encode(items, role=role, batch_size=batch_size, num_vectors=num_vectors)
