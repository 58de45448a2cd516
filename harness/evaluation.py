"""The evaluation: every model on every task, each (model, task) through the five stages of
`harness/pipeline/` in order (plan, data, encode, score, record), one result file per task."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import distributed
from harness.budgets import Budget, parse_budgets
from harness.cache import EmbeddingCache, check_writable, default_cache_dir
from harness.config import RunConfig
from harness.errors import UsageError
from harness.options import split_names
from harness.pipeline import data as task_data
from harness.pipeline.context import TaskContext
from harness.pipeline.encode import EncodeTiming, per_budget
from harness.pipeline.plan import (
    check_settings,
    check_task_data,
    find_datasets,
    incompatibility,
    plan_task,
    read_stored,
    resolve_budgets,
)
from harness.pipeline.record import budget_row, merge_stored, task_record
from harness.pipeline.score import score_budget
from harness.protocol import Encoder, ReducingEncoder
from harness.registry import get_model, get_tasks
from harness.results import folder_lock, write_json_atomic
from harness.task import TaskSpec

log = logging.getLogger(__name__)

__all__ = ["evaluate", "evaluate_task", "resolve_budgets", "run"]


def run(
    config: RunConfig,
    models: Sequence[str | Encoder] | None = None,
    tasks: Sequence[str | TaskSpec] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every model on every task; returns the result records (also written to disk)."""
    models = list(models) if models is not None else split_names(config.models)
    specs = get_tasks(tasks if tasks is not None else config.tasks)
    requested = parse_budgets(config.budgets)
    check_settings(config)
    config.device = config.resolved_device()  # once per run: "auto" becomes cuda or cpu here
    fresh_output = not Path(config.output).exists()
    output = check_writable(config.output, "output")
    cache_root = (
        None
        if config.no_cache
        else check_writable(config.cache_dir or default_cache_dir(), "cache dir")
    )
    cache = EmbeddingCache(cache_root, shard_size=config.shard_size, refresh=config.overwrite)
    config.models = [m if isinstance(m, str) else m.card.name for m in models]
    config.tasks = [s.name for s in specs]
    config.model_args = {k: _jsonable(v) for k, v in config.model_args.items()}

    dist, joined = distributed.init(config.device)
    records = []
    try:
        find_datasets(specs, config, dist)
        check_task_data(specs, config, dist)
        for model in models:
            encoder = (
                model
                if not isinstance(model, str)
                else get_model(model, config.model_args, device=config.device)
            )
            reducible = isinstance(encoder, ReducingEncoder)
            budgets = resolve_budgets(encoder.card, requested, reducible=reducible)
            for spec in specs:
                ctx = TaskContext(encoder, spec, config, cache, dist)
                record = evaluate_task(ctx, budgets, output)
                if record is not None:
                    records.append(record)
        dist.barrier()
    except BaseException:
        if fresh_output and dist.is_main:
            _remove_empty_folders(output)  # a failed run leaves no empty output behind
        raise
    finally:
        distributed.finish(joined)
    return records


def evaluate_task(ctx: TaskContext, budgets: list[Budget], output: Path) -> dict[str, Any] | None:
    """One (model, task) through the stages: the budgets its stored result lacks are computed
    and merged in; returns the record (None on ranks other than 0)."""
    plan = plan_task(ctx.card, ctx.spec, budgets, ctx.config, output, ctx.dist)
    if not plan.budgets:
        log.info("%s: finished result found, skipped (use --overwrite to recompute)", plan.path)
        return plan.stored
    full = task_data.load(ctx.spec, ctx.config.data_dir, ctx.dist, ctx.card.modalities)
    checked = task_data.size_check(ctx.spec, full)
    data = task_data.prepare(ctx.spec, full.limit(ctx.config.limit))
    timing = EncodeTiming()
    rows = [
        budget_row(ctx, data, enc, budget, slice_to, score_budget(ctx, data, enc, slice_to))
        for budget, enc, slice_to in per_budget(ctx, data, plan.budgets, timing)
    ]
    if not ctx.dist.is_main:
        return None
    record = task_record(ctx, data, checked, rows, timing)
    # Read, merge and write under a lock on the folder: another run into the same output
    # (other budgets of the same model and task) may have written since the plan was made.
    with folder_lock(plan.path):
        stored = plan.stored
        if not ctx.config.overwrite and plan.path.exists():
            stored = read_stored(plan.path)
            why = (
                incompatibility(stored, ctx.card.args, ctx.spec, ctx.config, ctx.card.name)
                if stored
                else None
            )
            if why is not None:
                raise UsageError(
                    f"{plan.path} was written meanwhile by a run with another setting ({why}); "
                    f"this run's result was not written: pass --output to write elsewhere"
                )
        record = merge_stored(stored, record)
        write_json_atomic(plan.path, record)
    log.info("wrote %s", plan.path)
    return record


def evaluate(
    model: str | Encoder | Sequence[str | Encoder],
    tasks: str | TaskSpec | Sequence[str | TaskSpec],
    budgets: str | Sequence[str | Budget] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Python API: `harness.evaluate("test-hash", "libdocs", budgets="1x1,16x64", output="out")`."""
    models = [model] if isinstance(model, str) or not isinstance(model, Sequence) else list(model)
    task_list = [tasks] if isinstance(tasks, str | TaskSpec) else list(tasks)
    if budgets is not None and not isinstance(budgets, str):
        budgets = [b.label if isinstance(b, Budget) else str(b) for b in budgets]
    elif isinstance(budgets, str):
        budgets = [b.strip() for b in budgets.split(",") if b.strip()]
    config = RunConfig(models=[], tasks=[], budgets=budgets, **options)
    return run(config, models=models, tasks=task_list)


def _remove_empty_folders(root: Path) -> None:
    """Remove `root` and its subfolders when no file at all is under them."""
    if not root.is_dir() or any(p.is_file() for p in root.rglob("*")):
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        folder.rmdir()
    root.rmdir()


def _jsonable(value: Any) -> Any:
    return (
        value
        if value is None or isinstance(value, str | int | float | bool | list | dict)
        else str(value)
    )
