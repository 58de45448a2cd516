"""Stage 4, score: rank with the evaluator of the task's kind and compute its metrics.

`corpus`: every query against one shared corpus, exactly (blocked MaxSim with a running top-k,
in memory or out of core) or through an approximate index where a budget leaves one vector per
side; the top-k run is scored with trec_eval's rules. `candidates`: each query against its own
list, with MMEB's two precision@1 rules beside the trec_eval measures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from harness import faults
from harness.budgets import Budget, Cascade
from harness.cache import ShardedVectors
from harness.compression import stored
from harness.errors import HarnessError
from harness.index import FaissIndex, recall_against_exact
from harness.metrics import (
    DEFAULT_CUTOFFS,
    evaluate_run,
    mean_metrics,
    per_query,
    precision_at_1_official,
    precision_at_1_strict,
)
from harness.pipeline.context import TaskContext
from harness.pipeline.data import Prepared
from harness.pipeline.encode import Encoded
from harness.scoring import (
    SCORE_DTYPES,
    rank_shortlists,
    score_candidate_lists,
    score_corpus,
    score_shortlists,
)

LIST_CUTOFFS: tuple[int, ...] = (1, 5, 10)
# Scoring is timed again after the run that gives the result (the warm-up): TIMING_REPEATS
# times when that took under QUICK_SCORING_SECONDS, SLOW_REPEATS times under
# SLOW_SCORING_SECONDS; the median is reported and every timed run kept.
QUICK_SCORING_SECONDS = 1.0
TIMING_REPEATS = 5
SLOW_SCORING_SECONDS = 10.0
SLOW_REPEATS = 2

Run = dict[str, dict[str, float]]


@dataclass
class Scored:
    """One budget's ranking and metrics."""

    run: Run  # {qid: {cid: score}}: the top-k of a corpus, or each query's whole list
    metrics: dict[str, float]
    groups: dict[str, dict[str, float]]  # metrics of each query group (e.g. language)
    per_query: dict[str, float]  # each query's main score, for intervals and paired tests
    n_scored: float  # candidates scored per query
    seconds: float
    timings: list[float]
    index: dict[str, Any] | None  # shared corpora: how the top-k was found


def cutoffs(top_k: int) -> list[int]:
    """Metric cutoffs a run of top_k candidates per query supports (a smaller corpus is fine)."""
    return [c for c in DEFAULT_CUTOFFS if c <= top_k]


def score_budget(
    ctx: TaskContext, data: Prepared, enc: Encoded, slice_budget: Budget | None
) -> Scored:
    """Scoring runs on distinct items, so items with equal content get bit-identical scores
    and their tie order is exactly the documented one."""
    faults.reach("score")
    enc = as_stored(enc, slice_budget, enc.storage)
    evaluators = CASCADE_EVALUATORS if enc.cascade is not None else EVALUATORS
    scored = evaluators[ctx.spec.kind](ctx, data, enc, slice_budget)
    main = ctx.spec.main_metric
    if main not in scored.metrics:
        raise HarnessError(
            f"task {ctx.spec.name!r} names main metric {main!r}, which its evaluator does not compute "
            f"(it computes {', '.join(sorted(scored.metrics))})"
        )
    return scored


def _score_shared_corpus(
    ctx: TaskContext, data: Prepared, enc: Encoded, slice_budget: Budget | None
) -> Scored:
    k = min(ctx.config.top_k, len(data.candidates))
    scores, rows, seconds, timings, index_info = _search(ctx, enc, slice_budget, k)
    return _corpus_scored(ctx, data, enc, slice_budget, scores, rows, seconds, timings, index_info)


