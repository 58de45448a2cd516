"""Tables derived from result files (never a second source of truth)."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

from harness.budgets import Budget

MISSING = "-"
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


FORMATS = ("md", "csv", "html", "latex")


def _budget_key(row: dict[str, Any]) -> tuple[float, ...]:
    return Budget.parse(row["label"]).sort_key()


def _score_cell(row: dict[str, Any], ci: bool) -> str:
    text = f"{100.0 * row['main_score']:.2f}"
    if row.get("seed_scores") and not ci:  # a model read over its seeds: mean ± sd of seeds
        return text + f" ± {100.0 * row['seed_sd']:.2f}"
    if ci and row.get("per_query"):
        from harness.reporting.stats import bootstrap_ci

        low, high = bootstrap_ci(list(row["per_query"].values()))
        text += f" ± {100.0 * (high - low) / 2:.2f}"
    return text


PARTIAL_MARK = " †"


def leaderboard(
    records: Iterable[dict[str, Any]], ci: bool = False, include_partial: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Rows `model @ budget`; a column per task (main score x100), the mean, and cost columns.

    The mean is over the tasks a row has; when a row lacks some task its mean is marked with
    the coverage, e.g. `61.20 (3/4)`, so an incomplete average is never mistaken for a full one.
    A partial result (`--limit`, a dataset of another size) is marked ` †` and left out of the
    mean unless `include_partial`. With `ci`, each score carries the half-width of its 95%
    bootstrap interval over queries.
    """
    from harness.results import partial_reason

    records = list(records)
    partial = {
        (r["model"]["name"], r["task"]["name"]) for r in records if partial_reason(r) is not None
    }
    tasks = sorted({r["task"]["name"] for r in records})
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str, tuple[float, float]]] = []
    for record in records:
        model = record["model"]["name"]
        for row in record["budgets"]:
            key = (model, row["label"])
            if key not in cells:
                cells[key] = {}
                order.append((model, row["label"], _budget_key(row)))
            cells[key][record["task"]["name"]] = row
    order.sort(key=lambda x: (x[0], x[2]))
    header = [
        "model @ budget",
        *tasks,
        "mean",
        "vectors/cand",
        "bytes/cand",
        "FLOPs/pair",
        "ms/query",
        "params",
    ]
    params = {r["model"]["name"]: r["model"].get("n_params") for r in records}
    rows = []
    for model, label, _ in order:
        found = cells[(model, label)]
        flagged = {t for t in tasks if (model, t) in partial}
        rows.append(
            [
                f"{model} @ {label}",
                *[
                    _score_cell(found[t], ci) + (PARTIAL_MARK if t in flagged else "")
                    if t in found
                    else MISSING
                    for t in tasks
                ],
                _mean_cell(found, tasks, set() if include_partial else flagged),
                *_cost_cells(list(found.values())),
                f"{params[model] / 1e6:.1f}M" if params.get(model) else MISSING,
            ]
        )
    return header, rows


def _mean_cell(found: dict[str, Any], tasks: list[str], left_out: set[str]) -> str:
    """The mean main score over the tasks a row has (partial ones left out), with its coverage
    when that is not every task."""
    scores = [100.0 * found[t]["main_score"] for t in tasks if t in found and t not in left_out]
    if not scores:
        return MISSING
    mean = sum(scores) / len(scores)
    return (
        f"{mean:.2f}" if len(scores) == len(tasks) else f"{mean:.2f} ({len(scores)}/{len(tasks)})"
    )


def _cost_cells(rows: list[dict[str, Any]]) -> list[str]:
    """Vectors and bytes per candidate, FLOPs per pair, ms per query: means over the tasks."""

    def avg(field: str) -> float:
        return sum(row["cost"][field] for row in rows) / len(rows)

    return [
        f"{avg('vectors_per_candidate'):.1f}",
        f"{avg('index_bytes_per_candidate'):,.0f}",
        f"{avg('scoring_flops_per_pair'):.3g}",
        f"{avg('scoring_ms_per_query'):.3f}",
    ]


def _md_row(cells: Sequence[str]) -> str:
    """One Markdown table row; a `|` or line break inside a name cannot split the row."""
    clean = (
        str(c).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
        for c in cells
    )
    return "| " + " | ".join(clean) + " |"


