"""A model trained with several seeds, read as one model (`report ... --seeds mean`).

Result files of the same training recipe run with different seeds (`NAME-s0`, `NAME-s1`, ...
whose `model.training` settings differ only in `seed` (and a model's own `seed=`), `output`
and how the run was watched or saved, e.g. `eval_every`) become one record named
`NAME (N seeds)`: each budget's main score and metrics are the mean over the seeds that have
that budget on that task, per-query scores the mean per query, and the row keeps the seeds'
own scores (`seed_scores`) and their spread (`seed_sd`, the sample standard deviation) so
tables can show it. Records that match no other seed pass through as they are.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
import statistics
from typing import Any

SEED_SUFFIX = re.compile(r"^(?P<stem>.+)-s(?P<seed>\d+)$")
# training settings (and the model argument `seed`) that tell seeds apart, or say how a run
# was watched, saved, interrupted or placed, without making it another recipe (a curve run
# evaluated on dev every N steps is the same recipe as a run that was not)
_PER_SEED = {"seed", "output"}
_BOOKKEEPING = {
    "eval_every",
    "eval_tasks",
    "eval_budgets",
    "save_every",
    "run_steps",
    "resume",
    "progress",
    "device",
}


@functools.cache
def _defaults() -> dict[str, Any]:
    """Training settings' defaults: a record without one, or with None for it (written before
    the setting existed or had a value of its own), ran with the default."""
    from harness.config import TrainConfig

    return {
        f.name: f.default
        for f in dataclasses.fields(TrainConfig)
        if f.default is not dataclasses.MISSING and f.default is not None
    }


def _recipe(record: dict[str, Any]) -> str:
    stored = record["model"].get("training") or {}
    training = {key: value for key, value in stored.items() if value is not None}
    if training:
        training = {**_defaults(), **training}
    for key in _PER_SEED | _BOOKKEEPING:
        training.pop(key, None)
    args = dict(training.get("model_args") or {})
    args.pop("name", None)
    args.pop("seed", None)  # a model's own seed (MetaEmbed's meta-token table) is the run's seed
    training["model_args"] = args
    model_args = {
        k: v
        for k, v in (record["model"].get("args") or {}).items()
        if k not in ("checkpoint", "name")
    }
    return json.dumps(
        [training, model_args, record["model"].get("backbone")], sort_keys=True, default=str
    )


def merge_seeds(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with each multi-seed model (same stem, same recipe, same task) merged into
    one mean record; everything else unchanged, in the original order."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        match = SEED_SUFFIX.match(record["model"]["name"])
        if match:
            key = (match["stem"], record["task"]["name"], _recipe(record))
            groups.setdefault(key, []).append(record)
    merged_ids = {id(r) for members in groups.values() if len(members) > 1 for r in members}
    out, done = [], set()
    for record in records:
        if id(record) not in merged_ids:
            out.append(record)
            continue
        match = SEED_SUFFIX.match(record["model"]["name"])
        key = (match["stem"], record["task"]["name"], _recipe(record))
        if key not in done:
            done.add(key)
            out.append(_mean_record(key[0], groups[key]))
    return out


def _mean_record(stem: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    members = sorted(members, key=lambda r: int(SEED_SUFFIX.match(r["model"]["name"])["seed"]))
    merged = copy.deepcopy(members[0])
    merged["model"]["name"] = f"{stem} ({len(members)} seeds)"
    merged["model"]["seeds"] = [r["model"]["name"] for r in members]
    rows_by_label = [{row["label"]: row for row in r["budgets"]} for r in members]
    labels = [
        row["label"]
        for row in members[0]["budgets"]
        if all(row["label"] in m for m in rows_by_label)
    ]
    budgets = []
    for label in labels:
        rows = [m[label] for m in rows_by_label]
        row = copy.deepcopy(rows[0])
        scores = [r["main_score"] for r in rows]
        row["main_score"] = statistics.fmean(scores)
        row["seed_scores"] = scores
        row["seed_sd"] = statistics.stdev(scores) if len(scores) > 1 else 0.0
        row["metrics"] = {
            name: statistics.fmean(r["metrics"][name] for r in rows)
            for name, value in rows[0]["metrics"].items()
            if isinstance(value, int | float)
            and all(isinstance(r["metrics"].get(name), int | float) for r in rows)
        }
        times = [(r.get("cost") or {}).get("scoring_ms_per_query") for r in rows]
        if row.get("cost") and all(isinstance(t, int | float) for t in times):
            row["cost"]["scoring_ms_per_query"] = statistics.median(times)
        if all(r.get("per_query") for r in rows):
            common = set.intersection(*(set(r["per_query"]) for r in rows))
            row["per_query"] = {
                q: statistics.fmean(r["per_query"][q] for r in rows) for q in sorted(common)
            }
        budgets.append(row)
    merged["budgets"] = budgets
    return merged