def _corpus_scored(
    ctx: TaskContext,
    data: Prepared,
    enc: Encoded,
    slice_budget: Budget | None,
    scores: torch.Tensor,
    rows: torch.Tensor,
    seconds: float,
    timings: list[float],
    index_info: dict[str, Any],
) -> Scored:
    """A shared corpus's ranked distinct rows per query -> the top-k run and its metrics."""
    cfg = ctx.config
    k = min(cfg.top_k, len(data.candidates))
    ranked = [
        _expand(s, r, data.members, k) for s, r in zip(scores.tolist(), rows.tolist(), strict=True)
    ]
    cids = [c.id for c in data.candidates]
    run = {
        q.id: {cids[c]: score for score, c in ranked[u]}
        for q, u in zip(data.queries, data.query_rows.tolist(), strict=True)
    }
    if data.floor_scores_except is not None:
        run = floor_at_zero(ctx, run, enc, data, slice_budget)
    rows_by_query = per_query(run, data.qrels, cutoffs(cfg.top_k))
    metrics = mean_metrics(rows_by_query)
    main = ctx.spec.main_metric
    return Scored(
        run=run,
        metrics=metrics,
        groups=group_metrics(ctx, data, run, metrics, cutoffs(cfg.top_k)),
        per_query={q: m[main] for q, m in rows_by_query.items() if main in m},
        n_scored=float(len(data.candidates)),
        seconds=seconds,
        timings=timings,
        index=index_info,
    )


def _search(ctx: TaskContext, enc: Encoded, slice_budget: Budget | None, k: int):
    """Each query's top-k distinct candidates: (scores, rows, seconds, timing runs, index
    info), exactly, or through the approximate index where the budget leaves one vector per
    side (its recall against exact search recorded)."""
    cfg = ctx.config

    def exact_search():
        return score_corpus(
            enc.queries,
            enc.candidates,
            slice_budget,
            k=min(k, len(enc.candidates)),
            **_scoring(ctx),
        )

    single = _single_vectors(enc, slice_budget)
    if ctx.index.backend == "faiss" and single is not None:
        built = time.perf_counter()
        index = FaissIndex(ctx.index, single[1])
        began = time.perf_counter()
        (scores, rows), seconds, timings = _timed(
            lambda: index.search(single[0], min(k, len(enc.candidates)))
        )
        exact_began = time.perf_counter()
        _, exact_rows = exact_search()
        index_info = {
            "backend": ctx.index.label,
            "build_seconds": began - built,
            "exact_scoring_ms_per_query": 1000.0
            * (time.perf_counter() - exact_began)
            / max(1, len(enc.queries)),
            **recall_against_exact(rows, exact_rows, (1, 10, cfg.top_k)),
        }
    else:
        (scores, rows), seconds, timings = _timed(exact_search)
        index_info = {"backend": "exact"}
        if ctx.index.backend != "exact":
            index_info["note"] = (
                f"{ctx.index.label} serves one vector per side; this budget was scored exactly"
            )
    return scores, rows, seconds, timings, index_info


def _score_lists(
    ctx: TaskContext, data: Prepared, enc: Encoded, slice_budget: Budget | None
) -> Scored:
    lists, seconds, timings = _timed(
        lambda: _list_scores(ctx, enc, data.query_rows, data.list_rows, slice_budget)
    )
    return _lists_scored(ctx, data, [row.tolist() for row in lists], seconds, timings, None)


def _list_scores(
    ctx: TaskContext,
    enc: Encoded,
    query_rows: torch.Tensor,
    lists: list[list[int]],
    budget: Budget | None,
) -> list[torch.Tensor]:
    """Each query (a row of enc.queries) scored against its own list of candidate rows; a
    corpus left on disk gives up only the candidates the lists name."""
    candidates = enc.candidates
    if isinstance(candidates, ShardedVectors):
        union = sorted({r for rows in lists for r in rows})
        where = {r: i for i, r in enumerate(union)}
        candidates = candidates.take(union)
        lists = [[where[r] for r in rows] for rows in lists]
    return score_candidate_lists(
        enc.queries.select(query_rows), candidates, lists, budget, **_scoring(ctx)
    )


def _scoring(ctx: TaskContext) -> dict[str, Any]:
    """The run's scoring settings, as the scoring functions take them."""
    return {
        "block_bytes": ctx.block_bytes,
        "device": ctx.score_device,
        "compute_dtype": SCORE_DTYPES[ctx.config.score_dtype],
        "padding": ctx.config.candidate_padding,
    }


