"""The offline `libdocs` suite: long, multi-topic documentation pages, bundled with the project.

A page is a run of three to six consecutive members of one module of the Python standard library
or of NumPy, SciPy, pandas, Matplotlib, SymPy, NetworkX, scikit-learn or PyTorch (a class with its
methods, or a module's functions): each member's name, signature and documentation without its
first sentence, 150-420 tokens in all (see tasks/build_libdocs.py and
tasks/data/libdocs/SOURCE.json). A query is one member's first sentence; its one relevant page is
the page that documents that member, among sibling pages of the same library. Each page has a
text layer and an image of that text. Splits are disjoint by module, and near-duplicates of test
members are removed from the other splits.

- `libdocs-corpus`: two thirds of the test queries against all test pages (shared corpus, nDCG@5).
- `libdocs-lists`: the other third, each ranked against its page and 99 other test pages, the
  same library's first (candidate lists as in MMEB, precision@1). No query is in both tasks.
- `libdocs-dev`: the dev split (its own modules and pages), for choosing settings.
- `libdocs-quick-corpus` / `libdocs-quick-lists`: a fixed subset for the default run: the first
  160 test pages in a stable hashed order, and the queries of each test task whose page is among
  them (lists drawn from those 160 pages). Easier than the full tasks (fewer distractors), and
  not comparable with them; the study's numbers come from the full tasks.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import textwrap
from pathlib import Path
from typing import Any

from harness.benchmark import Group, TrainSource
from harness.errors import UsageError
from harness.protocol import Item
from harness.task import DatasetRef, TaskData, TaskSpec
from harness.tasks.build_libdocs import QUICK_PAGES, task_of
from harness.tasks.build_libdocs import stable_rank as _rank

DATA = Path(__file__).parent / "data" / "libdocs"
LIST_SIZE = 100
PAGE_WIDTH = 560
MAX_LINES = 90


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
        w for para in text.split("\n") for w in (textwrap.wrap(para, 88) or [""])
    ]
    # The bitmap font covers Latin-1; other characters are drawn as "?".
    lines = [line.encode("latin-1", "replace").decode("latin-1") for line in lines[:MAX_LINES]]
    font = ImageFont.load_default_imagefont()  # Pillow's bundled bitmap font: fast and fixed
    image = Image.new("L", (PAGE_WIDTH, 13 * len(lines) + 16), 255)
    ImageDraw.Draw(image).multiline_text((8, 8), "\n".join(lines), fill=0, font=font, spacing=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def page_item(page: dict, modalities: tuple[str, ...] | None = None) -> Item:
    """A page: its text layer and, for models that read images (or when unknown), its image."""
    image = None
    if modalities is None or "image" in modalities:
        image = render_page(page["title"], page["text"])
    return Item(page["id"], text=f"{page['title']}\n{page['text']}", image=image)


def split_rows(split: str, task: str | None = None) -> tuple[list[dict], list[dict]]:
    """The pages of a split and its queries (of one test task when `task` is given), in a
    stable hashed order."""
    pages, queries = _rows()
    pages = [p for p in pages if p["split"] == split]
    queries = sorted((q for q in queries if q["split"] == split), key=lambda q: _rank(q["id"]))
    if task is not None:
        queries = [q for q in queries if task_of(q["id"]) == task]
    return pages, queries


def _selected(spec: TaskSpec) -> tuple[list[dict], list[dict]]:
    pages, queries = split_rows(spec.options["split"], spec.options.get("task"))
    n = spec.options.get("pages")
    if n:
        pages = sorted(pages, key=lambda p: _rank(p["id"]))[:n]
        kept = {p["id"] for p in pages}
        queries = [q for q in queries if q["page"] in kept]
    return pages, queries


def load_corpus(
    spec: TaskSpec, data_dir: Path | None, modalities: tuple[str, ...] | None = None
) -> TaskData:
    pages, queries = _selected(spec)
    return TaskData(
        queries=[Item(q["id"], text=q["text"]) for q in queries],
        candidates=[page_item(p, modalities) for p in pages],
        qrels={q["id"]: {q["page"]: 1} for q in queries},
    )


def siblings(page: dict, pages: list[dict], k: int) -> list[str]:
    """k other pages: the same library's first, then any (each group in a stable hashed order)."""
    same, other = [], []
    for p in pages:
        if p["id"] != page["id"]:
            (same if p["package"] == page["package"] else other).append(p["id"])
    same.sort(key=lambda i: _rank(page["id"] + i))
    other.sort(key=lambda i: _rank(page["id"] + i))
    return (same + other)[:k]


