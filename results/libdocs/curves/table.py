"""The curves' libdocs-dev scores side by side (nDCG@5 x100), as a markdown table:

    python results/libdocs/curves/table.py [--every 25] [--all]
    python results/libdocs/curves/table.py --levers [--from 100] [--to STEP]

One column per (run, budget): MetaEmbed's 1x1 and 16x64 (with random meta tokens and with the
lever adopted), each single vector's only budget (`--all` adds the other levers); a run not
started yet is left out, a step a run has not reached is blank. `--levers` compares each
lever with MetaEmbed's own curve at matched steps instead: per budget, the mean, lowest and
highest difference (points) over the evaluations from step `--from` (to `--to`) that both runs
reached."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).parent
# (run, budget, label); the levers not adopted are shown with --all
COLUMNS = [
    ("metaembed-mmr-minilm", "1x1", "MetaEmbed 1x1"),
    ("metaembed-mmr-minilm", "16x64", "MetaEmbed 16x64"),
    ("metaembed-mmr-minilm-norm", "1x1", "norm 1x1"),
    ("metaembed-mmr-minilm-norm", "16x64", "norm 16x64"),
    ("single-mean-ft-minilm", "1x1", "single-mean"),
    ("single-cls-ft-minilm", "1x1", "single-cls"),
    ("metaembed-1x1-minilm", "1x1", "MetaEmbed 1-slot"),
]
OTHER_LEVERS = [
    ("metaembed-mmr-minilm-init-cls", "1x1", "init=cls 1x1"),
    ("metaembed-mmr-minilm-init-cls", "16x64", "init=cls 16x64"),
    ("metaembed-mmr-minilm-fixed-slots", "1x1", "fixed slots 1x1"),
    ("metaembed-mmr-minilm-fixed-slots", "16x64", "fixed slots 16x64"),
    ("metaembed-mmr-minilm-own-lr", "1x1", "own-lr 1e-2 1x1"),
    ("metaembed-mmr-minilm-own-lr", "16x64", "own-lr 1e-2 16x64"),
]


def scores(run: str, folder: Path = HERE) -> dict[int, dict[str, float]]:
    path = folder / run / "dev_scores.jsonl"
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["step"]: row["scores"] for row in rows}


BASE = "metaembed-mmr-minilm"
BUDGETS = ["1x1", "2x4", "4x8", "8x16", "16x64"]


def levers(start: int, folder: Path = HERE, stop: int | None = None) -> None:
    """Each lever against the random start at the steps both reached, from `start` to `stop`."""
    base = scores(BASE, folder)
    print("| lever | steps | " + " | ".join(BUDGETS) + " |")
    print("|---" * (len(BUDGETS) + 2) + "|")
    for run in dict.fromkeys(r for r, _, _ in COLUMNS + OTHER_LEVERS if r.startswith(BASE + "-")):
        lever = scores(run, folder)
        steps = sorted(s for s in lever if s >= start and s in base and (stop is None or s <= stop))
        if not steps:
            continue
        cells = []
        for budget in BUDGETS:
            gaps = [100 * (lever[s][budget] - base[s][budget]) for s in steps]
            cells.append(f"{sum(gaps) / len(gaps):+.1f} ({min(gaps):+.1f}..{max(gaps):+.1f})")
        name = run.removeprefix(BASE + "-")
        print(f"| {name} | {steps[0]}-{steps[-1]} ({len(steps)}) | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=25, help="show every Nth step (25)")
    parser.add_argument("--all", action="store_true", help="every lever's columns too")
    parser.add_argument("--levers", action="store_true", help="levers against the random start")
    parser.add_argument("--from", dest="start", type=int, default=100, help="first step (100)")
    parser.add_argument("--to", dest="stop", type=int, help="last step (the last both reached)")
    parser.add_argument("--curves", type=Path, default=HERE, help="the runs' folder (this one)")
    args = parser.parse_args()
    if args.levers:
        return levers(args.start, args.curves, args.stop)
    every = args.every
    table = COLUMNS + OTHER_LEVERS if args.all else COLUMNS
    runs = {run: scores(run, args.curves) for run, _, _ in table}
    columns = [c for c in table if runs[c[0]]]
    steps = sorted({s for run, _, _ in columns for s in runs[run] if s % every == 0})
    print("| step | " + " | ".join(label for _, _, label in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for step in steps:
        cells = []
        for run, budget, _ in columns:
            value = runs[run].get(step, {}).get(budget)
            cells.append("" if value is None else f"{100 * value:.1f}")
        print(f"| {step} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
