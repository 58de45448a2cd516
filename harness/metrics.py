"""Retrieval metrics with trec_eval semantics, and MMEB's precision@1 rules.

Runs are {qid: {cid: score}}, qrels {qid: {cid: gain}}. As in trec_eval (and so pytrec_eval):
a query's run is ordered by score descending, ties by document id descending (strcmp order);
only queries present in both the run and the qrels are averaged, and a query whose judgement set
is empty is skipped (it has no qrels line; one judged with gain 0 only is kept and scores 0); a document is relevant when
its gain is >= 1; nDCG uses the gain itself (linear) over log2(rank + 1), with the ideal
ranking built from every judged document with positive gain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int | float]]

DEFAULT_CUTOFFS: tuple[int, ...] = (1, 3, 5, 10, 20, 100)
MEASURES: tuple[str, ...] = ("ndcg", "recall", "precision", "map", "mrr", "hit")


def trec_order(scores: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval's order: score descending, then id descending.

    >>> trec_order({"a": 0.5, "b": 0.9, "c": 0.5})
    ['b', 'c', 'a']
    """
    by_id = sorted(scores, reverse=True)
    return sorted(by_id, key=lambda doc: -float(scores[doc]))


def _query_metrics(
    ranked: Sequence[str], judged: Mapping[str, float], cutoffs: Iterable[int]
) -> dict[str, float]:
    gains = [float(judged.get(doc, 0)) for doc in ranked]
    relevant = [g >= 1 for g in gains]
    n_relevant = sum(1 for g in judged.values() if g >= 1)
    ideal = sorted((float(g) for g in judged.values() if g > 0), reverse=True)
    first_hit = next((i + 1 for i, r in enumerate(relevant) if r), None)
    out: dict[str, float] = {}
    for k in cutoffs:
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains[:k]) if g > 0)
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal[:k]))
        hits = sum(relevant[:k])
        ap = 0.0
        seen = 0
        for i, r in enumerate(relevant[:k]):
            if r:
                seen += 1
                ap += seen / (i + 1)
        out[f"ndcg_at_{k}"] = dcg / idcg if idcg > 0 else 0.0
        out[f"recall_at_{k}"] = hits / n_relevant if n_relevant else 0.0
        out[f"precision_at_{k}"] = hits / k
        out[f"map_at_{k}"] = ap / n_relevant if n_relevant else 0.0
        out[f"mrr_at_{k}"] = 1.0 / first_hit if first_hit is not None and first_hit <= k else 0.0
        out[f"hit_at_{k}"] = 1.0 if hits else 0.0
    return out


def per_query(
    run: Run, qrels: Qrels, cutoffs: Iterable[int] = DEFAULT_CUTOFFS
) -> dict[str, dict[str, float]]:
    """Metrics for each query present in both run and qrels with at least one judgement
    (trec_eval's rule; an empty run scores 0)."""
    cutoffs = tuple(cutoffs)
    return {
        qid: _query_metrics(trec_order(run[qid]), qrels[qid], cutoffs)
        for qid in sorted(run)
        if qrels.get(qid)
    }


def mean_metrics(rows: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Unweighted mean of each metric over queries."""
    if not rows:
        return {}
    names = next(iter(rows.values())).keys()
    return {name: sum(r[name] for r in rows.values()) / len(rows) for name in names}


def evaluate_run(
    run: Run, qrels: Qrels, cutoffs: Iterable[int] = DEFAULT_CUTOFFS
) -> dict[str, float]:
    """Mean nDCG, recall, precision, MAP, MRR and hit rate at each cutoff.

    One query whose relevant page is ranked second: nDCG@5 = 1 / log2(3), MRR@10 = 1/2.

    >>> m = evaluate_run({"q": {"p1": 0.9, "p2": 0.8}}, {"q": {"p2": 1}}, cutoffs=(5, 10))
    >>> round(m["ndcg_at_5"], 4), m["mrr_at_10"], m["recall_at_5"], m["precision_at_5"]
    (0.6309, 0.5, 1.0, 0.2)
    """
    return mean_metrics(per_query(run, qrels, cutoffs))


def precision_at_1_official(scores: Sequence[float]) -> float:
    """VLM2Vec's MMEB rule: argmax over the row's list (first maximum wins); the positive is
    index 0, so a tie with it counts as a hit.

    >>> precision_at_1_official([0.7, 0.7, 0.1]), precision_at_1_official([0.2, 0.9])
    (1.0, 0.0)
    """
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return 1.0 if best == 0 else 0.0


def precision_at_1_strict(scores: Sequence[float]) -> float:
    """The positive (index 0) must be the unique maximum: ties count as misses.

    >>> precision_at_1_strict([0.7, 0.7, 0.1]), precision_at_1_strict([0.8, 0.7])
    (0.0, 1.0)
    """
    return 1.0 if all(scores[0] > s for s in scores[1:]) else 0.0
