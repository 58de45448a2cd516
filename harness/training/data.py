"""Training data: (query, positive, optional hard negative) examples from several sources,
mixed by weight into batches that depend only on (seed, step), so a resumed run sees exactly
the batches an uninterrupted one would.

Sources: `libdocs[:N]` (the offline libdocs suite's train split, or its first N queries), `mmeb-train[:Subset+Subset]`
(TIGER-Lab/MMEB-train), `colpali` (vidore/colpali_train_set), `task:NAME` (queries and their
most relevant candidate from any registered or `module:attr` task), and `jsonl:PATH` files with
`query`, `positive`, `negative` (and optional `*_image` paths).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError, UsageError
from harness.protocol import Item

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    query: Item
    positive: Item
    negative: Item | None = None


def parse_mixture(spec: str) -> list[tuple[str, float]]:
    """`a,b` (equal weights) or `a:0.7,b:0.3`; a source name may itself contain `:` (task:NAME)."""
    out = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        name, weight = part, 1.0
        head, sep, tail = part.rpartition("@")
        if sep:
            name = head
            try:
                weight = float(tail)
            except ValueError:
                raise UsageError(
                    f"mixture weight in {part!r} is not a number; write SOURCE@WEIGHT"
                ) from None
        if not weight > 0 or weight == float("inf"):  # NaN fails `> 0`
            raise UsageError(f"mixture weight of {name!r} must be a positive number, got {tail}")
        out.append((name, weight))
    if not out:
        raise UsageError(
            "no training data given: --data libdocs, or e.g. mmeb-train@0.7,colpali@0.3"
        )
    return out


def load_source(name: str, data_dir: str | Path | None) -> list[Example]:
    """The examples of one `--data` source: `task:NAME`, `jsonl:PATH`, or a source a benchmark
    module declares (TRAIN_SOURCES, e.g. `libdocs[:N]`)."""
    from harness.registry import train_sources

    if name.startswith("task:"):
        return _from_task(name[5:], data_dir)
    if name.startswith("jsonl:"):
        return _from_jsonl(Path(name[6:]))
    declared = train_sources()
    for source in declared:
        if source.matches(name):
            arg = name[len(source.name) + 1 :] if name != source.name else None
            return source.load(arg, data_dir)
    usages = ", ".join(s.usage for s in declared)
    raise UsageError(f"unknown training source {name!r}; use {usages}, task:NAME or jsonl:PATH")


def _from_task(name: str, data_dir: str | Path | None) -> list[Example]:
    from harness.registry import get_tasks

    examples = []
    for spec in get_tasks(name):
        data = spec.load(data_dir)
        by_id = {c.id: c for c in data.candidates}
        for query in data.queries:
            judged = {c: g for c, g in data.qrels.get(query.id, {}).items() if g > 0 and c in by_id}
            if judged:
                best = sorted(judged, key=lambda c: (-judged[c], c))[0]
                examples.append(Example(query, by_id[best]))
    return examples


def _from_jsonl(path: Path) -> list[Example]:
    if path.is_dir():
        raise HarnessError(f"training file {path} is a folder; name a .jsonl file in it")
    if path.exists() and not path.is_file():
        raise HarnessError(f"training file {path} is not a regular file; name a .jsonl file")
    if not path.is_file():
        raise HarnessError(f"training file {path} not found")
    examples = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HarnessError(f"cannot read training file {path}: {exc}") from None
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise HarnessError(f"{path}:{line_no} is not valid JSON ({exc})") from None
        if not isinstance(row, dict) or "query" not in row or "positive" not in row:
            raise HarnessError(f"{path}:{line_no} needs 'query' and 'positive' fields")
        for key in (
            "query",
            "positive",
            "negative",
            "query_image",
            "positive_image",
            "negative_image",
        ):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise HarnessError(
                    f"{path}:{line_no}: {key!r} must be a string, got {type(row[key]).__name__}"
                )

        for key in ("query", "positive"):
            if row.get(key) is None and not row.get(f"{key}_image"):
                raise HarnessError(f"{path}:{line_no}: {key!r} needs a text or a {key}_image")

        def item(role: str, key: str, row=row, line_no=line_no) -> Item | None:
            text, image = row.get(key), row.get(f"{key}_image")
            if text is None and image is None:
                return None
            image = str(path.parent / image) if image else None
            return Item(f"{path.name}:{line_no}:{role}", text=text, image=image)

        examples.append(Example(item("q", "query"), item("p", "positive"), item("n", "negative")))
    return examples


class MixtureSampler:
    """Batches that depend only on (seed, step), so resuming at any step reproduces the
    uninterrupted run; within a batch no example repeats.

    One source: epochs. Each epoch is a permutation of the examples seeded by (seed, epoch), cut
    into `steps_per_epoch` batches (the last one smaller when the batch size does not divide the
    source), so every example is seen exactly once per epoch. Several sources: batch `step` is
    drawn from the sources by weight with a generator seeded by (seed, step)."""

    def __init__(
        self, sources: Sequence[tuple[str, float, list[Example]]], batch_size: int, seed: int
    ):
        empty = [name for name, _, examples in sources if not examples]
        if empty:
            raise HarnessError(f"training source {empty[0]!r} has no examples")
        self.sources = list(sources)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        total = sum(w for _, w, _ in self.sources)
        self.weights = [w / total for _, w, _ in self.sources]
        has_negatives = any(
            ex.negative is not None for _, _, examples in self.sources for ex in examples
        )
        if self.size < 2 and not has_negatives:
            # one query with its positive alone: the contrastive loss is 0 at every step
            raise HarnessError(
                f"the training data holds {self.size} example with no hard negative: the loss "
                "needs at least two examples (in-batch negatives) or a negative"
            )
        if not has_negatives:
            log.info("the training data has no hard negatives: in-batch negatives only")

    @property
    def epochs(self) -> bool:
        return len(self.sources) == 1

    @property
    def steps_per_epoch(self) -> int:
        """Steps that show every example once (one source), or the expected count (several)."""
        return -(-self.size // self.batch_size)

    @property
    def size(self) -> int:
        return sum(len(examples) for _, _, examples in self.sources)

    def smallest_batch(self) -> int:
        """The fewest examples a batch can hold: the last of an epoch (one source)."""
        if self.epochs and self.size % self.batch_size:
            return self.size % self.batch_size
        return min(self.batch_size, self.size)

    def batch(self, step: int) -> list[Example]:
        if self.epochs:
            examples = self.sources[0][2]
            epoch, index = divmod(step, self.steps_per_epoch)
            order = list(range(len(examples)))
            random.Random(f"{self.seed}:epoch:{epoch}").shuffle(order)
            start = index * self.batch_size
            return [examples[i] for i in order[start : start + self.batch_size]]
        rng = random.Random(f"{self.seed}:{step}")
        picks = rng.choices(range(len(self.sources)), weights=self.weights, k=self.batch_size)
        out: list[Example] = []
        for index in sorted(set(picks)):
            _, _, examples = self.sources[index]
            want = min(picks.count(index), len(examples))
            out.extend(examples[i] for i in rng.sample(range(len(examples)), want))
        return out
