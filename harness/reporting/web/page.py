"""The data of the HTML report, derived from result records only, and the page around it."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from harness.budgets import Budget, Cascade
from harness.results import partial_reason

ASSETS = Path(__file__).parent


def _kind(label: str) -> str:
    budget = Budget.parse(label)
    if isinstance(budget, Cascade):
        return "cascade"
    if budget.storage:
        return "compressed"
    return "single-vector" if budget.label == "1x1" else "multi-vector"


def page_data(records: list[dict[str, Any]], reported: bool = True) -> dict[str, Any]:
    """One row per (model, task, budget), with what the page shows, filters and plots; with
    `reported`, the published scores of the same tasks follow."""
    from harness.reporting.stats import bootstrap_ci

    rows = []
    for record in records:
        model, task = record["model"], record["task"]
        partial = partial_reason(record)
        for row in record["budgets"]:
            per_query = list((row.get("per_query") or {}).values())
            low, high = bootstrap_ci(per_query, n_resamples=1000) if per_query else (None, None)
            cost = row["cost"]
            rows.append(
                {
                    "model": model["name"],
                    "family": model.get("family"),
                    "budget": row["label"],
                    "kind": _kind(row["label"]),
                    "order": [min(v, 1e9) for v in Budget.parse(row["label"]).sort_key()],
                    "task": task["name"],
                    "benchmark": task.get("benchmark"),
                    "score": 100.0 * row["main_score"],
                    "low": None if low is None else 100.0 * low,
                    "high": None if high is None else 100.0 * high,
                    "metric": task.get("main_metric"),
                    "bytes": cost.get("index_bytes_per_candidate"),
                    "flops": cost.get("scoring_flops_per_pair"),
                    "latency": cost.get("scoring_ms_per_query"),
                    # every timed run of the median (older files: none kept)
                    "latency_runs": cost.get("scoring_ms_per_query_runs"),
                    "params": model.get("backbone_params") or model.get("n_params"),
                    "partial": partial,
                    "reported": False,
                    # a model read over its seeds (--seeds mean): their scores and sd
                    "seeds": [100.0 * x for x in row["seed_scores"]]
                    if row.get("seed_scores")
                    else None,
                    "sd": 100.0 * row["seed_sd"] if row.get("seed_scores") else None,
                }
            )
    if reported:
        rows += reported_rows({r["task"]["name"]: r["task"] for r in records})
    return {"rows": rows}


def reported_rows(tasks: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Published scores imported from mteb's results repository (results/reported/), for the
    tasks the records hold: no cost but the model size, so they join the size curve only."""
    from harness.reporting.aggregate import REPORTED_DIR
    from harness.reporting.mteb_results import load_reported, reported_label

    rows = []
    for path in sorted(REPORTED_DIR.glob("*.json")) if REPORTED_DIR.is_dir() else []:
        for entry in load_reported(path):
            model = reported_label(entry).removesuffix(" (reported, mteb)")
            for name, task in entry["tasks"].items():
                if name not in tasks:
                    continue
                rows.append(
                    {
                        "model": model,
                        "family": "published (mteb)",
                        "budget": "published",
                        "kind": "reported",
                        "order": [0, 0, 0],
                        "task": name,
                        "benchmark": tasks[name].get("benchmark"),
                        "score": task["score"],
                        "low": None,
                        "high": None,
                        "metric": tasks[name].get("main_metric"),
                        "bytes": None,
                        "flops": None,
                        "latency": None,
                        "params": entry.get("n_parameters"),
                        "partial": None,
                        "reported": True,
                    }
                )
    return rows


def render_page(
    records: list[dict[str, Any]], title: str = "Leaderboard", reported: bool = True
) -> str:
    data = json.dumps(page_data(records, reported), allow_nan=False).replace("</", "<\\/")
    script = (ASSETS / "report.js").read_text(encoding="utf-8")
    style = (ASSETS / "report.css").read_text(encoding="utf-8")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        '<div id="filters"></div><div id="notes"></div><table id="board"></table>'
        '<h2>Quality against cost</h2><div id="axes"></div><div id="chart"></div>'
        f'<script id="data" type="application/json">{data}</script>'
        f"<script>{script}</script></body></html>\n"
    )
