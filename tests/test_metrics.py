"""Metrics agree with pytrec_eval (trec_eval) to 1e-6; MMEB's precision@1 rules by hand."""

from __future__ import annotations

import random
import statistics
from functools import cmp_to_key

import pytest
import pytrec_eval

from harness.metrics import (
    evaluate_run,
    per_query,
    precision_at_1_official,
    precision_at_1_strict,
    trec_order,
)

CUTOFFS = (1, 3, 5, 10, 20)


def random_case(seed: int):
    rng = random.Random(seed)
    docs = [f"d{i:02d}" for i in range(40)] + ["a", "b", "zz"]
    qrels = {}
    for q in range(25):
        judged = rng.sample(docs, rng.randint(1, 12))
        qrels[f"q{q}"] = {d: rng.choice([0, 0, 1, 2, 3]) for d in judged}
        if all(v == 0 for v in qrels[f"q{q}"].values()):
            qrels[f"q{q}"][judged[0]] = 1
    run = {}
    for q in range(3, 30):  # q0-q2 only in qrels, q25-q29 only in the run
        retrieved = rng.sample(docs, rng.randint(1, 30))
        # Scores rounded to one decimal: many exact ties, broken by trec_eval's rule.
        run[f"q{q}"] = {d: round(rng.uniform(-1, 1), 1) for d in retrieved}
    run["q4"] = {}  # a query in the qrels with an empty run scores zero
    qrels["q5"] = {}  # an empty judgement set: trec_eval skips the query
    qrels["q6"] = {d: 0 for d in qrels["q6"]}  # judged, none relevant: scored as zero
    return run, qrels


def trec_compare(scores):
    """trec_eval's comp_sim_docno: sim descending, then strcmp(b, a)."""

    def compare(a, b):
        if scores[a] != scores[b]:
            return -1 if scores[a] > scores[b] else 1
        return (b > a) - (b < a)

    return compare


def reference_cut(run, qrels, trec_measure: str, k: int) -> float:
    """Measures without a trec cutoff (recip_rank, num_rel_ret) on runs truncated in trec order."""
    truncated = {
        q: {d: docs[d] for d in sorted(docs, key=cmp_to_key(trec_compare(docs)))[:k]}
        for q, docs in run.items()
    }
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {trec_measure})
    return [v[trec_measure] for v in evaluator.evaluate(truncated).values()]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_pytrec_eval_on_ties_graded_qrels_and_missing_queries(seed):
    run, qrels = random_case(seed)
    ours = evaluate_run(run, qrels, CUTOFFS)
    cut = ",".join(map(str, CUTOFFS))
    evaluator = pytrec_eval.RelevanceEvaluator(
        qrels, {f"ndcg_cut.{cut}", f"recall.{cut}", f"P.{cut}", f"map_cut.{cut}"}
    )
    theirs_by_query = evaluator.evaluate(run)
    assert set(theirs_by_query) == set(per_query(run, qrels, CUTOFFS))
    assert "q5" not in theirs_by_query and "q6" in theirs_by_query
    for k in CUTOFFS:
        for mine, theirs in (
            ("ndcg", "ndcg_cut"),
            ("recall", "recall"),
            ("precision", "P"),
            ("map", "map_cut"),
        ):
            expected = statistics.mean(v[f"{theirs}_{k}"] for v in theirs_by_query.values())
            assert ours[f"{mine}_at_{k}"] == pytest.approx(expected, abs=1e-6), (mine, k)
        mrr = reference_cut(run, qrels, "recip_rank", k)
        assert ours[f"mrr_at_{k}"] == pytest.approx(statistics.mean(mrr), abs=1e-6)
        hits = reference_cut(run, qrels, "num_rel_ret", k)
        assert ours[f"hit_at_{k}"] == pytest.approx(
            statistics.mean(1.0 if h > 0 else 0.0 for h in hits), abs=1e-6
        )


def test_trec_order_breaks_ties_by_descending_id():
    assert trec_order({"a": 1.0, "c": 1.0, "b": 2.0, "d": 0.5}) == ["b", "c", "a", "d"]


def test_ndcg_by_hand():
    # Ranking d1 (gain 0), d2 (gain 2), d3 (gain 1); ideal 2, 1.
    run = {"q": {"d1": 3.0, "d2": 2.0, "d3": 1.0}}
    qrels = {"q": {"d2": 2, "d3": 1, "d4": 0}}
    dcg = 2 / 1.584962500721156 + 1 / 2.0
    idcg = 2 / 1.0 + 1 / 1.584962500721156
    assert evaluate_run(run, qrels, (3,))["ndcg_at_3"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert evaluate_run(run, qrels, (1,))["precision_at_1"] == 0.0
    assert evaluate_run(run, qrels, (3,))["mrr_at_3"] == 0.5


def test_mmeb_precision_at_1_rules():
    assert precision_at_1_official([0.5, 0.2, 0.1]) == 1.0
    assert precision_at_1_official([0.5, 0.5, 0.1]) == 1.0  # first maximum wins: a tie counts
    assert precision_at_1_strict([0.5, 0.5, 0.1]) == 0.0
    assert precision_at_1_official([0.4, 0.5]) == 0.0
    assert precision_at_1_strict([0.6, 0.5]) == 1.0
    assert precision_at_1_official([0.3]) == precision_at_1_strict([0.3]) == 1.0