def _lists_scored(
    ctx: TaskContext,
    data: Prepared,
    rows: list[list[float]],
    seconds: float,
    timings: list[float],
    index_info: dict[str, Any] | None,
) -> Scored:
    """Each query's scores over its own list -> the run, trec_eval measures and MMEB's two
    precision@1 rules."""
    run = {}
    for q, row, cids in zip(data.queries, rows, data.list_ids, strict=True):
        entry: dict[str, float] = {}
        for cid, score in zip(cids, row, strict=True):
            entry[cid] = max(score, entry.get(cid, float("-inf")))
        run[q.id] = entry
    rows_by_query = per_query(run, data.qrels, LIST_CUTOFFS)
    metrics = mean_metrics(rows_by_query)
    official = {q.id: precision_at_1_official(r) for q, r in zip(data.queries, rows, strict=True)}
    strict = {q.id: precision_at_1_strict(r) for q, r in zip(data.queries, rows, strict=True)}
    metrics["precision_at_1"] = sum(official.values()) / len(rows)
    metrics["precision_at_1_strict"] = sum(strict.values()) / len(rows)
    main = ctx.spec.main_metric
    return Scored(
        run=run,
        metrics=metrics,
        groups=group_metrics(ctx, data, run, metrics, LIST_CUTOFFS),
        per_query=(
            official
            if main == "precision_at_1"
            else {q: m[main] for q, m in rows_by_query.items() if main in m}
        ),
        n_scored=sum(len(r) for r in rows) / len(rows),
        seconds=seconds,
        timings=timings,
        index=index_info,
    )


# ---------------------------------------------------------------- cascades


def _stages(enc: Encoded, slice_budget: Budget | Cascade | None):
    """(first-stage embeddings, second-stage embeddings, first slice, second slice), each
    stage's candidates in its stored form: a nested model's stages are prefixes of one
    encoding; a reducing model's come reduced already (no slicing)."""
    cascade = enc.cascade
    if enc.first is not None:
        first, second, first_slice, second_slice = enc.first, enc, None, None
    else:
        first, second, first_slice, second_slice = enc, enc, cascade.first, cascade.second
    return (
        as_stored(first, first_slice, cascade.first.storage),
        as_stored(second, second_slice, cascade.second.storage),
        first_slice,
        second_slice,
    )


def as_stored(enc: Encoded, budget: Budget | Cascade | None, storage: str | None) -> Encoded:
    """The candidates as read back from `storage` (kept to the budget's vectors first; out of
    core, block by block as they are read)."""
    if storage is None:
        return enc
    rc = None if budget is None or isinstance(budget, Cascade) else budget.candidate
    candidates = enc.candidates
    if isinstance(candidates, ShardedVectors):
        inner = candidates.transform

        def transform(mv):
            return stored((inner(mv) if inner else mv).prefix(rc), storage)

        return replace(enc, candidates=ShardedVectors(candidates.shards, transform=transform))
    return replace(enc, candidates=stored(candidates.prefix(rc), storage))


