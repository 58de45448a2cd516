"""Benchmark aggregates derived from result records, for the tables the benchmark modules
declare (harness/benchmark.py: MMEB's meta-tasks, IND/OOD and overall; ViDoRe averages and the
seven ViDoRe v2 columns of the MetaEmbed paper).

Every aggregate is an unweighted mean of the scores it covers; one over fewer tasks than the
benchmark has carries its coverage, so an incomplete average is never shown as a full one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.benchmark import AggregateTable
from harness.budgets import Budget


@dataclass
class Cell:
    value: float | None  # in [0, 1]
    covered: int
    expected: int

    @property
    def complete(self) -> bool:
        return self.value is not None and self.covered == self.expected

    def text(self) -> str:
        if self.value is None:
            return "-"
        shown = f"{100.0 * self.value:.2f}"
        return (
            shown if self.covered == self.expected else f"{shown} ({self.covered}/{self.expected})"
        )


def _mean(values: list[float | None], expected: int) -> Cell:
    present = [v for v in values if v is not None]
    return Cell(sum(present) / len(present) if present else None, len(present), expected)


def _by_model_budget(
    records: Iterable[dict[str, Any]], benchmark: str
) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """{(model, budget label): {task name: budget row}} for one benchmark."""
    out: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for record in records:
        if record["task"].get("benchmark") != benchmark:
            continue
        for row in record["budgets"]:
            out.setdefault((record["model"]["name"], row["label"]), {})[record["task"]["name"]] = (
                row
            )
    return out


def _ordered(keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(keys, key=lambda k: (k[0], Budget.parse(k[1]).sort_key()))


def table_rows(
    table: AggregateTable, records: list[dict[str, Any]]
) -> tuple[list[str], list[list[str]]] | None:
    """(header, rows) of one aggregate table, a row per (model, budget); None when no record
    belongs to its benchmark."""
    found = _by_model_budget(records, table.benchmark)
    if not found:
        return None
    header = ["model @ budget", *[c.label for c in table.columns]]
    header += ["Avg"] if table.average else []
    rows = [[f"{key[0]} @ {key[1]}", *_cells(table, found[key])] for key in _ordered(found)]
    return header, rows


def _cells(table: AggregateTable, by_task: dict[str, dict[str, Any]]) -> list[str]:
    """One row's cells: each column's mean over its tasks, then the average of the columns."""
    cells = [
        _mean([_value(by_task.get(t), column.metric) for t in column.tasks], len(column.tasks))
        for column in table.columns
    ]
    texts = [c.text() for c in cells]
    if table.average:
        texts.append(_mean([c.value for c in cells], len(cells)).text())
    return texts


def _value(row: dict[str, Any] | None, metric: str | None) -> float | None:
    if row is None:
        return None
    return row["main_score"] if metric is None else row["metrics"].get(metric)


REPORTED_DIR = Path(__file__).resolve().parents[2] / "results" / "reported"


def reported_rows(header: list[str], section: str) -> list[list[str]]:
    """Published numbers (results/reported/*.json) as rows labelled `(reported)`; unknown cells `-`."""
    rows = []
    for path in sorted(REPORTED_DIR.glob("*.json")) if REPORTED_DIR.is_dir() else []:
        for entry in json.loads(path.read_text()).get(section, []):
            label = (
                f"{entry['model']}"
                + (f" @ {entry['budget']}" if "budget" in entry else "")
                + " (reported)"
            )
            rows.append([label, *[f"{entry[c]:.2f}" if c in entry else "-" for c in header[1:]]])
    return rows


def mteb_rows(table: AggregateTable) -> list[list[str]]:
    """Scores imported from mteb's results repository (results/reported/mteb_*.json) for the
    tasks of `table`, one row per published model, revision and experiment, through the same
    columns as measured rows."""
    from harness.reporting.mteb_results import load_reported, reported_label

    tasks = {t for column in table.columns for t in column.tasks}
    rows = []
    for path in sorted(REPORTED_DIR.glob("*.json")) if REPORTED_DIR.is_dir() else []:
        for entry in load_reported(path):
            by_task = {
                name: {
                    "main_score": task["score"] / 100.0,
                    "metrics": {k: v / 100.0 for k, v in task.get("metrics", {}).items()},
                }
                for name, task in entry["tasks"].items()
                if name in tasks
            }
            if by_task:
                rows.append([reported_label(entry), *_cells(table, by_task)])
    return rows


def benchmark_tables(
    records: list[dict[str, Any]], reported: bool = False
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every benchmark table (declared by the benchmark modules)
    whose benchmark has records; with `reported`, the published numbers follow the measured
    rows where the table names a section of results/reported."""
    from harness.registry import aggregate_tables

    out = []
    for table in aggregate_tables():
        found = table_rows(table, records)
        if found is not None:
            header, rows = found
            if reported and table.reported:
                rows = rows + reported_rows(header, table.reported)
            if reported:
                rows = rows + mteb_rows(table)
            out.append((table.title, header, rows))
    return out
