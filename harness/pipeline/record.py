"""Stage 5, record: a budget's scores become its result row (metrics, cost, groups, index,
per-query scores; TREC run file on request), and the rows the task's result record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from harness import __version__
from harness.budgets import Budget
from harness.cache import ShardedVectors
from harness.compression import bytes_per_vector
from harness.cost import budget_cost, dtype_bytes
from harness.metrics import trec_order
from harness.pipeline.context import TaskContext
from harness.pipeline.data import Prepared
from harness.pipeline.encode import Encoded, EncodeTiming
from harness.pipeline.score import Run, Scored
from harness.results import (
    SCHEMA_VERSION,
    BudgetRow,
    ResultRecord,
    environment,
    git_sha,
    now,
    safe_name,
)


def budget_row(
    ctx: TaskContext,
    data: Prepared,
    enc: Encoded,
    budget: Budget,
    slice_budget: Budget | None,
    scored: Scored,
) -> BudgetRow:
    cost = _encoded_cost(ctx, data, enc, slice_budget, enc.storage)
    if enc.cascade is not None:
        second = _stored_cost(cost, enc.cascade.second.storage, enc.queries.dim, ctx.card.dtype)
        cost = _cascade_cost(ctx, data, enc, slice_budget, second, scored.n_scored)
    cost["scoring_ms_per_query"] = 1000.0 * scored.seconds / max(1, len(data.queries))
    cost["scoring_timing_runs"] = len(scored.timings)
    # every timed run, for the spread (the page shows it on hover)
    cost["scoring_ms_per_query_runs"] = [
        round(1000.0 * t / max(1, len(data.queries)), 6) for t in scored.timings
    ]
    cost["n_candidates_scored"] = scored.n_scored
    cost["candidates_out_of_core"] = isinstance(enc.candidates, ShardedVectors)
    row: BudgetRow = {
        "label": budget.label,
        "query": budget.query,
        "candidate": budget.candidate,
        "main_score": scored.metrics[ctx.spec.main_metric],
        "metrics": dict(sorted(scored.metrics.items())),
        "cost": cost,
    }
    if scored.groups:
        row["groups"] = scored.groups
    if scored.index is not None:
        row["index"] = scored.index
    # Per-query main scores, for confidence intervals and paired tests in reports.
    row["per_query"] = scored.per_query
    if ctx.config.trec_runs:
        write_trec(ctx, scored.run, budget)
    return row


def _cascade_cost(
    ctx: TaskContext,
    data: Prepared,
    enc: Encoded,
    slice_budget: Budget | None,
    second: dict[str, float],
    scored: float,
) -> dict[str, Any]:
    """Both stages' costs, and the cascade's on the plain budgets' axes: the two indexes'
    vectors and bytes per candidate together (a nested model could read the first from the
    second's prefix; counted apart, as a deployment with a compact first index keeps them),
    and FLOPs per (query, candidate) pair averaged over the candidates scored: every one at the
    first budget, `depth` of them again at the second."""
    first_enc = enc.first if enc.first is not None else enc
    first_slice = None if enc.first is not None else enc.cascade.first
    first = _encoded_cost(ctx, data, first_enc, first_slice, enc.cascade.first.storage)
    depth = min(enc.cascade.depth, scored) if scored else 0
    flops = first["scoring_flops_per_pair"] + second["scoring_flops_per_pair"] * depth / max(
        1.0, scored
    )
    return {
        "vectors_per_query": second["vectors_per_query"],
        "vectors_per_candidate": first["vectors_per_candidate"] + second["vectors_per_candidate"],
        "index_bytes_per_candidate": first["index_bytes_per_candidate"]
        + second["index_bytes_per_candidate"],
        "scoring_flops_per_pair": flops,
        "stages": {"first": first, "second": second, "depth": enc.cascade.depth},
    }


def _encoded_cost(
    ctx: TaskContext,
    data: Prepared,
    enc: Encoded,
    slice_budget: Budget | None,
    storage: str | None,
) -> dict[str, Any]:
    """Cost of scoring the task's rows of `enc`, cut to `slice_budget`, stored as `storage`."""
    cost = budget_cost(
        enc.queries.lengths[data.query_rows],
        enc.candidates.lengths[data.candidate_rows],
        None if slice_budget is None else slice_budget.query,
        None if slice_budget is None else slice_budget.candidate,
        enc.queries.dim,
        ctx.card.dtype,
    )
    return _stored_cost(cost, storage, enc.queries.dim, ctx.card.dtype)


def _stored_cost(cost: dict[str, Any], storage: str | None, dim: int, dtype: str) -> dict[str, Any]:
    """Index bytes of the stored form (harness/compression.py) when vectors are compressed."""
    if storage is None:
        return cost
    per_vector = bytes_per_vector(storage, dim, dtype_bytes(dtype))
    return {**cost, "index_bytes_per_candidate": cost["vectors_per_candidate"] * per_vector}


def trec_id(value: str) -> str:
    """An id as one TREC field: `%`, whitespace and control characters percent-encoded (so an
    id with a space stays one field, and `urllib.parse.unquote` gives the id back)."""
    return (
        "".join(
            f"%{ord(ch):02X}" if ch == "%" or ch.isspace() or ord(ch) < 32 else ch
            for ch in str(value)
        )
        or "%00"
    )


def write_trec(ctx: TaskContext, run: Run, budget: Budget) -> None:
    """`qid Q0 docid rank score tag`, ranked as trec_eval ranks them; ids as `trec_id` writes
    them."""
    path = (
        Path(ctx.config.output)
        / safe_name(ctx.card.name)
        / "runs"
        / f"{safe_name(ctx.spec.name)}.{budget.label}.trec"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = safe_name(f"{ctx.card.name}_{budget.label}")
    lines = []
    for qid in sorted(run):
        for rank, doc in enumerate(trec_order(run[qid]), 1):
            score = run[qid][doc]
            lines.append(
                f"{trec_id(qid)} Q0 {trec_id(doc)} {rank} "
                f"{score if score != float('-inf') else -1e30:.6f} {tag}\n"
            )
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


def task_record(
    ctx: TaskContext,
    data: Prepared,
    size_check: dict[str, Any],
    rows: list[BudgetRow],
    timing: EncodeTiming,
) -> ResultRecord:
    """The result record of a task (the layout docs/results.md describes)."""
    card, t, world = ctx.card, timing, ctx.dist.world_size
    encoded = t.query.encoded + t.candidate.encoded
    seconds = t.query.seconds + t.candidate.seconds
    task = ctx.spec.metadata()
    version = task.pop("version")
    task.update(n_queries=len(data.queries), n_candidates=len(data.candidates), version=version)
    task["notes"] = list(data.notes)
    task["size_check"] = size_check
    return {
        "schema_version": SCHEMA_VERSION,
        "harness_version": __version__,
        "git_sha": git_sha(),
        "created_at": now(),
        "model": {
            "name": card.name,
            "family": card.family,
            "backbone": card.backbone,
            "revision": card.revision,
            "n_params": card.n_params,
            "dim": card.dim,
            "args": card.args,
            "backbone_params": card.backbone_params,
            "training": card.training,
        },
        "task": task,
        "budgets": rows,
        "encode": {
            "queries_seconds": t.query.seconds,
            "candidates_seconds": t.candidate.seconds,
            "items_per_second": encoded / seconds if encoded and seconds > 0 else None,
            "device": ctx.device,
            "dtype": card.dtype,
            "batch_size": ctx.config.batch_size,
            "world_size": world,
            "items_encoded": encoded,
            "items_from_cache": t.query.cached + t.candidate.cached,
            "items_encoded_per_rank": [
                a + b
                for a, b in zip(
                    t.query.per_rank or [0] * world,
                    t.candidate.per_rank or [0] * world,
                    strict=True,
                )
            ],
            "peak_memory_bytes": peak_memory_bytes(ctx.device),
        },
        "environment": environment(),
        "config": ctx.config.to_dict(),
    }


def merge_stored(stored: dict[str, Any] | None, record: ResultRecord) -> ResultRecord:
    """The new rows with the stored result's other budgets, in budget order."""
    if stored is None:
        return record
    rows = record["budgets"]
    kept = [b for b in stored["budgets"] if b["label"] not in {r["label"] for r in rows}]
    record["budgets"] = sorted(kept + rows, key=lambda b: Budget.parse(b["label"]).sort_key())
    return record


def peak_memory_bytes(device: str) -> int | None:
    """Peak memory so far: GPU memory allocated by torch on CUDA, else the process's peak
    resident set (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return None
