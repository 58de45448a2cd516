"""The evaluation loop end to end on generated tasks, with the deterministic test encoder."""

from __future__ import annotations

import json
import statistics

import pytest
import pytrec_eval
import toy_models
import toy_tasks

import harness
from harness.errors import HarnessError, UsageError
from harness.protocol import Item
from harness.testing import HashEncoder


def run(encoder, tmp_path, tasks=None, **kw):
    options = {
        "output": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
        "data_dir": str(tmp_path / "data"),
        "progress": False,
    }
    options.update(kw)
    budgets = options.pop("budgets", None)
    return harness.evaluate(encoder, tasks or toy_tasks.TASKS, budgets=budgets, **options)


def naive_maxsim(q, c, rq, rc):
    q, c = q[:rq], c[:rc]
    return sum(max(sum(a * b for a, b in zip(qv, cv, strict=True)) for cv in c) for qv in q)


def item_vectors(encoder, items, role):
    mv = HashEncoder(**encoder.card.args).encode(items, role=role)
    return [mv.vectors[i, : mv.lengths[i]].tolist() for i in range(len(items))]


def test_result_file_has_exactly_the_design_schema(tmp_path):
    run(HashEncoder(), tmp_path, budgets="1x1,16x64")
    record = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert list(record) == [
        "schema_version",
        "harness_version",
        "git_sha",
        "created_at",
        "model",
        "task",
        "budgets",
        "encode",
        "environment",
        "config",
    ]
    assert record["schema_version"] == 1
    assert list(record["model"]) == [
        "name",
        "family",
        "backbone",
        "revision",
        "n_params",
        "dim",
        "args",
        "backbone_params",
        "training",
    ]
    assert record["model"]["training"] is None  # not a `harness train` checkpoint
    assert list(record["task"]) == [
        "name",
        "benchmark",
        "category",
        "split",
        "dataset",
        "main_metric",
        "n_queries",
        "n_candidates",
        "version",
        "notes",
        "size_check",
    ]
    assert record["task"]["dataset"] == {"path": "toy/corpus", "revision": "r1", "config": None}
    assert record["task"]["n_queries"] == 13 and record["task"]["n_candidates"] == 41
    assert [b["label"] for b in record["budgets"]] == ["1x1", "16x64"]
    for row in record["budgets"]:
        assert list(row) == [
            "label",
            "query",
            "candidate",
            "main_score",
            "metrics",
            "cost",
            "index",
            "per_query",
        ]
        assert row["index"] == {"backend": "exact"}
        assert sum(row["per_query"].values()) / len(row["per_query"]) == pytest.approx(
            row["main_score"]
        )
        assert 0.0 <= row["main_score"] <= 1.0 and row["main_score"] == row["metrics"]["ndcg_at_5"]
        assert {"ndcg_at_5", "recall_at_5", "precision_at_1", "mrr_at_10"} <= set(row["metrics"])
        assert list(row["cost"]) == [
            "vectors_per_query",
            "vectors_per_candidate",
            "index_bytes_per_candidate",
            "scoring_flops_per_pair",
            "scoring_ms_per_query",
            "scoring_timing_runs",
            "scoring_ms_per_query_runs",
            "n_candidates_scored",
            "candidates_out_of_core",
        ]
        assert row["cost"]["scoring_timing_runs"] in (1, 2, 5)
        assert len(row["cost"]["scoring_ms_per_query_runs"]) == row["cost"]["scoring_timing_runs"]
    cost = record["budgets"][1]["cost"]
    assert cost["vectors_per_query"] == 16 and cost["vectors_per_candidate"] == 64
    assert cost["index_bytes_per_candidate"] == 64 * 32 * 4
    assert cost["scoring_flops_per_pair"] == 2 * 16 * 64 * 32
    assert cost["n_candidates_scored"] == 41
    assert list(record["encode"])[:7] == [
        "queries_seconds",
        "candidates_seconds",
        "items_per_second",
        "device",
        "dtype",
        "batch_size",
        "world_size",
    ]
    assert list(record["environment"]) == [
        "python",
        "torch",
        "transformers",
        "platform",
        "cpu",
        "gpu",
    ]
    assert record["encode"]["peak_memory_bytes"] > 10 * 2**20  # a Python process with torch loaded
    assert record["config"]["budgets"] == ["1x1", "16x64"] and record["config"]["tasks"] == [
        "toy-corpus",
        "toy-lists",
    ]


