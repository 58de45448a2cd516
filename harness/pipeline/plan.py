"""Stage 1, plan: check the run's settings, resolve a model's budgets, find every dataset before
any model loads, and decide which budgets of a (model, task) are left to compute."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness import distributed
from harness.budgets import Budget, Cascade
from harness.config import RunConfig
from harness.errors import HarnessError, UsageError
from harness.index import parse_index
from harness.protocol import ModelCard
from harness.results import not_understood, partial_reason, read_result, result_path, safe_name
from harness.scoring import PADDING_RULES, SCORE_DTYPES
from harness.task import TaskSpec

log = logging.getLogger(__name__)


def check_settings(config: RunConfig) -> None:
    """Every setting that can be wrong, checked before anything is loaded (exit code 2)."""
    for name in ("output", "cache_dir", "data_dir"):
        if getattr(config, name) == "":
            raise UsageError(
                f"--{name.replace('_', '-')} is empty; name a folder, or leave the flag out"
            )
    if config.limit is not None and config.limit < 1:
        raise UsageError(f"--limit must be a positive number of queries, got {config.limit}")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {config.batch_size}")
    if config.device not in ("auto", "cpu", "cuda") and not str(config.device).startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {config.device!r}")
    if config.resolved_device().startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda was asked for but torch sees no GPU; use --device cpu or auto"
        )
    if config.shard_size < 1:
        raise UsageError(f"--shard-size must be positive, got {config.shard_size}")
    if config.memory_limit is not None and config.memory_limit < 1:
        raise UsageError(f"--memory-limit must be a positive size, got {config.memory_limit}")
    if config.memory_limit is not None and config.no_cache:
        raise UsageError("--memory-limit scores candidates from the cache on disk; drop --no-cache")
    parse_index(config.index)
    if config.candidate_padding not in PADDING_RULES:
        raise UsageError(
            f"--candidate-padding must be one of {', '.join(PADDING_RULES)}, "
            f"got {config.candidate_padding!r}"
        )
    if config.score_dtype not in SCORE_DTYPES:
        raise UsageError(
            f"--score-dtype must be one of {', '.join(SCORE_DTYPES)}, got {config.score_dtype!r}"
        )
    if distributed.current().enabled and config.no_cache:
        raise UsageError(
            "a distributed run exchanges embeddings through the cache; drop --no-cache "
            "(and give every rank the same --cache-dir on a shared filesystem)"
        )


def resolve_budgets(
    card: ModelCard, requested: Sequence[Budget | Cascade] | None, reducible: bool = False
) -> list[Budget | Cascade]:
    """The budgets to evaluate for one model, checked against what it can provide. `all` on a
    side where the model has a fixed number of vectors is that number (`allx64` is 16x64 for
    16 query vectors), so the same budget is never evaluated twice under two names. A cascade
    needs both stages from one encoding: a nested model or one that reduces."""
    budgets = list(card.budgets) if requested is None else list(requested)
    fixed: list[Budget | Cascade] = []
    for budget in budgets:
        same = (
            Cascade(_fixed(card, budget.first), _fixed(card, budget.second), budget.depth)
            if isinstance(budget, Cascade)
            else _fixed(card, budget)
        )
        if same != budget:
            log.info("budget %s is %s for %s", budget.label, same.label, card.name)
        if same not in fixed:
            fixed.append(same)
    for budget in fixed:
        stages = [budget.first, budget.second] if isinstance(budget, Cascade) else [budget]
        for stage in stages:
            _check_budget(card, stage, reducible)
        if isinstance(budget, Cascade) and not (card.nested or reducible):
            raise UsageError(
                f"cascade {budget.label} needs both stages from one encoding, but model "
                f"{card.name!r} is neither nested nor able to reduce its vectors"
            )
    return sorted(fixed, key=lambda b: b.sort_key())


def _fixed(card: ModelCard, budget: Budget) -> Budget:
    query = card.max_vectors("query") if budget.query is None else budget.query
    candidate = card.max_vectors("candidate") if budget.candidate is None else budget.candidate
    return Budget(query, candidate, budget.storage)


def _check_budget(card: ModelCard, budget: Budget, reducible: bool) -> None:
    valid = ", ".join(b.label for b in card.budgets)
    for role in ("query", "candidate"):
        side, most = budget.side(role), card.max_vectors(role)
        if side is not None and most is not None and side > most:
            raise UsageError(
                f"budget {budget.label} asks for {side} {role} vectors but model {card.name!r} "
                f"provides {most}; valid budgets for it: {valid}"
            )
    if not card.nested and not reducible and budget.sides not in card.budgets:
        raise UsageError(
            f"model {card.name!r} is not nested, so it can only be evaluated at its own budgets: {valid}"
        )


def find_datasets(specs: Sequence[TaskSpec], config: RunConfig, dist: distributed.Dist) -> None:
    """Find (or, online without --data-dir, fetch) every hub dataset before any model loads."""
    from harness.hub import dataset_root

    def find() -> None:
        for spec in specs:
            if spec.hub_snapshot:
                dataset_root(spec, config.data_dir)

    _on_main(dist, find)


def check_task_data(specs: Sequence[TaskSpec], config: RunConfig, dist: distributed.Dist) -> None:
    """Load every task as a text reader sees it (cheap: no page rendering) and validate it
    (no queries, an empty corpus, no judgements, judgements or lists naming unknown items)
    before any model loads; a loader that raises is named."""

    from harness.budgets import parse_budgets

    cascades = [b for b in parse_budgets(config.budgets) or [] if isinstance(b, Cascade)]
    for spec in specs:  # a main metric at a cutoff past the run's depth cannot be computed
        at = re.search(r"_at_(\d+)$", spec.main_metric or "")
        if spec.kind != "corpus" or not at:
            continue
        if int(at.group(1)) > config.top_k:
            raise UsageError(
                f"--top-k {config.top_k} is below the cutoff of the main metric "
                f"{spec.main_metric} of task {spec.name!r}; use --top-k {at.group(1)} or more"
            )
        shallow = next((c for c in cascades if c.depth < int(at.group(1))), None)
        if shallow is not None and dist.is_main:  # a deployment that returns fewer: said once
            log.warning(
                "cascade %s returns %d candidates per query, fewer than the main metric %s of "
                "task %s reads: the rest count as not retrieved (a depth of %s or more fills it)",
                shallow.label,
                shallow.depth,
                spec.main_metric,
                spec.name,
                at.group(1),
            )
    files: dict[str, str] = {}
    for spec in specs:  # two tasks must not share a result file
        other = files.setdefault(safe_name(spec.name), spec.name)
        if other != spec.name:
            raise UsageError(
                f"tasks {other!r} and {spec.name!r} would write the same result file "
                f"({safe_name(spec.name)}.json): rename one of them"
            )

    def check() -> None:
        for spec in specs:
            spec.load(config.data_dir, ("text",)).limit(config.limit).validate(spec)

    _on_main(dist, check)


def _on_main(dist: distributed.Dist, work) -> None:
    """Under torch.distributed rank 0 does `work` and a failure there stops every rank."""
    failure = None
    if dist.is_main:
        try:
            work()
        except HarnessError as exc:
            failure = exc
    if dist.enabled:
        failure = dist.broadcast(failure)
    if failure is not None:
        raise failure


@dataclass
class TaskPlan:
    """One (model, task): where its result goes, the budgets left to compute, and the stored
    result they extend (None: a fresh result)."""

    path: Path
    budgets: list[Budget]
    stored: dict[str, Any] | None


def plan_task(
    card: ModelCard,
    spec: TaskSpec,
    budgets: list[Budget],
    config: RunConfig,
    output: Path,
    dist: distributed.Dist,
) -> TaskPlan:
    """Rank 0 reads the stored result and tells the others which budgets remain."""
    path = result_path(output, card.name, spec.name)
    stored = None
    plan: list[str] | UsageError | None = None
    if dist.is_main:
        plan = [b.label for b in budgets]
        if path.exists() and not config.overwrite:
            stored = read_stored(path)
        if stored is not None:
            why = incompatibility(stored, card.args, spec, config, card.name)
            if why is not None and why.startswith("it holds"):  # not this model's or task's
                plan = UsageError(f"{path}: {why}")
            elif why is not None:
                plan = UsageError(
                    f"{path} holds a result from another setting ({why}); pass --overwrite to "
                    f"replace it or --output to write elsewhere"
                )
            else:
                done = {b["label"] for b in stored["budgets"]}
                plan = [b.label for b in budgets if b.label not in done]
    plan = dist.broadcast(plan)
    if isinstance(plan, UsageError):
        raise plan
    return TaskPlan(path, [b for b in budgets if b.label in plan], stored)


def read_stored(path: Path) -> dict[str, Any] | None:
    """A finished result to build on, or None (recomputed) when the file is unreadable,
    truncated or holds invalid data: such a file is never loaded and never overwritten, but
    moved aside (`NAME.json.unreadable`, numbered if taken) and named."""
    try:
        stored = read_result(path)
    except (OSError, ValueError) as exc:
        aside = set_aside(path)
        log.warning(
            "%s is not a readable result file (%s); moved to %s, recomputing it", path, exc, aside
        )
        return None
    why = not_understood(stored)
    if why is not None:
        aside = set_aside(path)
        log.warning(
            "%s is not a result file of this harness (it %s); moved to %s, recomputing it",
            path,
            why,
            aside,
        )
        return None
    return stored


def set_aside(path: Path) -> Path:
    """Rename a file the harness cannot use out of the way, keeping it for its owner."""
    aside = path.with_name(path.name + ".unreadable")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.unreadable{n}")
    path.rename(aside)
    return aside


def incompatibility(
    stored: dict[str, Any],
    record_model_args: dict[str, Any],
    spec: TaskSpec,
    config: RunConfig,
    model_name: str | None = None,
) -> str | None:
    """Why a stored result cannot be extended by this run, or None when it can."""
    # Names that differ only in characters a file name cannot hold share a file.
    for part, name in (("model", model_name), ("task", spec.name)):
        theirs = stored.get(part, {}).get("name")
        if name is not None and theirs is not None and theirs != name:
            return (
                f"it holds the result of {part} {theirs!r}, not {name!r} (a name that gives the "
                "same file name, or a file moved here); use another --output, or rename one "
                "(model: --model-args name=...)"
            )
    if stored.get("model", {}).get("args") != record_model_args:
        return f"model args {stored.get('model', {}).get('args')} differ from {record_model_args}"
    if stored.get("task", {}).get("dataset") != spec.metadata()["dataset"]:
        return "the dataset revision differs"
    settings = stored.get("config", {})
    # a --limit that cut nothing is a full run, as is a new one at or past a full run's size
    stored_limit = settings.get("limit") if partial_reason(stored) else None
    asked = config.limit
    if (
        stored_limit is None
        and asked is not None
        and asked >= stored["task"].get("n_queries", 1e18)
    ):
        asked = None
    if stored_limit != asked:
        return f"--limit {settings.get('limit')} differs from {config.limit}"
    # Files written before these settings were recorded used the defaults.
    if settings.get("score_dtype", "float32") != config.score_dtype:
        return f"--score-dtype {settings.get('score_dtype', 'float32')} differs from {config.score_dtype}"
    if settings.get("top_k", 100) != config.top_k:
        return f"--top-k {settings.get('top_k', 100)} differs from {config.top_k}"
    if settings.get("index", "exact") != config.index:
        return f"--index {settings.get('index', 'exact')} differs from {config.index}"
    if settings.get("candidate_padding", "exact") != config.candidate_padding:
        return (
            f"--candidate-padding {settings.get('candidate_padding', 'exact')} differs from "
            f"{config.candidate_padding}"
        )
    return None
