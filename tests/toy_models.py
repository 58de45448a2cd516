"""Encoders for tests of bad model output; they wrap the harness's test encoder."""

from __future__ import annotations

import numpy as np
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


COLORS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "cyan": (0.0, 1.0, 1.0),
    "gray": (1.0, 1.0, 1.0),
}


class ColorEncoder:
    """One 3-d unit vector per item: an image's mean colour, else the colour named last in its
    text. Scores are cosine similarities that can be worked out by hand."""

    def __init__(self, device: str = "cpu"):
        from harness.protocol import ModelCard

        self.card = ModelCard(
            name="test-color",
            family="test",
            dim=3,
            query_vectors=1,
            candidate_vectors=1,
            args={},
            modalities=("text", "image"),
        )

    def _vector(self, item) -> torch.Tensor:
        if item.image is not None:
            pixels = torch.from_numpy(np.asarray(item.open_image(), dtype=np.float32))
            v = pixels.reshape(-1, 3).mean(0)
        else:
            words = [w for w in (item.text or "").lower().split() if w in COLORS]
            v = torch.tensor(COLORS[words[-1]] if words else (0.0, 0.0, 0.0))
        return torch.nn.functional.normalize(v, dim=0)

    def encode(self, items, *, role, batch_size=32):
        vectors = torch.stack([self._vector(i) for i in items]).unsqueeze(1)
        return MultiVectors(vectors, torch.ones(len(items), dtype=torch.long))


class DyingEncoder(HashEncoder):
    """The test encoder (same name, args and vectors as `test-hash`) on every rank but one: on rank $HARNESS_TEST_DIE_RANK it raises at its second candidate batch, after a shard
    of its own is written, as a worker that crashes mid-run would."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.candidate_batches = 0

    def encode(self, items, *, role, batch_size=32, num_vectors=None):
        import os

        if role == "candidate" and os.environ.get("RANK") == os.environ.get(
            "HARNESS_TEST_DIE_RANK"
        ):
            self.candidate_batches += 1
            if self.candidate_batches == 2:
                raise RuntimeError("simulated crash of this rank")
        return super().encode(items, role=role, batch_size=batch_size, num_vectors=num_vectors)


def marked_encoder(**kw):
    """The test encoder, after leaving a file at $HARNESS_TEST_MARK: proves a model was loaded."""
    import os
    from pathlib import Path

    Path(os.environ["HARNESS_TEST_MARK"]).write_text("loaded")
    return HashEncoder(**kw)


class ReducingEncoder(HashEncoder):
    """The test encoder as a non-nested model that derives smaller budgets from its full
    encoding (as ColBERT-style token pooling does): `reduce` keeps the first n vectors, scaled."""

    def __init__(self, **kw):
        super().__init__(name="test-reduce", nested=False, ragged=True, **kw)

    def reduce(self, mv, role, num_vectors):
        if num_vectors is None:
            return mv
        kept = mv.prefix(num_vectors)
        return MultiVectors(kept.vectors * 0.5, kept.lengths)


class BuggyEncoder(HashEncoder):
    """encode() raises an ordinary exception: a bug in a user's encoder."""

    def encode(self, items, *, role, batch_size=32, num_vectors=None):
        raise RuntimeError("shape mismatch in my pooling")


def broken_factory(size: str = "huge"):
    """A model factory that fails while building."""
    raise ValueError("no such size")
