"""Small tasks generated on the fly for the tests: a shared-corpus task and a candidate-list task.

Loaders take (spec, data_dir); when data_dir is given, some candidates carry a tiny PNG written
there, so image references, hashing and lazy opening are exercised too.
"""

from __future__ import annotations

import random
from pathlib import Path

from harness.protocol import Item
from harness.task import DatasetRef, TaskData, TaskSpec

WORDS = [f"w{i}" for i in range(60)]


def _images(data_dir: Path | None, n: int) -> list[Path | None]:
    if data_dir is None:
        return [None] * n
    from PIL import Image

    folder = Path(data_dir) / "toy" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path | None] = []
    for i in range(n):
        if i % 4:
            out.append(None)
            continue
        path = folder / f"page{i}.png"
        if not path.exists():
            Image.new("RGB", (4, 6), color=(i % 256, (7 * i) % 256, (13 * i) % 256)).save(path)
        out.append(path)
    return out


def load_corpus(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    rng = random.Random(spec.options.get("seed", 0))
    n_docs, n_queries = spec.options.get("docs", 40), spec.options.get("queries", 12)
    images = _images(data_dir, n_docs)
    docs = [
        Item(f"doc-{i:03d}", " ".join(rng.sample(WORDS, 6)), image=images[i]) for i in range(n_docs)
    ]
    # Two candidates with identical content: their scores tie exactly.
    docs.append(Item("doc-dup", docs[0].text, image=docs[0].image))
    queries, qrels = [], {}
    for i in range(n_queries):
        target = docs[rng.randrange(n_docs)]
        other = docs[rng.randrange(n_docs)]
        words = target.text.split()[:3] + [rng.choice(WORDS)]
        queries.append(Item(f"q{i}", " ".join(words), instruction="Find the page."))
        qrels[f"q{i}"] = {
            target.id: 2,
            other.id: 1 if other.id != target.id else 2,
            "doc-unretrieved": 1,
        }
    # A repeated query text with its own id: encoded once, evaluated twice.
    queries.append(Item("q-repeat", queries[0].text, instruction="Find the page."))
    qrels["q-repeat"] = dict(qrels["q0"])
    return TaskData(queries, docs, qrels)


def load_lists(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    rng = random.Random(spec.options.get("seed", 1))
    labels = [Item(f"label:{w}", w) for w in WORDS[:20]]
    queries, lists = [], {}
    for i in range(15):
        positive = labels[rng.randrange(len(labels))]
        size = rng.randint(2, 8)  # lists differ in length
        negatives = rng.sample([c for c in labels if c.id != positive.id], size - 1)
        queries.append(Item(f"row{i}", f"{positive.text} {rng.choice(WORDS)}"))
        lists[f"row{i}"] = [positive.id, *[c.id for c in negatives]]
    return TaskData(queries, labels, {q: {ids[0]: 1} for q, ids in lists.items()}, lists)


CORPUS = TaskSpec(
    name="toy-corpus",
    benchmark="toy",
    kind="corpus",
    main_metric="ndcg_at_5",
    dataset=DatasetRef("toy/corpus", revision="r1"),
    loader=load_corpus,
    category="retrieval",
)
LISTS = TaskSpec(
    name="toy-lists",
    benchmark="toy",
    kind="candidates",
    main_metric="precision_at_1",
    dataset=DatasetRef("toy/lists", revision="r1"),
    loader=load_lists,
    category="classification",
    split="IND",
)
TASKS = [CORPUS, LISTS]
