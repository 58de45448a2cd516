"""Quality-versus-cost plots derived from result files: main score against budget, index bytes
per candidate, scoring FLOPs per pair or measured latency; one line per model, models with a
single budget as points on the same axes, and the Pareto frontier marked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.budgets import Budget

X_AXES = {
    "budget": ("token budget (query x candidate vectors)", None, False),
    "index_bytes": ("index bytes per candidate", "index_bytes_per_candidate", True),
    "flops": ("scoring FLOPs per query-candidate pair", "scoring_flops_per_pair", True),
    "latency": ("scoring time per query (ms)", "scoring_ms_per_query", True),
}


def curve_points(
    records: Iterable[dict[str, Any]], x: str, task: str | None = None
) -> dict[str, list[tuple[str, float, float]]]:
    """{model: [(budget label, x value, mean main score x100 over tasks)]}, budgets in order.

    With `task`, only that task; otherwise the mean over the tasks every budget of the model has.
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}")
    field = X_AXES[x][1]
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for record in records:
        if task is not None and record["task"]["name"] != task:
            continue
        for row in record["budgets"]:
            rows.setdefault(record["model"]["name"], {}).setdefault(row["label"], []).append(row)
    out: dict[str, list[tuple[str, float, float]]] = {}
    for model, by_budget in rows.items():
        points = []
        for label in sorted(by_budget, key=lambda b: Budget.parse(b).sort_key()):
            found = by_budget[label]
            score = 100.0 * sum(r["main_score"] for r in found) / len(found)
            value = 0.0 if field is None else sum(r["cost"][field] for r in found) / len(found)
            points.append((label, value, score))
        out[model] = points
    return out


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by a cheaper-or-equal, better-or-equal point (lower x, higher y)."""
    best = float("-inf")
    front = []
    for px, py in sorted(points, key=lambda p: (p[0], -p[1])):
        if py > best:
            front.append((px, py))
            best = py
    return front


def plot_curves(
    records: list[dict[str, Any]],
    x: str = "index_bytes",
    task: str | None = None,
    title: str | None = None,
):
    """A matplotlib figure (not saved); tests inspect its lines, labels and axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = curve_points(records, x, task)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels_order = sorted(
        {lbl for pts in curves.values() for lbl, _, _ in pts},
        key=lambda b: Budget.parse(b).sort_key(),
    )
    position = {lbl: i for i, lbl in enumerate(labels_order)}
    everything = []
    for model, points in sorted(curves.items()):
        xs = [position[lbl] if x == "budget" else v for lbl, v, _ in points]
        ys = [s for _, _, s in points]
        everything += list(zip(xs, ys, strict=True))
        if len(points) > 1:
            ax.plot(xs, ys, marker="o", label=model)
        else:
            ax.scatter(xs, ys, marker="s", s=50, label=model, zorder=3)
    if x != "budget" and everything:
        front = pareto(everything)
        ax.plot(
            [p[0] for p in front],
            [p[1] for p in front],
            linestyle=":",
            color="black",
            linewidth=1,
            label="Pareto frontier",
            zorder=1,
        )
    if x == "budget":
        ax.set_xticks(range(len(labels_order)), labels_order)
    elif X_AXES[x][2]:
        ax.set_xscale("log")
    ax.set_xlabel(X_AXES[x][0])
    ax.set_ylabel("main score (x100)" if task is None else f"{task} main score (x100)")
    ax.set_title(title or ("mean over tasks" if task is None else task))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_plots(
    records: list[dict[str, Any]],
    output: str | Path,
    axes: Iterable[str] = ("budget", "index_bytes"),
) -> list[Path]:
    """PNG and SVG per x axis into `output`."""
    import matplotlib.pyplot as plt

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for x in axes:
        fig = plot_curves(records, x)
        for suffix in ("png", "svg"):
            path = output / f"score_vs_{x}.{suffix}"
            fig.savefig(path, dpi=110)
            written.append(path)
        plt.close(fig)
    return written
