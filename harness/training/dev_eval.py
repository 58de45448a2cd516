"""Evaluation while training (`harness train --eval-every N`): the model as it stands at step 0
and every N steps, on dev tasks, through the same evaluation as `harness run`.

Each evaluation writes full result files under `OUT/dev/step-NNNNNN/` and one row per task to
`OUT/dev_scores.jsonl`; `dev_curve.png` draws the main score per budget against the step. A
resumed run finds the result files of the evaluations it already made and does not repeat them
(training resumes exactly, so the weights at that step are the ones evaluated).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from harness.results import read_jsonl

log = logging.getLogger(__name__)

DEV_DIR = "dev"
DEV_SCORES = "dev_scores.jsonl"
DEV_CURVE = "dev_curve.png"


def due(step: int, every: int) -> bool:
    """Whether the weights after `step` optimizer steps are evaluated (step 0: before training)."""
    return bool(every) and step % every == 0


def evaluate_step(encoder, step: int, config, output: Path) -> float:
    """Evaluate `encoder` on `config.eval_tasks`; append one row per task to dev_scores.jsonl
    (unless that step's row is there already) and redraw the curve. Returns the seconds it took
    (left out of the training time); every module's train/eval mode is as before."""
    from harness.evaluation import evaluate

    began = time.perf_counter()
    modes = [(m, m.training) for m in encoder.modules()]
    try:
        _evaluate(encoder, step, config, output, evaluate)
    finally:
        for module, mode in modes:
            module.training = mode
    return time.perf_counter() - began


def _evaluate(encoder, step: int, config, output: Path, evaluate) -> None:
    done = {(r["step"], r["task"]) for r in read_scores(output)}
    folder = output / DEV_DIR / f"step-{step:06d}"
    records = evaluate(
        encoder,
        [t.strip() for t in config.eval_tasks.split(",") if t.strip()],
        budgets=config.eval_budgets,
        output=str(folder),
        data_dir=config.data_dir,
        device=config.device,
        no_cache=True,
        progress=False,
    )
    rows = []
    for record in records:
        task = record["task"]["name"]
        row = {
            "step": step,
            "task": task,
            "metric": record["task"]["main_metric"],
            "scores": {b["label"]: b["main_score"] for b in record["budgets"]},
        }
        rows.append(row)
        if (step, task) not in done:
            with open(output / DEV_SCORES, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
    log.info(
        "step %d: %s",
        step,
        "; ".join(
            f"{r['task']} " + " ".join(f"{k}={v * 100:.1f}" for k, v in r["scores"].items())
            for r in rows
        ),
    )
    plot_dev_curve(output)


def read_scores(output: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(Path(output) / DEV_SCORES)


def plot_dev_curve(output: str | Path) -> Path | None:
    """dev_curve.png: the main score (x100) per budget against the step, one panel per task."""
    rows = sorted(read_scores(output), key=lambda r: r["step"])
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        mine = [r for r in rows if r["task"] == task]
        labels = list(dict.fromkeys(label for r in mine for label in r["scores"]))
        for label in labels:
            points = [(r["step"], r["scores"][label] * 100) for r in mine if label in r["scores"]]
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{mine[0]['metric']} (x100)")
        ax.set_title(f"{Path(output).name} on {task}")
        ax.grid(alpha=0.3)
        ax.legend(title="budget", fontsize=8)
    fig.tight_layout()
    path = Path(output) / DEV_CURVE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
