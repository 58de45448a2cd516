"""The trained MiniLM systems of the study, each budget's score as the mean over the seeds run so
far, with the lowest and highest seed, from the committed result files.

    python results/libdocs/recipe-75steps/seed_means.py [--results results/libdocs/recipe-75steps]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

SYSTEMS = {
    "MetaEmbed, MMR": "metaembed-mmr-minilm-s{}",
    "MetaEmbed, NoMMR": "metaembed-nommr-minilm-s{}",
    "single vector (mean pooling)": "single-mean-ft-minilm-s{}",
    "naive multi-vector": "naive-multi-ft-minilm-s{}",
}
TASKS = {"libdocs-corpus": "corpus nDCG@5", "libdocs-lists": "lists P@1"}


def scores(root: Path, pattern: str, task: str) -> dict[str, list[float]]:
    """{budget: [score x100 of each seed found]}, in the order the result files list budgets."""
    out: dict[str, list[float]] = {}
    for seed in range(10):
        path = root / f"seed{seed}" / pattern.format(seed) / f"{task}.json"
        if path.exists():
            for row in json.loads(path.read_text(encoding="utf-8"))["budgets"]:
                out.setdefault(row["label"], []).append(100.0 * row["main_score"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(Path(__file__).parent))
    root = Path(parser.parse_args().results)
    print("| system @ budget | seeds | " + " | ".join(TASKS.values()) + " |")
    print("|---|---|" + "---|" * len(TASKS))
    for label, pattern in SYSTEMS.items():
        per_task = {task: scores(root, pattern, task) for task in TASKS}
        for budget in per_task["libdocs-corpus"]:
            cells = []
            for task in TASKS:
                values = per_task[task].get(budget, [])
                cells.append(
                    f"{statistics.mean(values):.2f} ({min(values):.2f}-{max(values):.2f})"
                    if values
                    else "-"
                )
            n = len(per_task["libdocs-corpus"][budget])
            print(f"| {label} @ {budget} | {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
