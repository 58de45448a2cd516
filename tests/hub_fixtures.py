"""Dataset snapshots written in the exact Hugging Face hub layouts, with tiny generated images."""

from __future__ import annotations

import io
from pathlib import Path

from datasets import Dataset, Features, Image, Sequence, Value
from PIL import Image as PILImage

RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "gray": (128, 128, 128)}


def png(color: str, size=(4, 6)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, RGB[color]).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(rows: dict, features: Features, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=features).to_parquet(str(path))


def write_beir(
    repo: Path,
    pages: dict[int, str],
    queries: list[tuple],
    qrels: list[tuple[int, int, int]],
    *,
    id_style: str = "-",
) -> None:
    """corpus / queries / qrels configs, split test (mteb's ViDoRe layout). Queries are
    (id, text) or (id, text, language)."""
    cid, qid = f"corpus{id_style}id", f"query{id_style}id"
    _write(
        {
            cid: list(pages),
            "image": [{"bytes": png(c), "path": f"{c}.png"} for c in pages.values()],
        },
        Features({cid: Value("int64"), "image": Image()}),
        repo / "corpus" / "test-00000-of-00001.parquet",
    )
    columns = {qid: [q[0] for q in queries], "query": [q[1] for q in queries]}
    features = {qid: Value("int64"), "query": Value("string")}
    if queries and len(queries[0]) == 3:
        columns["language"] = [q[2] for q in queries]
        features["language"] = Value("string")
    _write(columns, Features(features), repo / "queries" / "test-00000-of-00001.parquet")
    _write(
        {qid: [r[0] for r in qrels], cid: [r[1] for r in qrels], "score": [r[2] for r in qrels]},
        Features({qid: Value("int64"), cid: Value("int64"), "score": Value("int64")}),
        repo / "qrels" / "test-00000-of-00001.parquet",
    )


def write_beir_subsets(
    repo: Path,
    pages: dict[int, str],
    queries: dict[str, list[tuple[str, str]]],
    qrels: list[tuple[str, int, int]],
    *,
    id_column: str = "id",
) -> None:
    """mteb's multilingual layout (ViDoRe v3 `*_mteb_format`): configs `<lang>-corpus`,
    `<lang>-queries`, `<lang>-qrels`, split test, string ids (`corpus-test-<n>`). Every subset
    holds the whole corpus and every language's qrels, as the published repos do."""
    for lang, rows in queries.items():
        _write(
            {
                id_column: [f"corpus-test-{n}" for n in pages],
                "image": [{"bytes": png(c), "path": f"{c}.png"} for c in pages.values()],
            },
            Features({id_column: Value("string"), "image": Image()}),
            repo / f"{lang}-corpus" / "test-00000-of-00001.parquet",
        )
        _write(
            {id_column: [r[0] for r in rows], "text": [r[1] for r in rows]},
            Features({id_column: Value("string"), "text": Value("string")}),
            repo / f"{lang}-queries" / "test-00000-of-00001.parquet",
        )
        _write(
            {
                "query-id": [r[0] for r in qrels],
                "corpus-id": [f"corpus-test-{r[1]}" for r in qrels],
                "score": [r[2] for r in qrels],
            },
            Features(
                {"query-id": Value("string"), "corpus-id": Value("string"), "score": Value("int64")}
            ),
            repo / f"{lang}-qrels" / "test-00000-of-00001.parquet",
        )


def write_qa(repo: Path, rows: list[tuple[str | None, str, str]]) -> None:
    """Default config, split test: (query, page colour, image_filename) rows. Each filename's
    image has its own width, so pages of one colour still differ in content."""
    widths: dict[str, int] = {}
    for r in rows:
        widths.setdefault(r[2], 4 + len(widths))
    _write(
        {
            "query": [r[0] for r in rows],
            "image": [{"bytes": png(r[1], (widths[r[2]], 6)), "path": r[2]} for r in rows],
            "image_filename": [r[2] for r in rows],
            "answer": ["" for _ in rows],
        },
        Features(
            {
                "query": Value("string"),
                "image": Image(),
                "image_filename": Value("string"),
                "answer": Value("string"),
            }
        ),
        repo / "data" / "test-00000-of-00001.parquet",
    )


def write_mmeb(
    repo: Path, subset: str, rows: list[dict], images: dict[str, str], *, zipped: bool = False
) -> None:
    """`<subset>/test-00000-of-00001.parquet` plus the images, unzipped under images/ or as images.zip."""
    _write(
        {k: [r[k] for r in rows] for k in ("qry_text", "qry_img_path", "tgt_text", "tgt_img_path")},
        Features(
            {
                "qry_text": Value("string"),
                "qry_img_path": Value("string"),
                "tgt_text": Sequence(Value("string")),
                "tgt_img_path": Sequence(Value("string")),
            }
        ),
        repo / subset / "test-00000-of-00001.parquet",
    )
    if zipped:
        import zipfile

        with zipfile.ZipFile(repo / "images.zip", "a") as archive:
            for rel, color in images.items():
                archive.writestr(rel, png(color))
    else:
        for rel, color in images.items():
            target = repo / "images" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png(color))