def cascade_corpus(
    ctx: TaskContext, data: Prepared, enc: Encoded, slice_budget: Budget | None
) -> Scored:
    """The first budget ranks the whole corpus; the second re-scores each query's top `depth`
    (distinct candidates) and orders them, ties to the lower row. Also measured: the second
    budget's exhaustive top-k, and how much of it the cascade finds (recall)."""
    cascade, cfg = enc.cascade, ctx.config
    first, enc, first_slice, second_slice = _stages(enc, slice_budget)
    depth = min(cascade.depth, len(enc.candidates))
    stage_seconds: list[tuple[float, float]] = []

    def run_cascade():
        began = time.perf_counter()
        _, shortlist = score_corpus(
            first.queries,
            first.candidates,
            first_slice,
            k=depth,
            **_scoring(ctx),
        )
        middle = time.perf_counter()
        rescored = _shortlist_scores(ctx, enc, enc.queries, shortlist, second_slice)
        ranked = rank_shortlists(rescored, shortlist)
        stage_seconds.append((middle - began, time.perf_counter() - middle))
        return ranked

    (scores, rows), seconds, timings = _timed(run_cascade)
    timed = stage_seconds[-len(timings) :]  # the warm-up's stages left out, as in _timed
    stages = [statistics.median(t[i] for t in timed) for i in (0, 1)]
    k = min(cfg.top_k, len(enc.candidates))
    # the second budget's exhaustive scan, timed the same way beside it
    _, exact_rows, exact_seconds, _, _ = _search(ctx, replace(enc, cascade=None), second_slice, k)
    per_query = 1000.0 / max(1, len(enc.queries))
    index_info = {
        "backend": "cascade",
        "first": cascade.first.label,
        "second": cascade.second.label,
        "depth": cascade.depth,
        "first_stage_ms_per_query": stages[0] * per_query,
        "second_stage_ms_per_query": stages[1] * per_query,
        "exhaustive_scoring_ms_per_query": exact_seconds * per_query,
        **recall_against_exact(rows, exact_rows, (1, 10, cfg.top_k)),
    }
    return _corpus_scored(ctx, data, enc, second_slice, scores, rows, seconds, timings, index_info)


def _shortlist_scores(
    ctx: TaskContext,
    enc: Encoded,
    queries: Any,
    shortlists: torch.Tensor,
    budget: Budget | None,
) -> torch.Tensor:
    return score_shortlists(queries, enc.candidates, shortlists, budget, **_scoring(ctx))


def cascade_lists(
    ctx: TaskContext, data: Prepared, enc: Encoded, slice_budget: Budget | None
) -> Scored:
    """The first budget scores each query's list; the second re-scores its top `depth` (by
    first-stage score, ties to the earlier position); the rest of the list is not returned
    (scored -inf)."""
    cascade = enc.cascade
    first, enc, first_slice, second_slice = _stages(enc, slice_budget)
    depth = cascade.depth

    def run_cascade():
        first_scores = _list_scores(ctx, first, data.query_rows, data.list_rows, first_slice)
        kept = [
            torch.sort(s, descending=True, stable=True).indices[:depth].tolist()
            for s in first_scores
        ]
        # Lists shorter than the depth are padded with their own first kept row (scored, not
        # returned), so every query re-scores one rectangle of candidates.
        width = max((len(keep) for keep in kept), default=0)
        shortlists = torch.tensor(
            [
                [rows[p] for p in keep] + [rows[keep[0]]] * (width - len(keep))
                if keep
                else [0] * width
                for rows, keep in zip(data.list_rows, kept, strict=True)
            ],
            dtype=torch.long,
        ).reshape(len(kept), width)
        queries = enc.queries.select(data.query_rows)
        rescored = _shortlist_scores(ctx, enc, queries, shortlists, second_slice).tolist()
        out = []
        for row_list, keep, again in zip(data.list_rows, kept, rescored, strict=True):
            full = [float("-inf")] * len(row_list)
            for position, score in zip(keep, again, strict=False):
                full[position] = score
            out.append(full)
        return out

    rows, seconds, timings = _timed(run_cascade)
    index_info = {
        "backend": "cascade",
        "first": cascade.first.label,
        "second": cascade.second.label,
        "depth": depth,
    }
    return _lists_scored(ctx, data, rows, seconds, timings, index_info)


EVALUATORS: dict[str, Callable[[TaskContext, Prepared, Encoded, Budget | None], Scored]] = {
    "corpus": _score_shared_corpus,
    "candidates": _score_lists,
}
CASCADE_EVALUATORS: dict[str, Callable[[TaskContext, Prepared, Encoded, Budget | None], Scored]]
CASCADE_EVALUATORS = {"corpus": cascade_corpus, "candidates": cascade_lists}


