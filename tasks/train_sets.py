"""Public training sets in the hub layout: TIGER-Lab/MMEB-train and vidore/colpali_train_set.

MMEB-train: one folder per subset with `train-*.parquet` (columns `qry`, `qry_image_path`,
`pos_text`, `pos_image_path`, optional `neg_text`, `neg_image_path`); images come as
`images_zip/<Subset>.zip`, unzipped into `images/` so the stored paths (`images/<Subset>/...`)
resolve against the snapshot. colpali_train_set: `data/train-*.parquet` with `query` and the
page `image`; it has no hard negatives.
"""

from __future__ import annotations

from pathlib import Path

from harness.benchmark import TrainSource
from harness.errors import HarnessError, UsageError
from harness.hub import fetch_root, image_reference, parquet_files, read_rows
from harness.protocol import Item
from harness.task import DatasetRef
from harness.training.data import Example

MMEB_TRAIN = DatasetRef("TIGER-Lab/MMEB-train")
COLPALI_TRAIN = DatasetRef("vidore/colpali_train_set")
MMEB_TRAIN_SUBSETS = (
    "ImageNet_1K", "N24News", "HatefulMemes", "VOC2007", "SUN397", "OK-VQA", "A-OKVQA", "DocVQA",
    "InfographicsVQA", "ChartQA", "Visual7W", "VisDial", "CIRR", "VisualNews_t2i", "VisualNews_i2t",
    "MSCOCO_t2i", "MSCOCO_i2t", "NIGHTS", "WebQA", "MSCOCO",
)  # fmt: skip


def mmeb_train_examples(
    data_dir: str | Path | None, subsets: list[str] | None = None
) -> list[Example]:
    subsets = subsets or list(MMEB_TRAIN_SUBSETS)
    unknown = [s for s in subsets if s not in MMEB_TRAIN_SUBSETS]
    if unknown:
        raise HarnessError(
            f"unknown MMEB-train subset {unknown[0]!r}; known: {', '.join(MMEB_TRAIN_SUBSETS)}"
        )
    root = fetch_root(
        MMEB_TRAIN,
        data_dir,
        name="mmeb-train",
        files=[f"{s}/train-*.parquet" for s in subsets] + [f"images_zip/{s}.zip" for s in subsets],
        archives=[f"images_zip/{s}.zip" for s in subsets],
    )
    examples = []
    for subset in subsets:
        rows = read_rows(
            parquet_files(root, subset, "train"),
            ["qry", "qry_image_path", "pos_text", "pos_image_path"],
            optional=["neg_text", "neg_image_path"],
        )
        for index, row in enumerate(rows):

            def item(text, path, role, index=index, subset=subset) -> Item | None:
                if not text and not path:
                    return None
                full = None
                if path:
                    full = root / path
                    if not full.is_file():
                        raise HarnessError(
                            f"MMEB-train {subset} row {index}: image {path!r} not found at {full}"
                        )
                return Item(
                    f"{subset}/{index}/{role}", text=text or None, image=str(full) if full else None
                )

            query = item(row["qry"], row["qry_image_path"], "q")
            positive = item(row["pos_text"], row["pos_image_path"], "p")
            if query is None or positive is None:
                continue
            examples.append(
                Example(query, positive, item(row.get("neg_text"), row.get("neg_image_path"), "n"))
            )
    return examples


def colpali_examples(data_dir: str | Path | None) -> list[Example]:
    root = fetch_root(COLPALI_TRAIN, data_dir, name="colpali", files=["data/train-*.parquet"])
    rows = read_rows(
        parquet_files(root, None, "train"), ["query", "image"], optional=["image_filename"]
    )
    examples = []
    for index, row in enumerate(rows):
        if not row["query"]:
            continue
        page = Item(
            f"colpali/{row.get('image_filename') or index}",
            image=image_reference(row["image"], root),
        )
        examples.append(Example(Item(f"colpali/{index}/q", text=row["query"]), page))
    return examples


def _colpali_source(arg: str | None, data_dir: str | Path | None) -> list[Example]:
    if arg is not None:
        raise UsageError(f"colpali takes no argument, got colpali:{arg}")
    return colpali_examples(data_dir)


TRAIN_SOURCES = [
    TrainSource(
        "mmeb-train",
        "mmeb-train[:Subset+...]",
        lambda arg, data_dir: mmeb_train_examples(data_dir, arg.split("+") if arg else None),
    ),
    TrainSource("colpali", "colpali", _colpali_source),
]
