"""Encoding speed of MetaEmbed against its backbone's own single vector, on the same pages.

    python bench/encode.py [--quick] [--pages 96] [--batch-size 32] [--rounds 3]

Variants, side by side in rotated rounds (bench/common.py), each encoding the same libdocs test
pages as candidates: `single-mean` (all-MiniLM-L6-v2, mean pooling), `metaembed-mini` as the
registry loads it (its LoRA adapter merged into the weights), and the same checkpoint with the
adapter kept as peft modules (how it encoded before adapters were merged). MetaEmbed appends 80
meta-token slots to each page, about 25% more tokens on libdocs; the target is metaembed-mini at
most 1.3x single-mean. Before timing, the merged and the unmerged model must give the same
vectors (max difference printed, at most 1e-4).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import rotated_medians  # noqa: E402

from harness.adapters import adapters_kept  # noqa: E402
from harness.registry import get_model, get_tasks  # noqa: E402


def pages(n: int):
    spec = get_tasks(["libdocs-corpus"])[0]
    data = spec.load(None, ("text",))
    return list(data.candidates)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48 pages, 2 rounds")
    parser.add_argument("--pages", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, rounds = (48, 2) if args.quick else (args.pages, args.rounds)
    items = pages(n)
    single = get_model("single-mean", {"ocr": "none"})
    merged = get_model("metaembed-mini", {"ocr": "none"})
    with adapters_kept():
        kept = get_model("metaembed-mini", {"ocr": "none", "name": "metaembed-mini-peft"})
    a = merged.encode(items[:8], role="candidate", batch_size=8).vectors.float()
    b = kept.encode(items[:8], role="candidate", batch_size=8).vectors.float()
    difference = float((a - b).abs().max())
    print(f"merged vs kept adapter: max |difference| {difference:.2e} over 8 pages x 64 vectors")
    assert difference <= 1e-4, difference
    tokens = single.backbone.prepare(items).attention_mask.sum().item()
    print(
        f"{n} libdocs pages, {tokens / n:.0f} text tokens each on average (+80 slots for "
        f"MetaEmbed), batch {args.batch_size}, {rounds} rounds, torch threads "
        f"{torch.get_num_threads()}"
    )

    def encoder(model):
        return lambda: model.encode(items, role="candidate", batch_size=args.batch_size)

    variants = {
        "single-mean": encoder(single),
        "metaembed-mini (merged)": encoder(merged),
        "metaembed-mini (peft)": encoder(kept),
    }
    # several rotated runs; each reports medians; ratios are taken within one run
    runs = [rotated_medians(variants, rounds) for _ in range(2)]
    for name in variants:
        seconds = [r[name] for r in runs]
        ratios = [r[name] / r["single-mean"] for r in runs]
        print(
            f"{name:26s} {min(seconds) * 1000 / n:7.1f} ms/page (min of run medians)  "
            f"x{statistics.median(ratios):.2f} single-mean (runs: "
            + ", ".join(f"{x:.2f}" for x in ratios)
            + ")"
        )


if __name__ == "__main__":
    main()
