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


def interval_points(
    records: Iterable[dict[str, Any]], model: str, labels: list[str], task: str | None
) -> tuple[list[float], list[float]] | None:
    """95% bootstrap bands (x100) of each budget's score over queries; for a mean over tasks, the
    mean of the per-task bounds (a conservative band). None without per-query scores."""
    from harness.reporting.stats import bootstrap_ci

    low, high = [], []
    for label in labels:
        rows = [
            row
            for record in records
            if record["model"]["name"] == model and (task is None or record["task"]["name"] == task)
            for row in record["budgets"]
            if row["label"] == label
        ]
        if not rows or not all(row.get("per_query") for row in rows):
            return None
        bounds = [bootstrap_ci(list(row["per_query"].values()), n_resamples=1000) for row in rows]
        low.append(100.0 * sum(b[0] for b in bounds) / len(bounds))
        high.append(100.0 * sum(b[1] for b in bounds) / len(bounds))
    return low, high


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
    # One colour per model from one palette, lines and points alike (matplotlib's separate
    # cycles for plot and scatter would give a point model a line model's colour).
    palette = plt.get_cmap("tab20" if len(curves) > 10 else "tab10")
    for index, (model, points) in enumerate(sorted(curves.items())):
        if x != "budget":
            # A cost axis: the line joins budgets in order of cost (measured latency need not
            # grow with the budget), so it and its band never double back.
            points = sorted(points, key=lambda p: (p[1], Budget.parse(p[0]).sort_key()))
        xs = [position[lbl] if x == "budget" else v for lbl, v, _ in points]
        ys = [s for _, _, s in points]
        everything += list(zip(xs, ys, strict=True))
        bands = interval_points(records, model, [lbl for lbl, _, _ in points], task)
        _draw_model(ax, model, xs, ys, bands, palette(index % palette.N))
        if x != "budget" and len(points) > 1:  # which budget each point is (stored forms, cascades)
            for i, ((label, _, _), px, py) in enumerate(zip(points, xs, ys, strict=True)):
                offset = (3, -9 - 7 * (i % 3))  # neighbours stacked, not on top of each other
                ax.annotate(
                    label,
                    (px, py),
                    textcoords="offset points",
                    xytext=offset,
                    fontsize=6,
                    annotation_clip=True,
                )
    if x != "budget" and everything:
        _draw_frontier(ax, pareto(everything))
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


def _draw_model(ax, model: str, xs: list, ys: list, bands, color) -> None:
    """A line through a model's budgets (a square for a model with one), and its 95% band."""
    if len(xs) > 1:
        ax.plot(xs, ys, marker="o", label=model, color=color)
    else:
        ax.scatter(xs, ys, marker="s", s=50, label=model, zorder=3, color=color)
    if bands is None:
        return
    if len(xs) > 1:
        ax.fill_between(xs, bands[0], bands[1], color=color, alpha=0.15, linewidth=0)
    else:
        ax.errorbar(
            xs,
            ys,
            yerr=[[ys[0] - bands[0][0]], [bands[1][0] - ys[0]]],
            color=color,
            capsize=3,
            linewidth=1,
        )


def _draw_frontier(ax, front: list[tuple[float, float]]) -> None:
    """The Pareto frontier, dotted, each of its points ringed (visible even when it is one)."""
    ax.plot(
        [p[0] for p in front],
        [p[1] for p in front],
        linestyle=":",
        marker="o",
        markersize=11,
        markerfacecolor="none",
        markeredgewidth=1.5,
        color="black",
        linewidth=1.5,
        label="Pareto frontier",
        zorder=4,
    )


def size_label(n_params: float) -> str:
    """22713216 -> '23M', 109486464 -> '109M', 7.6e9 -> '7.6B'."""
    return f"{n_params / 1e9:.1f}B" if n_params >= 1e9 else f"{n_params / 1e6:.0f}M"


def variant_of(record: dict[str, Any]) -> str:
    """A line of the size plot: the family, and how its weights were trained."""
    model = record["model"]
    training = model.get("training")
    if not training:
        return f"{model['family']} (not fine-tuned)"
    objective = training.get("objective", "")
    if model["family"] == "metaembed":
        return f"metaembed ({'MMR' if objective == 'mmr' else 'NoMMR'})"
    return f"{model['family']} (fine-tuned)"


def plot_sizes(records: list[dict[str, Any]], budget: str = "16x64"):
    """Mean main score against model size (the backbone's parameters, without adapters or meta
    tokens; log axis): a line per family and training variant through its sizes, each point the mean over tasks and over the models (seeds) of that
    variant and size, at `budget` or, for a model without it, its largest budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    points: dict[str, dict[float, list[float]]] = {}
    budgets: dict[str, set[str]] = {}
    for record in records:
        model = record["model"]
        n_params = float(model.get("backbone_params") or model.get("n_params") or 0)
        if n_params <= 0:
            continue
        rows = {r["label"]: r for r in record["budgets"]}
        label = budget if budget in rows else max(rows, key=lambda b: Budget.parse(b).sort_key())
        line = variant_of(record)
        points.setdefault(line, {}).setdefault(n_params, []).append(
            100.0 * rows[label]["main_score"]
        )
        budgets.setdefault(line, set()).add(label)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sizes = sorted({n for by_size in points.values() for n in by_size})
    for line, by_size in sorted(points.items()):
        xs = sorted(by_size)
        ys = [sum(by_size[n]) / len(by_size[n]) for n in xs]
        shown = "/".join(sorted(budgets[line]))
        ax.plot(xs, ys, marker="o", label=f"{line} @ {shown}")
    ax.set_xscale("log")
    if sizes:
        ax.xaxis.set_major_locator(FixedLocator(sizes))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(sizes, [size_label(n) for n in sizes])
        low, high = sizes[0], sizes[-1]
        ax.set_xlim(low / 1.4, high * 1.4)
    ax.set_xlabel("backbone parameters")
    ax.set_ylabel("mean main score over tasks (x100)")
    ax.set_title(f"quality against model size ({budget}, or each model's largest budget)")
    ax.grid(True, alpha=0.3)
    if points:
        ax.legend(fontsize=8)
    else:  # no model states its size (e.g. parameter-free test encoders)
        ax.text(
            0.5, 0.5, "no model reports its parameter count", ha="center", transform=ax.transAxes
        )
    fig.tight_layout()
    return fig


def plot_per_task(records: list[dict[str, Any]], x: str = "index_bytes"):
    """Small multiples: one panel per task, main score against `x`."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"]["name"] for r in records})
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for model, points in sorted(curve_points(records, x, task).items()):
            xs, ys = [v for _, v, _ in points], [s for _, _, s in points]
            ax.plot(xs, ys, marker="o" if len(points) > 1 else "s", label=model)
        if X_AXES[x][2]:
            ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel(X_AXES[x][0], fontsize=8)
        ax.set_ylabel("main score (x100)", fontsize=8)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
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
    for name, fig in (
        ("score_vs_size", plot_sizes(records)),
        ("per_task_index_bytes", plot_per_task(records)),
    ):
        for suffix in ("png", "svg"):
            path = output / f"{name}.{suffix}"
            fig.savefig(path, dpi=110)
            written.append(path)
        plt.close(fig)
    return written
