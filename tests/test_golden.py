"""Golden results: runs on the test fixtures (every evaluation path: nested, non-nested, reduced
budgets, shared corpora with language groups and the ViDoRe QA rule, candidate lists, TREC run
files) must write exactly the committed files under tests/data/golden, timings and machine
details aside (TREC scores to their last written digit). A change to the pipeline that changes
any result fails here.

Regenerate (only for an intended change of results): HARNESS_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import hub_fixtures as fx
import pytest
import toy_models
import toy_tasks

import harness
from harness.registry import get_tasks
from harness.testing import HashEncoder

GOLDEN = Path(__file__).parent / "data" / "golden"
VARIES = "<varies>"
# Fields that depend on the machine, the clock or the temporary folders, by path in the record.
MACHINE = {
    ("created_at",),
    ("git_sha",),
    ("harness_version",),
    ("environment",),
    ("encode", "queries_seconds"),
    ("encode", "candidates_seconds"),
    ("encode", "items_per_second"),
    ("encode", "peak_memory_bytes"),
    ("config", "output"),
    ("config", "cache_dir"),
    ("config", "data_dir"),
}
ROW_MACHINE = {
    ("cost", "scoring_ms_per_query"),
    ("cost", "scoring_timing_runs"),
    ("cost", "scoring_ms_per_query_runs"),
}


def normalised(record: dict) -> str:
    def blank(obj: dict, paths: set[tuple[str, ...]]) -> None:
        for path in paths:
            node = obj
            for key in path[:-1]:
                node = node.get(key, {})
            if path[-1] in node:
                node[path[-1]] = VARIES

    blank(record, MACHINE)
    for row in record["budgets"]:
        blank(row, ROW_MACHINE)
        if "index" in row:
            blank(row, {("index", "build_seconds"), ("index", "exact_scoring_ms_per_query")})
    return json.dumps(record, indent=2) + "\n"


def fixture_runs(root: Path) -> Path:
    """Every run whose files are compared; returns the output folder."""
    data = root / "data"
    spec_v2 = get_tasks("vidore-v2-economics")[0]
    fx.write_beir(
        data / spec_v2.dataset.path,
        {1: "red", 2: "green", 3: "blue", 4: "gray"},
        [(1, "red", "english"), (2, "yellow", "english"), (3, "red", "french")],
        [(1, 1, 1), (2, 2, 1), (3, 2, 1)],
    )
    spec_qa = get_tasks("vidore-v1-qa-tabfquad")[0]
    colours = list(fx.RGB)
    fx.write_qa(
        data / spec_qa.dataset.path,
        [(f"q {i % 5}" if i % 3 else None, colours[i % 4], f"p{i % 6}.png") for i in range(14)],
    )
    common = {
        "output": str(root / "out"),
        "cache_dir": str(root / "cache"),
        "data_dir": str(data),
        "progress": False,
        "trec_runs": True,
    }
    harness.evaluate(HashEncoder(), toy_tasks.TASKS, budgets="1x1,4x8,16x64", **common)
    harness.evaluate(
        HashEncoder(nested=False, ragged=True, name="test-hash-flat"),
        toy_tasks.TASKS,
        budgets="1x1,16x64",
        **common,
    )
    harness.evaluate(toy_models.ReducingEncoder(), toy_tasks.TASKS, budgets="allx8,4xall", **common)
    harness.evaluate(HashEncoder(query_vectors=1, candidate_vectors=1, dim=8), [spec_qa], **common)
    harness.evaluate(toy_models.ColorEncoder(), [spec_v2], **common)
    return root / "out"


def test_fixture_runs_write_exactly_the_golden_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "harness-cache"))
    out = fixture_runs(tmp_path)
    written = {
        p.relative_to(out).as_posix(): p
        for p in sorted(out.rglob("*"))
        if p.is_file() and (p.suffix in (".json", ".trec")) and p.name != "leaderboard.json"
    }
    produced = {
        name: normalised(json.loads(p.read_text())) if p.suffix == ".json" else p.read_text()
        for name, p in written.items()
    }
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        if GOLDEN.exists():
            for old in GOLDEN.rglob("*"):
                if old.is_file():
                    old.unlink()
        for name, text in produced.items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(text)
    golden = {
        p.relative_to(GOLDEN).as_posix(): p.read_text()
        for p in sorted(GOLDEN.rglob("*"))
        if p.is_file()
    }
    assert sorted(produced) == sorted(golden)
    assert len(produced) >= 20
    for name, text in produced.items():
        if name.endswith(".trec"):
            assert trec_rows(text, near=True) == trec_rows(golden[name]), (
                f"{name} differs from tests/data/golden/{name}"
            )
        else:
            assert text == golden[name], f"{name} differs from tests/data/golden/{name}"


def trec_rows(text: str, near: bool = False) -> list[tuple]:
    """A TREC run's rows with each score as a number up to 2e-6: the file writes six decimals,
    and float32 sums may round their last digit differently across numpy and BLAS builds; the
    query, document, rank and run name must match exactly."""
    rows = []
    for line in text.splitlines():
        qid, q0, doc, rank, score, run = line.split()
        value = pytest.approx(float(score), abs=2e-6) if near else float(score)
        rows.append((qid, q0, doc, int(rank), value, run))
    return rows


@pytest.mark.parametrize("name", ["test-hash/toy-corpus.json", "test-reduce/toy-corpus.json"])
def test_golden_files_hold_real_scores(name):
    record = json.loads((GOLDEN / name).read_text())
    assert record["schema_version"] == 1
    assert all(0.0 <= row["main_score"] <= 1.0 for row in record["budgets"])
    assert len({row["main_score"] for row in record["budgets"]}) > 1
