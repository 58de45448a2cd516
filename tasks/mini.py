"""The offline `mini` suite: documentation retrieval in the ViDoRe mould, bundled with the project.

Pages are documented functions, classes and methods of the Python standard library, NumPy and
SciPy (see tasks/build_mini.py and tasks/data/mini/SOURCE.json); each page has a text layer (its
title and docstring without the summary sentence) and an image of that text. A query is the
summary sentence cut from its page. Splits are disjoint by module.

- `mini-docs`: 300 test queries against all 751 test pages (shared corpus, nDCG@5).
- `mini-lists`: the same queries, each ranked against its own page and 9 sibling pages of the
  same module (candidate lists as in MMEB, precision@1).
- `mini-dev-docs`: the dev split, for choosing settings without touching the test split.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import textwrap
from pathlib import Path

from harness.protocol import Item
from harness.task import DatasetRef, TaskData, TaskSpec

DATA = Path(__file__).parent / "data" / "mini"
TEST_QUERIES = 300
LIST_SIZE = 10
PAGE_WIDTH = 480


@functools.lru_cache(maxsize=1)
def _rows() -> tuple[list[dict], list[dict]]:
    def read(name: str) -> list[dict]:
        with gzip.open(DATA / f"{name}.jsonl.gz", "rt", encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]

    return read("pages"), read("queries")


@functools.lru_cache(maxsize=4096)
def render_page(title: str, text: str) -> bytes:
    """The page as a PNG: the title, then the text wrapped at a fixed width (deterministic)."""
    from PIL import Image, ImageDraw, ImageFont

    lines = [title, ""] + [
        w for para in text.split("\n") for w in (textwrap.wrap(para, 76) or [""])
    ]
    # The bitmap font covers Latin-1; other characters are drawn as "?".
    lines = [line.encode("latin-1", "replace").decode("latin-1") for line in lines[:48]]
    font = ImageFont.load_default_imagefont()  # Pillow's bundled bitmap font: fast and fixed
    image = Image.new("L", (PAGE_WIDTH, 13 * len(lines) + 16), 255)
    ImageDraw.Draw(image).multiline_text((8, 8), "\n".join(lines), fill=0, font=font, spacing=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def page_item(page: dict) -> Item:
    return Item(
        page["id"],
        text=f"{page['title']}\n{page['text']}",
        image=render_page(page["title"], page["text"]),
    )


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _split(split: str, n_queries: int | None) -> tuple[list[dict], list[dict]]:
    pages, queries = _rows()
    pages = [p for p in pages if p["split"] == split]
    queries = sorted((q for q in queries if q["split"] == split), key=lambda q: _rank(q["id"]))
    return pages, queries[:n_queries] if n_queries else queries


def load_docs(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    pages, queries = _split(spec.options["split"], spec.options.get("queries"))
    return TaskData(
        queries=[Item(q["id"], text=q["text"]) for q in queries],
        candidates=[page_item(p) for p in pages],
        qrels={q["id"]: {q["page"]: 1} for q in queries},
    )


def _siblings(page: dict, pages: list[dict], k: int) -> list[str]:
    """k other pages, from the same module first (ordered by a stable hash), then any."""
    same = sorted(
        (p["id"] for p in pages if p["module"] == page["module"] and p["id"] != page["id"]),
        key=lambda i: _rank(page["id"] + i),
    )
    other = sorted(
        (p["id"] for p in pages if p["module"] != page["module"]),
        key=lambda i: _rank(page["id"] + i),
    )
    return (same + other)[:k]


def load_lists(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    pages, queries = _split(spec.options["split"], spec.options.get("queries"))
    by_id = {p["id"]: p for p in pages}
    lists = {
        q["id"]: [q["page"], *_siblings(by_id[q["page"]], pages, LIST_SIZE - 1)] for q in queries
    }
    return TaskData(
        queries=[Item(q["id"], text=q["text"]) for q in queries],
        candidates=[
            page_item(p) for p in pages
        ],  # the same table as mini-docs, so its embeddings are reused
        qrels={q: {ids[0]: 1} for q, ids in lists.items()},
        candidate_lists=lists,
    )


def train_examples(split: str = "train"):
    """(query, its page, a sibling page as hard negative) for every query of a split."""
    from harness.train_data import Example

    pages, queries = _split(split, None)
    by_id = {p["id"]: p for p in pages}
    items = {p["id"]: page_item(p) for p in pages}
    out = []
    for q in queries:
        sibling = _siblings(by_id[q["page"]], pages, 1)
        out.append(
            Example(
                Item(q["id"], text=q["text"]),
                items[q["page"]],
                items[sibling[0]] if sibling else None,
            )
        )
    return out


_DATASET = DatasetRef("bundled:tasks/data/mini", revision="1")
TASKS = [
    TaskSpec(
        name="mini-docs",
        benchmark="mini",
        kind="corpus",
        main_metric="ndcg_at_5",
        dataset=_DATASET,
        loader="tasks.mini:load_docs",
        category="document-retrieval",
        description="summary sentence -> documentation page (Python stdlib, NumPy, SciPy), test split",
        languages=("en",),
        modalities=("text", "image"),
        counts={"queries": TEST_QUERIES, "corpus": 751, "qrels": TEST_QUERIES},
        options={"split": "test", "queries": TEST_QUERIES},
    ),
    TaskSpec(
        name="mini-lists",
        benchmark="mini",
        kind="candidates",
        main_metric="precision_at_1",
        dataset=_DATASET,
        loader="tasks.mini:load_lists",
        category="document-retrieval",
        description="the same queries, each against its page and 9 sibling pages",
        languages=("en",),
        modalities=("text", "image"),
        counts={"queries": TEST_QUERIES, "corpus": 751},
        options={"split": "test", "queries": TEST_QUERIES},
    ),
    TaskSpec(
        name="mini-dev-docs",
        benchmark="mini-dev",
        kind="corpus",
        main_metric="ndcg_at_5",
        dataset=_DATASET,
        loader="tasks.mini:load_docs",
        category="document-retrieval",
        description="the dev split (disjoint modules), for choosing settings",
        languages=("en",),
        modalities=("text", "image"),
        options={"split": "dev"},
    ),
]
