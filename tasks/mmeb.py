"""MMEB (v1): 36 subsets of TIGER-Lab/MMEB-eval, each query ranked against its own candidate list.

Rows: qry_text, qry_img_path, tgt_text (list, positive at index 0), tgt_img_path (list).
Candidates are keyed by (text, image path) and encoded once, as VLM2Vec's evaluator does. The
`<|image_1|>` placeholder stays in the text for the encoder to place or strip; instruction
strings are used as stored. Image paths (`<Subset>/<file>`) resolve against the unzipped
`images.zip` under the snapshot (`python -m harness prefetch` unzips it into `images/`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.benchmark import AggregateTable, Column, Group
from harness.errors import HarnessError
from harness.hub import dataset_root, parquet_files, read_rows
from harness.protocol import Item
from harness.task import DatasetRef, TaskData, TaskSpec

DATASET = DatasetRef("TIGER-Lab/MMEB-eval", revision="2f069730be515ea60778413777816b53e2d2a697")
COLUMNS = ("qry_text", "qry_img_path", "tgt_text", "tgt_img_path")
# Where the unzipped images may sit, relative to the snapshot (the archive's own top folder varies).
IMAGE_BASES = ("images", "images/images", "images/eval_images", "eval_images", ".")

# (subset, meta-task, split): IND subsets are those in MMEB's training mixture.
SUBSETS: tuple[tuple[str, str, str], ...] = (
    ("ImageNet-1K", "classification", "IND"),
    ("N24News", "classification", "IND"),
    ("HatefulMemes", "classification", "IND"),
    ("VOC2007", "classification", "IND"),
    ("SUN397", "classification", "IND"),
    ("Place365", "classification", "OOD"),
    ("ImageNet-A", "classification", "OOD"),
    ("ImageNet-R", "classification", "OOD"),
    ("ObjectNet", "classification", "OOD"),
    ("Country211", "classification", "OOD"),
    ("OK-VQA", "vqa", "IND"),
    ("A-OKVQA", "vqa", "IND"),
    ("DocVQA", "vqa", "IND"),
    ("InfographicsVQA", "vqa", "IND"),
    ("ChartQA", "vqa", "IND"),
    ("Visual7W", "vqa", "IND"),
    ("ScienceQA", "vqa", "OOD"),
    ("VizWiz", "vqa", "OOD"),
    ("GQA", "vqa", "OOD"),
    ("TextVQA", "vqa", "OOD"),
    ("VisDial", "retrieval", "IND"),
    ("CIRR", "retrieval", "IND"),
    ("VisualNews_t2i", "retrieval", "IND"),
    ("VisualNews_i2t", "retrieval", "IND"),
    ("MSCOCO_t2i", "retrieval", "IND"),
    ("MSCOCO_i2t", "retrieval", "IND"),
    ("NIGHTS", "retrieval", "IND"),
    ("WebQA", "retrieval", "IND"),
    ("FashionIQ", "retrieval", "OOD"),
    ("Wiki-SS-NQ", "retrieval", "OOD"),
    ("OVEN", "retrieval", "OOD"),
    ("EDIS", "retrieval", "OOD"),
    ("MSCOCO", "grounding", "IND"),
    ("RefCOCO", "grounding", "OOD"),
    ("RefCOCO-Matching", "grounding", "OOD"),
    ("Visual7W-Pointing", "grounding", "OOD"),
)


def _image_base(root: Path, subset: str, rows: list[dict]) -> Path | None:
    """The folder that image paths resolve against, found from the subset's first image."""
    sample = next(
        (p for row in rows for p in [row["qry_img_path"], *(row["tgt_img_path"] or [])] if p),
        None,
    )
    if sample is None:
        return None
    for base in IMAGE_BASES:
        if (root / base / sample).is_file():
            return root / base
    raise HarnessError(
        f"MMEB subset {subset}: image {sample!r} not found under {root} (looked in "
        f"{', '.join(IMAGE_BASES)}); run `python -m harness prefetch --tasks mmeb-{subset} --data-dir "
        f"{root.parent.parent}` to unzip images.zip"
    )


