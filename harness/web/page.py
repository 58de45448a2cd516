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


def page_data(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per (model, task, budget), with what the page shows, filters and plots."""
    from harness.stats import bootstrap_ci

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
                    "params": model.get("backbone_params") or model.get("n_params"),
                    "partial": partial,
                    "reported": False,
                }
            )
    return {"rows": rows}


def render_page(records: list[dict[str, Any]], title: str = "Leaderboard") -> str:
    data = json.dumps(page_data(records), allow_nan=False).replace("</", "<\\/")
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