@pytest.mark.parametrize("budget", [(1, 1), (2, 4), (16, 64)])
def test_corpus_metrics_equal_naive_scoring_and_pytrec_eval(tmp_path, budget):
    encoder = HashEncoder(ragged=True)
    record = run(encoder, tmp_path, tasks=[toy_tasks.CORPUS], budgets=f"{budget[0]}x{budget[1]}")[0]
    data = toy_tasks.CORPUS.load(tmp_path / "data")
    qv, cv = (
        item_vectors(encoder, data.queries, "query"),
        item_vectors(encoder, data.candidates, "candidate"),
    )
    naive_run = {
        q.id: {c.id: naive_maxsim(qv[i], cv[j], *budget) for j, c in enumerate(data.candidates)}
        for i, q in enumerate(data.queries)
    }
    evaluator = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.5,10", "recall.5", "P.1"})
    expected = evaluator.evaluate(naive_run)
    metrics = record["budgets"][0]["metrics"]
    for ours, theirs in (
        ("ndcg_at_5", "ndcg_cut_5"),
        ("ndcg_at_10", "ndcg_cut_10"),
        ("recall_at_5", "recall_5"),
        ("precision_at_1", "P_1"),
    ):
        assert metrics[ours] == pytest.approx(
            statistics.mean(v[theirs] for v in expected.values()), abs=1e-6
        )


def test_candidate_list_precision_by_the_official_and_strict_rules(tmp_path):
    encoder = HashEncoder()
    record = run(encoder, tmp_path, tasks=[toy_tasks.LISTS], budgets="2x4")[0]
    data = toy_tasks.LISTS.load(None)
    by_id = {c.id: c for c in data.candidates}
    qv = item_vectors(encoder, data.queries, "query")
    official = strict = 0
    for i, q in enumerate(data.queries):
        items = [by_id[c] for c in data.candidate_lists[q.id]]
        scores = [naive_maxsim(qv[i], v, 2, 4) for v in item_vectors(encoder, items, "candidate")]
        official += scores.index(max(scores)) == 0
        strict += all(scores[0] > s for s in scores[1:])
    row = record["budgets"][0]
    assert row["metrics"]["precision_at_1"] == pytest.approx(official / len(data.queries))
    assert row["metrics"]["precision_at_1_strict"] == pytest.approx(strict / len(data.queries))
    assert row["main_score"] == row["metrics"]["precision_at_1"]
    lengths = [len(v) for v in data.candidate_lists.values()]
    assert row["cost"]["n_candidates_scored"] == pytest.approx(sum(lengths) / len(lengths))


def test_nested_model_encodes_each_unique_item_once_for_all_budgets(tmp_path):
    encoder = HashEncoder()
    run(encoder, tmp_path, tasks=[toy_tasks.CORPUS], budgets="all", batch_size=1000)
    encoded = {
        role: sum(n for r, n in encoder.calls if r == role) for role in ("query", "candidate")
    }
    # 13 query rows with one repeated text; 41 candidates with one duplicated content.
    assert encoded == {"query": 12, "candidate": 40}


def test_non_nested_model_encodes_once_per_budget(tmp_path):
    encoder = HashEncoder(nested=False)
    records = run(
        encoder, tmp_path, tasks=[toy_tasks.CORPUS], budgets="1x1,2x4,16x64", batch_size=1000
    )
    assert len(encoder.calls) == 6
    costs = [b["cost"]["vectors_per_candidate"] for b in records[0]["budgets"]]
    assert costs == [1, 4, 64]


def test_identical_second_run_recomputes_nothing(tmp_path):
    first = run(HashEncoder(), tmp_path)
    paths = sorted((tmp_path / "out").rglob("*.json"))
    before = [p.read_bytes() for p in paths]
    again = HashEncoder()
    second = run(again, tmp_path)
    assert again.calls == []
    assert [p.read_bytes() for p in paths] == before
    assert second == first


def test_new_budgets_extend_an_existing_result_from_the_cache(tmp_path):
    run(HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="1x1")
    again = HashEncoder()
    record = run(again, tmp_path, tasks=[toy_tasks.CORPUS], budgets="16x64,1x1")[0]
    assert again.calls == []  # embeddings came from the cache
    assert [b["label"] for b in record["budgets"]] == ["1x1", "16x64"]
    stored = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert [b["label"] for b in stored["budgets"]] == ["1x1", "16x64"]