def group_metrics(
    ctx: TaskContext, data: Prepared, run: Run, metrics: dict[str, float], at: Sequence[int]
) -> dict[str, dict[str, float]]:
    """Metrics of each query group (e.g. language); adds `<main>_<group>` and
    `<main>_group_mean` to `metrics`."""
    if not data.query_groups:
        return {}
    main = ctx.spec.main_metric
    out = {}
    for group, ids in sorted(data.query_groups.items()):
        out[group] = evaluate_run({q: run[q] for q in ids if q in run}, data.qrels, at)
        if main in out[group]:
            metrics[f"{main}_{group}"] = out[group][main]
    scored = [m[main] for m in out.values() if main in m]
    if scored:
        metrics[f"{main}_group_mean"] = sum(scored) / len(scored)
    return out


def floor_at_zero(
    ctx: TaskContext, run: Run, enc: Encoded, data: Prepared, budget: Budget | None
) -> Run:
    """vidore-benchmark's QA rule on a top-k run: a score below 0 counts as 0 for every page
    but one (the first row's). Where a query's k-th score is <= 0, every page it did not
    retrieve scores <= 0 as well, so it enters the run at 0 (ties then follow trec_eval's
    id order over the whole corpus, as in the official evaluation of every page), and the
    kept page at its own score."""
    keep = data.floor_scores_except
    cids = [c.id for c in data.candidates]
    row = data.candidate_rows[cids.index(keep)].item()
    kept = _list_scores(ctx, enc, data.query_rows, [[row]] * len(data.queries), budget)
    out = {}
    for q, own in zip(data.queries, kept, strict=True):
        entry = run[q.id]
        floored = {c: (s if c == keep else max(s, 0.0)) for c, s in entry.items()}
        if len(entry) < len(cids) and (not entry or min(entry.values()) <= 0):
            for c in cids:
                floored.setdefault(c, 0.0)
        if keep in floored and keep not in entry:
            floored[keep] = float(own[0])
        out[q.id] = floored
    return out


def _timed(score: Callable[[], Any]) -> tuple[Any, float, list[float]]:
    """(result, seconds, timed runs): the run that gives the result doubles as the warm-up
    (caches, threads, the allocator); then TIMING_REPEATS timed runs where that one took under
    QUICK_SCORING_SECONDS, SLOW_REPEATS where it took under SLOW_SCORING_SECONDS, and none
    past that (the one run is then the timing). The seconds are the median of the timed runs,
    each of which is kept (the spread a machine's load gave)."""
    began = time.perf_counter()
    result = score()
    first = time.perf_counter() - began
    repeats = (
        TIMING_REPEATS
        if first < QUICK_SCORING_SECONDS
        else SLOW_REPEATS
        if first < SLOW_SCORING_SECONDS
        else 0
    )
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        score()
        runs.append(time.perf_counter() - began)
    runs = runs or [first]
    return result, statistics.median(runs), runs


def _expand(
    scores: list[float], rows: list[int], members: list[list[int]], k: int
) -> list[tuple[float, int]]:
    """Top distinct rows -> top-k candidates, ties by candidate index.

    The k best rows always hold the k best candidates: every row ranked ahead of a candidate's
    own row contributes a candidate ranked ahead of it.
    """
    expanded = [(score, c) for score, row in zip(scores, rows, strict=True) for c in members[row]]
    expanded.sort(key=lambda x: (-x[0], x[1]))
    return expanded[:k]


def _single_vectors(
    enc: Encoded, budget: Budget | None
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """([Nq, D], [Nc, D]) when this budget leaves exactly one vector per item, else None."""
    for mv, side in ((enc.queries, "query"), (enc.candidates, "candidate")):
        r = None if budget is None else budget.side(side)
        if not bool((mv.lengths.clamp(max=r or mv.max_len) == 1).all()):
            return None
    corpus = (
        torch.cat([mv.vectors[:, 0] for _, mv in enc.candidates.chunks(1 << 14, 1)])
        if len(enc.candidates)
        else torch.zeros(0, enc.queries.dim)
    )
    return enc.queries.vectors[:, 0], corpus