def load(spec: TaskSpec, data_dir: Path | None) -> TaskData:
    subset = spec.options["subset"]
    root = dataset_root(spec, data_dir)
    files = parquet_files(root, subset, "test")
    rows = read_rows(files, COLUMNS)
    base = _image_base(root, subset, rows)
    checked: dict[str, str] = {}

    def image(path: str | None, row: int) -> str | None:
        if not path:
            return None
        if path not in checked:
            full = base / path
            if not full.is_file():
                raise HarnessError(
                    f"MMEB subset {subset} row {row}: image {path!r} not found at {full}"
                )
            checked[path] = str(full)
        return checked[path]

    queries: list[Item] = []
    candidates: dict[tuple[str, str], Item] = {}
    lists: dict[str, list[str]] = {}
    for index, row in enumerate(rows):
        texts, paths = row["tgt_text"] or [], row["tgt_img_path"] or []
        if len(texts) != len(paths) or not texts:
            raise HarnessError(
                f"MMEB subset {subset} row {index}: tgt_text has {len(texts)} entries and tgt_img_path "
                f"{len(paths)}; they must be equal and non-empty ({files[0]})"
            )
        qid = f"{subset}/{index:05d}"
        queries.append(
            Item(qid, text=row["qry_text"] or None, image=image(row["qry_img_path"], index))
        )
        ids = []
        for text, path in zip(texts, paths, strict=True):
            key = (text or "", path or "")
            if key not in candidates:
                digest = hashlib.sha1("\x00".join(key).encode()).hexdigest()[:16]
                candidates[key] = Item(
                    f"{subset}/{digest}", text=text or None, image=image(path, index)
                )
            ids.append(candidates[key].id)
        lists[qid] = ids
    return TaskData(
        queries=queries,
        candidates=list(candidates.values()),
        qrels={q: {ids[0]: 1} for q, ids in lists.items()},
        candidate_lists=lists,
    )


TASKS = [
    TaskSpec(
        name=f"mmeb-{subset}",
        benchmark="mmeb",
        kind="candidates",
        main_metric="precision_at_1",
        dataset=DatasetRef(DATASET.path, revision=DATASET.revision, config=subset),
        loader="harness.tasks.mmeb:load",
        category=category,
        split=split,
        description=f"MMEB {category} subset {subset} ({split})",
        modalities=("text", "image"),
        hub_snapshot=True,
        counts={"queries": 1000},
        options={"subset": subset},
        files=("*/test-*.parquet", "images.zip"),
        archives=("images.zip",),
    )
    for subset, category, split in SUBSETS
]


def _mmeb(keep) -> tuple[str, ...]:
    return tuple(f"mmeb-{name}" for name, category, split in SUBSETS if keep(category, split))


GROUPS = [
    Group("mmeb", "MMEB, 36 subsets (precision@1)", lambda t: t.benchmark == "mmeb"),
    Group(
        "mmeb-classification",
        "MMEB classification (10)",
        lambda t: t.benchmark == "mmeb" and t.category == "classification",
    ),
    Group("mmeb-vqa", "MMEB VQA (10)", lambda t: t.benchmark == "mmeb" and t.category == "vqa"),
    Group(
        "mmeb-retrieval",
        "MMEB retrieval (12)",
        lambda t: t.benchmark == "mmeb" and t.category == "retrieval",
    ),
    Group(
        "mmeb-grounding",
        "MMEB visual grounding (4)",
        lambda t: t.benchmark == "mmeb" and t.category == "grounding",
    ),
    Group(
        "mmeb-ind",
        "MMEB in-distribution (20)",
        lambda t: t.benchmark == "mmeb" and t.split == "IND",
    ),
    Group(
        "mmeb-ood",
        "MMEB out-of-distribution (16)",
        lambda t: t.benchmark == "mmeb" and t.split == "OOD",
    ),
]

# The MMEB paper's summary: the four meta-task means, IND / OOD and the overall mean of 36.
TABLES = [
    AggregateTable(
        "MMEB (precision@1)",
        "mmeb",
        (
            Column("Classification", _mmeb(lambda c, s: c == "classification")),
            Column("VQA", _mmeb(lambda c, s: c == "vqa")),
            Column("Retrieval", _mmeb(lambda c, s: c == "retrieval")),
            Column("Grounding", _mmeb(lambda c, s: c == "grounding")),
            Column("IND", _mmeb(lambda c, s: s == "IND")),
            Column("OOD", _mmeb(lambda c, s: s == "OOD")),
            Column("Overall", _mmeb(lambda c, s: True)),
        ),
        average=False,
        reported="mmeb",
        order=10,
    )
]