def test_existing_result_from_other_model_args_is_not_silently_mixed(tmp_path):
    run(HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="1x1")
    with pytest.raises(UsageError, match="--overwrite"):
        run(HashEncoder(seed=5), tmp_path, tasks=[toy_tasks.CORPUS], budgets="2x4")
    record = run(
        HashEncoder(seed=5), tmp_path, tasks=[toy_tasks.CORPUS], budgets="2x4", overwrite=True
    )[0]
    assert record["model"]["args"]["seed"] == 5 and [b["label"] for b in record["budgets"]] == [
        "2x4"
    ]


def test_budget_beyond_the_model_names_its_valid_budgets(tmp_path):
    with pytest.raises(UsageError, match="provides 16.*1x1, 2x4, 4x8, 8x16, 16x64"):
        run(HashEncoder(), tmp_path, budgets="32x64")
    with pytest.raises(UsageError, match="not nested"):
        run(HashEncoder(nested=False), tmp_path, budgets="3x5")


@pytest.mark.parametrize(
    ("factory", "message"),
    [(toy_models.NaNEncoder, "NaN"), (toy_models.ConstantEncoder, "identical")],
)
def test_broken_embeddings_fail_clearly_and_keep_finished_results(tmp_path, factory, message):
    with pytest.raises(HarnessError, match=message):
        run(factory(), tmp_path, tasks=[toy_tasks.LISTS, toy_tasks.CORPUS], budgets="1x1")
    name = factory().card.name
    assert (tmp_path / "out" / name / "toy-lists.json").exists()
    assert not (tmp_path / "out" / name / "toy-corpus.json").exists()


def test_unwritable_output_fails_before_any_encoding(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    encoder = HashEncoder()
    with pytest.raises(HarnessError, match="not writable"):
        run(encoder, tmp_path, output=str(blocker / "out"))
    with pytest.raises(HarnessError, match="not writable"):
        run(encoder, tmp_path, cache_dir=str(blocker / "cache"))
    assert encoder.calls == []


def test_trec_run_files_rank_as_trec_eval(tmp_path):
    record = run(HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="2x4", trec_runs=True)[
        0
    ]
    path = tmp_path / "out" / "test-hash" / "runs" / "toy-corpus.2x4.trec"
    lines = [line.split() for line in path.read_text().splitlines()]
    assert (
        {len(parts) for parts in lines} == {6}
        and lines[0][1] == "Q0"
        and lines[0][5] == "test-hash_2x4"
    )
    trec_run = {}
    for qid, _, doc, _rank, score, _ in lines:
        trec_run.setdefault(qid, {})[doc] = float(score)
    evaluator = pytrec_eval.RelevanceEvaluator(
        toy_tasks.CORPUS.load(tmp_path / "data").qrels, {"ndcg_cut.5"}
    )
    rescored = statistics.mean(v["ndcg_cut_5"] for v in evaluator.evaluate(trec_run).values())
    assert rescored == pytest.approx(record["budgets"][0]["metrics"]["ndcg_at_5"], abs=1e-5)


def test_limit_keeps_the_first_queries_and_says_so(tmp_path):
    record = run(HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="1x1", limit=3)[0]
    assert record["task"]["n_queries"] == 3 and record["task"]["n_candidates"] == 41
    assert any("first 3 queries" in note for note in record["task"]["notes"])


def test_image_items_are_encoded_by_content(tmp_path):
    data = toy_tasks.CORPUS.load(tmp_path / "data")
    with_images = [c for c in data.candidates if c.image is not None]
    assert with_images and all(isinstance(c, Item) for c in with_images)
    same_text = Item("x", with_images[0].text)
    assert same_text.content_hash != with_images[0].content_hash


@pytest.mark.parametrize(
    ("setting", "flag"),
    [
        ({"candidate_padding": "zero"}, "--candidate-padding"),
        ({"score_dtype": "bfloat16"}, "--score-dtype"),
    ],
)
def test_result_from_another_scoring_rule_is_not_silently_extended(tmp_path, setting, flag):
    run(HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="1x1")
    with pytest.raises(UsageError, match=f"{flag} .* differs"):
        run(HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="2x4", **setting)
    record = run(
        HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="2x4", overwrite=True, **setting
    )[0]
    stored = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    for key, value in setting.items():
        assert record["config"][key] == stored["config"][key] == value


def test_all_on_a_fixed_side_is_that_count_and_never_a_duplicate_row(tmp_path):
    record = run(HashEncoder(), tmp_path, tasks=[toy_tasks.CORPUS], budgets="allx64,16x64,1xall")[0]
    assert [b["label"] for b in record["budgets"]] == ["1x64", "16x64"]
