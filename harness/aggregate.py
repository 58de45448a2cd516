"""Benchmark aggregates derived from result records: MMEB meta-tasks, IND/OOD and overall;
ViDoRe v1 / v3 averages and the seven ViDoRe v2 columns of the MetaEmbed paper.

Every aggregate is an unweighted mean of the scores it covers; one over fewer tasks than the
benchmark has carries its coverage, so an incomplete average is never shown as a full one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def mmeb_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    from tasks.mmeb import SUBSETS

    found = _by_model_budget(records, "mmeb")
    if not found:
        return None
    header = [
        "model @ budget",
        "Classification",
        "VQA",
        "Retrieval",
        "Grounding",
        "IND",
        "OOD",
        "Overall",
    ]
    rows = []
    for key in _ordered(found):
        scores = {t.removeprefix("mmeb-"): row["main_score"] for t, row in found[key].items()}

        def cell(keep, scores=scores) -> Cell:
            chosen = [s for s in SUBSETS if keep(s)]
            return _mean([scores.get(name) for name, _, _ in chosen], len(chosen))

        cells = [
            cell(lambda s, c=category: s[1] == c)
            for category in ("classification", "vqa", "retrieval", "grounding")
        ]
        cells += [
            cell(lambda s: s[2] == "IND"),
            cell(lambda s: s[2] == "OOD"),
            cell(lambda s: True),
        ]
        rows.append([f"{key[0]} @ {key[1]}", *[c.text() for c in cells]])
    return header, rows


# The paper's ViDoRe v2 columns: (label, task, metric key; None = the task's main score).
V2_COLUMNS = (
    ("ESG-Human", "vidore-v2-esg-human", None),
    ("Eco-Mul", "vidore-v2-economics", None),
    ("Bio-Mul", "vidore-v2-biomedical", None),
    ("ESG-Syn-Mul", "vidore-v2-esg", None),
    ("Bio", "vidore-v2-biomedical", "ndcg_at_5_english"),
    ("ESG-Syn", "vidore-v2-esg", "ndcg_at_5_english"),
    ("Eco", "vidore-v2-economics", "ndcg_at_5_english"),
)


def vidore_v2_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]] | None:
    found = _by_model_budget(records, "vidore-v2")
    if not found:
        return None
    header = ["model @ budget", *[c[0] for c in V2_COLUMNS], "Avg"]
    rows = []
    for key in _ordered(found):
        values = []
        for _, task, metric in V2_COLUMNS:
            row = found[key].get(task)
            values.append(
                None
                if row is None
                else row["main_score"]
                if metric is None
                else row["metrics"].get(metric)
            )
        cells = [Cell(v, int(v is not None), 1) for v in values]
        rows.append(
            [f"{key[0]} @ {key[1]}", *[c.text() for c in cells], _mean(values, len(values)).text()]
        )
    return header, rows


def average_table(
    records: list[dict[str, Any]], benchmark: str
) -> tuple[list[str], list[list[str]]] | None:
    """Per-task main scores and their average for a benchmark whose tasks are all registered."""
    from harness.registry import task_specs

    names = [s.name for s in task_specs().values() if s.benchmark == benchmark]
    found = _by_model_budget(records, benchmark)
    if not found:
        return None
    names = names or sorted({t for tasks in found.values() for t in tasks})
    short = [n.removeprefix(f"{benchmark}-") for n in names]
    header = ["model @ budget", *short, "Avg"]
    rows = []
    for key in _ordered(found):
        values = [found[key][n]["main_score"] if n in found[key] else None for n in names]
        cells = [Cell(v, int(v is not None), 1) for v in values]
        rows.append(
            [f"{key[0]} @ {key[1]}", *[c.text() for c in cells], _mean(values, len(values)).text()]
        )
    return header, rows


REPORTED_DIR = Path(__file__).resolve().parent.parent / "results" / "reported"


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


def benchmark_tables(
    records: list[dict[str, Any]], reported: bool = False
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for every benchmark present in the records; with `reported`, the
    published numbers of the MMEB and ViDoRe v2 tables follow the measured rows."""
    out = []
    for title, table, section in (
        ("MMEB (precision@1)", mmeb_table(records), "mmeb"),
        ("ViDoRe v1 (nDCG@5)", average_table(records, "vidore-v1"), None),
        ("ViDoRe v1, QA format (nDCG@5)", average_table(records, "vidore-v1-qa"), None),
        ("ViDoRe v2 (nDCG@5)", vidore_v2_table(records), "vidore_v2"),
        ("ViDoRe v3 (nDCG@10)", average_table(records, "vidore-v3"), None),
    ):
        if table is not None:
            header, rows = table
            if reported and section:
                rows = rows + reported_rows(header, section)
            out.append((title, header, rows))
    return out
