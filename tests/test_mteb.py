"""Results to and from mteb: the export is read back with the `mteb` package's own loader and
checked against mteb's task metadata; the import is checked on files in mteb's layout with
numbers worked out by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import hub_fixtures as fx
import pytest
import toy_models
import toy_tasks

import harness
from harness.registry import get_tasks, task_specs
from harness.reporting.mteb_results import experiment_name, load_reported

mteb = pytest.importorskip(
    "mteb", reason="the mteb package is in the test extra: pip install -e '.[test]'"
)

ROOT = Path(__file__).resolve().parent.parent
LOG2_3 = math.log2(3)
PAGES = {1: "red", 2: "green", 3: "blue", 4: "gray"}
COMMIT = "f4cc6c8b365a3c779dbc708d6affe0b0355b2ddf"


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "harness-cache"))


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd
    )


def write_fixtures(data: Path) -> None:
    """ViDoRe v1 arxivqa, v2 economics (two languages) and v3 hr (six) in the hub layouts."""
    v1, v2, v3 = get_tasks("vidore-v1-arxivqa,vidore-v2-economics,vidore-v3-hr")
    fx.write_beir(
        data / v1.dataset.path,
        PAGES,
        [(1, "red"), (2, "yellow"), (3, "cyan")],
        [(1, 1, 1), (2, 2, 1), (3, 3, 2), (3, 4, 1)],
    )
    fx.write_beir(
        data / v2.dataset.path,
        PAGES,
        [
            (1, "red", "english"),
            (2, "yellow", "english"),
            (3, "red", "french"),
            (4, "cyan", "french"),
        ],
        [(1, 1, 1), (2, 2, 1), (3, 2, 1), (4, 3, 1)],
    )
    langs = ("english", "french", "spanish", "german", "italian", "portuguese")
    fx.write_beir_subsets(
        data / v3.dataset.path,
        PAGES,
        {lang: [(f"{lang}-1", "red")] for lang in langs},
        [(f"{lang}-1", 1, 1) for lang in langs],
    )


def test_task_names_revisions_and_subsets_match_mteb():
    """Every task we map to mteb is mteb's task of that name on the same dataset revision, main
    score and language subsets."""
    mapped = [s for s in task_specs().values() if s.mteb_name]
    assert len(mapped) == 22  # ViDoRe v1 (10), v2 (4) and v3's public tasks (8)
    for spec in mapped:
        meta = mteb.get_task(spec.mteb_name).metadata
        assert meta.dataset["path"] == spec.dataset.path, spec.name
        assert meta.dataset["revision"] == spec.dataset.revision, spec.name
        assert meta.main_score == spec.main_metric, spec.name
        subsets = list(spec.options.get("subsets") or [])
        if spec.options.get("by_language"):
            subsets = list(spec.languages)
        assert sorted(meta.hf_subsets) == sorted(subsets or ["default"]), spec.name


@pytest.mark.filterwarnings("ignore:.*Missing subsets")
def test_export_round_trips_through_mteb_loader(tmp_path):
    write_fixtures(tmp_path / "data")
    specs = get_tasks("vidore-v1-arxivqa,vidore-v2-economics,vidore-v3-hr")
    harness.evaluate(
        toy_models.ColorEncoder(),
        specs,
        output=str(tmp_path / "runs"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "data"),
        progress=False,
    )
    harness.evaluate(
        "test-hash",
        specs[:1],
        budgets="1x1,4x8,16x64,4x8:int8,1x1>16x64@2",
        output=str(tmp_path / "runs"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "data"),
        progress=False,
    )
    out = tmp_path / "mteb"
    refused = cli("report", "export", "--format", "mteb", "--results", str(tmp_path / "runs"),
                  "--output", str(out))  # fmt: skip
    assert refused.returncode == 1 and "--allow-partial" in refused.stderr
    assert not (out / "results").exists()
    done = cli("report", "export", "--format", "mteb", "--results", str(tmp_path / "runs"),
               "--output", str(out), "--allow-partial")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "8 mteb result files" in done.stdout  # 3 tasks of test-color, 5 budgets of test-hash

    cache = mteb.ResultCache(cache_path=out)
    loaded = cache.load_results(include_remote=False, load_experiments="match_name")
    by_key = {(m.model_name, m.experiment_name): m for m in loaded.model_results}
    assert set(by_key) == {
        ("test-color", None),
        ("test-hash", None),  # its largest plain budget, 16x64
        ("test-hash", "budget_1x1"),
        ("test-hash", "budget_4x8"),
        ("test-hash", "budget_4x8_int8"),
        ("test-hash", "budget_1x1_16x64@2"),
    }
    color = {r.task_name: r for r in by_key[("test-color", None)].task_results}
    # The hand-worked scores of tests/test_benchmarks.py, as mteb reads them.
    ndcg3 = (1 + 2 / LOG2_3) / (2 + 1 / LOG2_3)
    v1 = color["VidoreArxivQARetrieval"]
    assert v1.get_score() == pytest.approx((1 + 1 / LOG2_3 + ndcg3) / 3, abs=1e-6)
    assert v1.dataset_revision == "179762404662be6bf48c30b4fb2b2ef8c6891290"
    english = (1 + 1 / LOG2_3) / 2
    french = (1 / math.log2(5) + 1 / LOG2_3) / 2
    v2 = color["Vidore2EconomicsReportsRetrieval"]
    subsets = {s["hf_subset"]: s for s in v2.scores["test"]}
    assert set(subsets) == {"english", "french"}
    assert subsets["french"]["languages"] == ["fra-Latn"]
    assert subsets["english"]["ndcg_at_5"] == pytest.approx(english, abs=1e-6)
    assert subsets["french"]["main_score"] == pytest.approx(french, abs=1e-6)
    assert v2.get_score() == pytest.approx((english + french) / 2, abs=1e-6)
    v3 = color["Vidore3HrRetrieval"]
    assert len(v3.scores["test"]) == 6 and v3.get_score() == pytest.approx(1.0)
    # mteb's own check of splits and subsets against its task metadata (the v2 file holds two
    # of the four languages, which mteb fills with NaN, as for any missing subset).
    for name, result in color.items():
        checked = result.validate_and_filter_scores(task=mteb.get_task(name))
        assert checked.task_name == name
    # test-hash: every budget's file holds that budget's metrics under mteb's names.
    record = json.loads((tmp_path / "runs" / "test-hash" / "vidore-v1-arxivqa.json").read_text())
    rows = {row["label"]: row for row in record["budgets"]}
    for label in rows:
        folder = "" if label == "16x64" else f"experiments/{experiment_name({'budget': label})}/"
        path = out / "results" / "test-hash" / "no_revision_available" / folder
        result = mteb.TaskResult.from_disk(path / "VidoreArxivQARetrieval.json")
        (subset,) = result.scores["test"]
        metrics = rows[label]["metrics"]
        assert subset["main_score"] == pytest.approx(rows[label]["main_score"])
        assert subset["hit_rate_at_3"] == pytest.approx(metrics["hit_at_3"])
        assert subset["accuracy"] == pytest.approx(metrics["recall_at_1"])
        assert subset["mrr_at_10"] == pytest.approx(metrics["mrr_at_10"])


def test_export_skips_tasks_mteb_lacks_and_says_so(tmp_path):
    harness.evaluate(
        "test-hash",
        toy_tasks.CORPUS,
        output=str(tmp_path / "runs"),
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    result = cli("report", "export", "--results", str(tmp_path / "runs"),
                 "--output", str(tmp_path / "mteb"))  # fmt: skip
    assert result.returncode == 1
    assert "test-hash / toy-corpus: mteb has no such task" in result.stderr
    assert "nothing to export" in result.stderr and "Traceback" not in result.stderr


def _published(path: Path, task: str, revision: str, subsets: dict[str, float], nan=True) -> None:
    """A TaskResult file as mteb 1.x writes it: fractions, bare NaN for undefined metrics."""
    scores = [
        {"ndcg_at_5": v, "main_score": v, "nauc_ndcg_at_1_max": float("nan") if nan else 0.0,
         "hf_subset": name, "languages": ["eng-Latn"]}
        for name, v in subsets.items()
    ]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "dataset_revision": revision,
                "task_name": task,
                "mteb_version": "1.38.34",
                "scores": {"test": scores},
                "evaluation_time": 1.0,
                "kg_co2_emissions": None,
            }
        )  # fmt: skip
    )


def test_import_reads_mteb_layout_and_reports_beside_runs(tmp_path):
    repo = tmp_path / "results-repo"
    rev = repo / "results" / "org__model-a" / "abc123"
    (rev).mkdir(parents=True)
    (rev / "model_meta.json").write_text(json.dumps({"name": "org/model-a", "revision": "abc123",
                                                     "n_parameters": 2_000_000_000}))  # fmt: skip
    _published(
        rev / "VidoreArxivQARetrieval.json", "VidoreArxivQARetrieval", "7d94", {"default": 0.8}
    )
    _published(
        rev / "VidoreDocVQARetrieval.json", "VidoreDocVQARetrieval", "162b", {"default": 0.6}
    )
    four = {"french": 0.40, "spanish": 0.50, "english": 0.70, "german": 0.60}
    _published(rev / "Vidore2EconomicsReportsRetrieval.json", "Vidore2EconomicsReportsRetrieval",
               "b3e3", four)  # fmt: skip
    # Incomplete: one language of four; named and left out.
    _published(rev / "Vidore2ESGReportsRetrieval.json", "Vidore2ESGReportsRetrieval", "0542",
               {"french": 0.5})  # fmt: skip
    _published(rev / "SomeOtherTask.json", "SomeOtherTask", "x", {"default": 0.1})
    # A third-party checkout may hold broken files: each is named (with its line) and skipped.
    (rev / "VidoreTabfquadRetrieval.json").write_text('{\n  "task_name": oops\n}\n')
    (rev / "VidoreTatdqaRetrieval.json").write_text('{"task_name": "VidoreTatdqaRetrieval"}\n')
    # A score on the wrong scale (x100) is not imported as a score of 8250.
    _published(rev / "VidoreShiftProjectRetrieval.json", "VidoreShiftProjectRetrieval", "84a3",
               {"default": 82.5})  # fmt: skip
    exp = rev / "experiments" / "vector_type_multi_vector"
    exp.mkdir(parents=True)
    (exp / "model_meta.json").write_text(json.dumps({"name": "org/model-a", "revision": "abc123",
                                                     "experiment_kwargs": {"vector_type": "multi_vector"}}))  # fmt: skip
    _published(
        exp / "VidoreArxivQARetrieval.json", "VidoreArxivQARetrieval", "7d94", {"default": 0.9}
    )
    output = tmp_path / "reported" / "mteb.json"
    result = cli("report", "import", "--format", "mteb", "--from", str(repo), "--commit", COMMIT,
                 "--models", "org/model-a,org/absent", "--output", str(output))  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(output.read_text())
    assert data["commit"] == COMMIT and "embeddings-benchmark/results" in data["repository"]
    plain, multi = data["models"]
    assert plain["experiment"] is None and multi["experiment"] == {"vector_type": "multi_vector"}
    assert plain["tasks"]["vidore-v1-arxivqa"]["score"] == pytest.approx(80.0)
    assert plain["tasks"]["vidore-v1-arxivqa"]["dataset_revision"] == "7d94"
    eco = plain["tasks"]["vidore-v2-economics"]
    assert eco["score"] == pytest.approx((40 + 50 + 70 + 60) / 4)  # mteb's mean over subsets
    assert eco["metrics"]["ndcg_at_5_english"] == pytest.approx(70.0)
    assert set(plain["tasks"]) == {"vidore-v1-arxivqa", "vidore-v1-docvqa", "vidore-v2-economics"}
    assert multi["tasks"]["vidore-v1-arxivqa"]["score"] == pytest.approx(90.0)
    whys = {(s["model"], s["why"]) for s in data["skipped"]}
    assert ("org/absent", "not in the results repository") in whys
    assert ("org/model-a", "its subsets are not the ones mteb scores") in whys
    broken = {s["file"]: s["why"] for s in data["skipped"] if "file" in s}
    tabfquad = next(w for f, w in broken.items() if f.endswith("VidoreTabfquadRetrieval.json"))
    assert tabfquad.endswith("VidoreTabfquadRetrieval.json:2 is not valid JSON (Expecting value)")
    tatdqa = next(w for f, w in broken.items() if f.endswith("VidoreTatdqaRetrieval.json"))
    assert "is not an mteb TaskResult (no 'scores')" in tatdqa
    shift = next(w for f, w in broken.items() if f.endswith("VidoreShiftProjectRetrieval.json"))
    assert "main_score 82.5, outside [0, 1]" in shift
    names = [entry["name"] for entry in load_reported(output)]
    assert names == ["org/model-a", "org/model-a [vector_type_multi_vector]"]


def test_reported_rows_join_the_tables_of_the_same_tasks(tmp_path, monkeypatch):
    """The committed import: each published score is the mean of main_score over the subsets of
    the file it names, and the rows appear in the ViDoRe tables beside a run of those tasks."""
    data = json.loads((ROOT / "results" / "reported" / "mteb_vidore.json").read_text())
    assert data["commit"] == COMMIT
    colpali = next(m for m in data["models"] if m["model"] == "vidore/colpali-v1.3")
    # Read off results/vidore__colpali-v1.3/1b5c.../VidoreArxivQARetrieval.json and
    # Vidore3HrRetrieval.json at the pinned commit (main_score 0.83251; six subsets).
    assert colpali["tasks"]["vidore-v1-arxivqa"]["score"] == pytest.approx(83.251)
    hr = [0.42691, 0.44838, 0.53267, 0.41162, 0.41767, 0.45093]
    assert colpali["tasks"]["vidore-v3-hr"]["score"] == pytest.approx(100 * sum(hr) / 6, abs=1e-3)
    write_fixtures(tmp_path / "data")
    harness.evaluate(
        toy_models.ColorEncoder(),
        get_tasks("vidore-v1-arxivqa"),
        output=str(tmp_path / "runs"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "data"),
        progress=False,
    )
    table = cli("report", "table", "--results", str(tmp_path / "runs"), "--include-partial")
    assert table.returncode == 0, table.stderr
    v1 = table.stdout.split("### ViDoRe v1 (nDCG@5)")[1].split("###")[0]
    line = next(
        x for x in v1.splitlines() if x.startswith("| vidore/colpali-v1.3 (reported, mteb)")
    )
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "83.25" and cells[-1] == "84.75"  # arxivqa; the mean of the ten tasks
    assert "ViDoRe v3" not in table.stdout  # no run of a v3 task: no v3 table, no v3 rows
    hidden = cli("report", "table", "--results", str(tmp_path / "runs"), "--include-partial",
                 "--no-reported")  # fmt: skip
    assert "(reported, mteb)" not in hidden.stdout


def test_reported_scores_join_the_html_page_of_the_same_tasks(tmp_path):
    from harness.reporting.web.page import page_data

    write_fixtures(tmp_path / "data")
    (record,) = harness.evaluate(
        toy_models.ColorEncoder(),
        get_tasks("vidore-v1-arxivqa"),
        output=str(tmp_path / "runs"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "data"),
        progress=False,
    )
    rows = page_data([record])["rows"]
    published = [r for r in rows if r["reported"]]
    assert {r["task"] for r in rows} == {"vidore-v1-arxivqa"}
    colpali = next(r for r in published if r["model"] == "vidore/colpali-v1.3")
    assert colpali["score"] == pytest.approx(83.251) and colpali["params"] == 2_920_000_000
    assert colpali["kind"] == "reported" and colpali["bytes"] is None
    # 13 of the imported model folders have ViDoRe v1 scores
    assert len(published) == 13
    assert not [r for r in page_data([record], reported=False)["rows"] if r["reported"]]


def test_one_default_budget_per_model_across_its_tasks(tmp_path):
    """A model run at 1x1 and 16x64 on one task and at 1x1 alone on another: 16x64 is its
    default everywhere, so the revision folder never mixes configurations."""
    write_fixtures(tmp_path / "data")
    docvqa = get_tasks("vidore-v1-docvqa")[0]
    fx.write_beir(tmp_path / "data" / docvqa.dataset.path, PAGES, [(1, "red")], [(1, 1, 1)])
    common = dict(output=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"),
                  data_dir=str(tmp_path / "data"), progress=False)  # fmt: skip
    harness.evaluate("test-hash", get_tasks("vidore-v1-arxivqa"), budgets="1x1,16x64", **common)
    harness.evaluate("test-hash", [docvqa], budgets="1x1", **common)
    out = tmp_path / "mteb"
    done = cli("report", "export", "--results", str(tmp_path / "runs"), "--output", str(out),
               "--allow-partial")  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = out / "results" / "test-hash" / "no_revision_available"
    assert sorted(p.name for p in folder.glob("*.json")) == [
        "VidoreArxivQARetrieval.json",
        "model_meta.json",
    ]
    assert json.loads((folder / "model_meta.json").read_text())["similarity_fn_name"] == "max_sim"
    one = folder / "experiments" / "budget_1x1"
    assert sorted(p.name for p in one.glob("*.json")) == [
        "VidoreArxivQARetrieval.json",
        "VidoreDocVQARetrieval.json",
        "model_meta.json",
    ]
    assert json.loads((one / "model_meta.json").read_text())["similarity_fn_name"] == "dot"


def test_import_takes_folders_without_model_meta_from_their_path(tmp_path):
    repo = tmp_path / "results-repo"
    rev = repo / "results" / "org__model-b" / "def456"
    _published(
        rev / "VidoreArxivQARetrieval.json", "VidoreArxivQARetrieval", "7d94", {"default": 0.7}
    )
    exp = rev / "experiments" / "some_setting"
    (exp).mkdir(parents=True)
    (exp / "model_meta.json").write_text(json.dumps({"name": "org/model-b",
                                                     "experiment_kwargs": {"x": "y"}}))  # fmt: skip
    _published(
        exp / "VidoreArxivQARetrieval.json", "VidoreArxivQARetrieval", "7d94", {"default": 0.6}
    )
    output = tmp_path / "mteb.json"
    result = cli("report", "import", "--from", str(repo), "--commit", COMMIT,
                 "--models", "org/model-b", "--output", str(output))  # fmt: skip
    assert result.returncode == 0, result.stderr
    plain, experiment = json.loads(output.read_text())["models"]
    assert (plain["model"], plain["revision"]) == ("org/model-b", "def456")
    assert plain["tasks"]["vidore-v1-arxivqa"]["score"] == pytest.approx(70.0)
    assert experiment["revision"] == "def456"  # the revision folder's name, not the experiment's
    assert experiment["tasks"]["vidore-v1-arxivqa"]["score"] == pytest.approx(60.0)
