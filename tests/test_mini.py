"""The bundled offline mini suite: data, splits, loaders and a short end-to-end run."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.registry import get_tasks
from tasks import mini

ROOT = Path(__file__).resolve().parent.parent


def rows(name):
    with gzip.open(ROOT / "tasks" / "data" / "mini" / f"{name}.jsonl.gz", "rt") as handle:
        return [json.loads(line) for line in handle]


def test_snapshot_records_source_licence_and_disjoint_splits():
    meta = json.loads((ROOT / "tasks" / "data" / "mini" / "SOURCE.json").read_text())
    assert (
        "Python Software Foundation" in meta["licenses"]["stdlib"]
        and meta["script"] == "tasks/build_mini.py"
    )
    modules = meta["modules_per_split"]
    assert not set(modules["train"]) & set(modules["test"]) and not set(modules["dev"]) & set(
        modules["test"]
    )
    pages, queries = rows("pages"), rows("queries")
    assert len({p["id"] for p in pages}) == len(pages) and len(queries) == len(pages)
    by_id = {p["id"]: p for p in pages}
    for q in queries[:200]:
        assert (
            q["text"] not in by_id[q["page"]]["text"]
        )  # the summary sentence was cut from its page
        assert q["split"] == by_id[q["page"]]["split"]


def test_mini_docs_and_lists_loaders():
    docs, lists = get_tasks("mini")
    d = docs.load(None)
    assert d.counts() == {"queries": 300, "corpus": 751, "qrels": 300}
    page = d.candidates[0]
    assert page.text and page.image_bytes().startswith(b"\x89PNG")
    assert page.open_image().size[0] == mini.PAGE_WIDTH
    test_pages = {p["id"] for p in rows("pages") if p["split"] == "test"}
    assert {c.id for c in d.candidates} == test_pages
    listed = lists.load(None)
    assert [c.id for c in listed.candidates] == [
        c.id for c in d.candidates
    ]  # one table: embeddings reused
    by_id = {p["id"]: p for p in rows("pages")}
    for qid, ids in list(listed.candidate_lists.items())[:50]:
        assert len(ids) == 10 and len(set(ids)) == 10 and listed.qrels[qid] == {ids[0]: 1}
        same_module = [i for i in ids[1:] if by_id[i]["module"] == by_id[ids[0]]["module"]]
        others = [i for i in ids[1:] if by_id[i]["module"] != by_id[ids[0]]["module"]]
        assert ids[1 : 1 + len(same_module)] == same_module and (not others or len(same_module) < 9)


def test_train_examples_come_from_train_modules_with_sibling_negatives():
    examples = mini.train_examples()
    by_id = {p["id"]: p for p in rows("pages")}
    assert len(examples) > 1000
    for e in examples[:100]:
        assert by_id[e.positive.id]["split"] == "train"
        assert e.negative is not None and e.negative.id != e.positive.id
        module = by_id[e.positive.id]["module"]
        if sum(1 for p in by_id.values() if p["module"] == module) > 1:
            assert by_id[e.negative.id]["module"] == module  # a sibling page is the hard negative


def test_default_models_end_to_end_on_a_slice(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--model",
            "metaembed-mini,single-mean,colbert",  # the default models
            "--tasks",
            "mini-lists",
            "--limit",
            "20",
            "--output",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr
    for model in ("metaembed-mini", "single-mean", "colbert"):
        assert f"| {model} @ " in out.stdout
        assert (tmp_path / "out" / model / "mini-lists.json").is_file()
    assert (tmp_path / "out" / "plots" / "score_vs_index_bytes.png").is_file()
    assert (tmp_path / "out" / "leaderboard.md").is_file()
    record = json.loads((tmp_path / "out" / "metaembed-mini" / "mini-lists.json").read_text())
    assert [b["label"] for b in record["budgets"]] == ["1x1", "2x4", "4x8", "8x16", "16x64"]


@pytest.mark.parametrize("text", ["", "short"])
def test_page_rendering_is_deterministic(text):
    assert mini.render_page("t", text) == mini.render_page.__wrapped__("t", text)