def load_lists(
    spec: TaskSpec, data_dir: Path | None, modalities: tuple[str, ...] | None = None
) -> TaskData:
    pages, queries = _selected(spec)
    by_id = {p["id"]: p for p in pages}
    lists = {
        q["id"]: [q["page"], *siblings(by_id[q["page"]], pages, LIST_SIZE - 1)] for q in queries
    }
    return TaskData(
        queries=[Item(q["id"], text=q["text"]) for q in queries],
        # the same page table as libdocs-corpus, so its embeddings are reused
        candidates=[page_item(p, modalities) for p in pages],
        qrels={q: {ids[0]: 1} for q, ids in lists.items()},
        candidate_lists=lists,
    )


def train_examples(split: str = "train"):
    """(query, its page, a sibling page of the same module as hard negative) for every query of a
    split, in the split's stable order."""
    from harness.training.data import Example

    pages, queries = split_rows(split)
    by_id = {p["id"]: p for p in pages}
    items = {p["id"]: page_item(p) for p in pages}
    out = []
    for q in queries:
        page = by_id[q["page"]]
        same_module = [p for p in pages if p["module"] == page["module"]]
        pool = same_module if len(same_module) > 1 else pages
        sibling = siblings(page, pool, 1)
        out.append(
            Example(
                Item(q["id"], text=q["text"]),
                items[q["page"]],
                items[sibling[0]] if sibling else None,
            )
        )
    return out


def _counts(key: str) -> dict[str, dict[str, int]]:
    return json.loads((DATA / "SOURCE.json").read_text())[key]


_DATASET = DatasetRef("bundled:tasks/data/libdocs", revision="1")
_COMMON = dict(
    dataset=_DATASET,
    category="document-retrieval",
    languages=("en",),
    modalities=("text", "image"),
)
_TEST, _QUICK = _counts("test_tasks"), _counts("quick_tasks")
# what each of the two task types reads and is ranked by
_TYPES = {
    "corpus": ("corpus", "ndcg_at_5", "harness.tasks.libdocs:load_corpus"),
    "lists": ("candidates", "precision_at_1", "harness.tasks.libdocs:load_lists"),
}


def _task(name: str, benchmark: str, kind: str, description: str, **fields: Any) -> TaskSpec:
    task_kind, metric, loader = _TYPES[kind]
    return TaskSpec(
        name=name,
        benchmark=benchmark,
        kind=task_kind,
        main_metric=metric,
        loader=loader,
        description=description,
        **fields,
        **_COMMON,
    )


TASKS = [
    _task(
        "libdocs-corpus",
        "libdocs",
        "corpus",
        "member summary -> multi-member documentation page, all test pages",
        counts=_TEST["corpus"],
        options={"split": "test", "task": "corpus"},
    ),
    _task(
        "libdocs-lists",
        "libdocs",
        "lists",
        "other test queries, each against its page and 99 other pages",
        counts=_TEST["lists"],
        options={"split": "test", "task": "lists"},
    ),
    _task(
        "libdocs-quick-corpus",
        "libdocs-quick",
        "corpus",
        f"libdocs-corpus on its first {QUICK_PAGES} pages (the default run)",
        counts=_QUICK["corpus"],
        options={"split": "test", "task": "corpus", "pages": QUICK_PAGES},
    ),
    _task(
        "libdocs-quick-lists",
        "libdocs-quick",
        "lists",
        f"libdocs-lists on its first {QUICK_PAGES} pages (the default run)",
        counts=_QUICK["lists"],
        options={"split": "test", "task": "lists", "pages": QUICK_PAGES},
    ),
    _task(
        "libdocs-dev",
        "libdocs-dev",
        "corpus",
        "the dev split (its own modules), for choosing settings",
        options={"split": "dev"},
    ),
]

GROUPS = [
    Group(
        "libdocs",
        "offline library-documentation benchmark, full test split",
        lambda t: t.benchmark == "libdocs",
    ),
    Group(
        "libdocs-quick",
        "a fixed 160-page subset of libdocs (the default suite)",
        lambda t: t.benchmark == "libdocs-quick",
    ),
]


def _train_source(count: str | None, data_dir: object = None) -> list:
    examples = train_examples()
    if count:
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"libdocs:N takes a positive number of queries, got {count!r}")
        examples = examples[: int(count)]  # the first N in the split's stable order
    return examples


TRAIN_SOURCES = [TrainSource("libdocs", "libdocs[:N]", _train_source)]