def render(header: Sequence[str], rows: Sequence[Sequence[str]], fmt: str = "md") -> str:
    if fmt == "md":
        lines = [_md_row(header), "|" + "|".join("---" for _ in header) + "|"]
        lines += [_md_row(r) for r in rows]
        return "\n".join(lines) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return buffer.getvalue()
    if fmt == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n" for r in rows
        )
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"
    if fmt == "latex":
        lines = [r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule"]
        lines.append(" & ".join(_latex(h) for h in header) + r" \\")
        lines.append(r"\midrule")
        lines += [" & ".join(_latex(c) for c in r) + r" \\" for r in rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        return "\n".join(lines) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")


def split_entry(spec: str) -> tuple[str, str, str]:
    """`model @ budget` -> (model, "@", budget): at the last " @ " (a model name may hold one;
    a cascade's label holds "@" without spaces), else at the first "@"."""
    head, sep, tail = spec.rpartition(" @ ") if " @ " in spec else spec.partition("@")
    return head.strip(), sep.strip(), tail.strip()


def compare(records: Iterable[dict[str, Any]], a: str, b: str) -> tuple[list[str], list[list[str]]]:
    """Paired comparison of `model @ budget` a against b on every task both have."""
    from harness.reporting.stats import paired

    records = list(records)

    def rows_of(spec: str) -> dict[str, dict[str, Any]]:
        model, _, label = split_entry(spec)
        out = {}
        for record in records:
            if record["model"]["name"] == model:
                for row in record["budgets"]:
                    if row["label"] == label and row.get("per_query"):
                        out[record["task"]["name"]] = row
        return out

    left, right = rows_of(a), rows_of(b)
    header = ["task", "queries", f"{a} - {b} (x100)", "95% CI", "p (paired randomisation)"]
    rows = []
    for task in sorted(set(left) & set(right)):
        result = paired(left[task]["per_query"], right[task]["per_query"])
        rows.append(
            [
                task,
                str(result["n"]),
                f"{100 * result['difference']:+.2f}",
                f"[{100 * result['ci_low']:+.2f}, {100 * result['ci_high']:+.2f}]",
                f"{result['p_value']:.4f}",
            ]
        )
    return header, rows


def match_scores(
    records: Iterable[dict[str, Any]], reference: Iterable[dict[str, Any]], tolerance: float
) -> tuple[list[str], bool]:
    """Compare every (model, task, budget) main score with a reference run of the same rows:
    one line per row that is missing or differs by more than `tolerance`, then a verdict."""

    import math

    lines: list[str] = []

    def table(rows: Iterable[dict[str, Any]], side: str) -> dict[tuple[str, str, str], float]:
        out: dict[tuple[str, str, str], float] = {}
        for r in rows:
            for b in r["budgets"]:
                key = (r["model"]["name"], r["task"]["name"], b["label"])
                if key in out:
                    lines.append(f"duplicate in the {side}: {key[0]} @ {key[2]} on {key[1]}")
                out[key] = b["main_score"]
        return out

    ours, theirs = table(records, "results"), table(reference, "reference")
    worst = 0.0
    for key in sorted(theirs):
        name = f"{key[0]} @ {key[2]} on {key[1]}"
        if key not in ours:
            lines.append(f"missing: {name}")
            continue
        if not (math.isfinite(ours[key]) and math.isfinite(theirs[key])):
            lines.append(f"differs: {name}: {ours[key]} vs {theirs[key]} (not a number)")
            continue
        gap = abs(ours[key] - theirs[key])
        worst = max(worst, gap)
        if gap > tolerance:
            lines.append(f"differs: {name}: {100 * ours[key]:.2f} vs {100 * theirs[key]:.2f}")
    matched = not lines
    compared = len(set(ours) & set(theirs))
    verdict = "matches" if matched else "does not match"
    lines.append(
        f"{verdict}: {compared} of {len(theirs)} reference scores compared, largest difference "
        f"{100 * worst:.2f} points (tolerance {100 * tolerance:.2f})"
    )
    return lines, matched
