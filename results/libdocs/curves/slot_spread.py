"""How different a MetaEmbed checkpoint's vectors are from each other, on libdocs-dev: why a
larger budget does or does not buy quality.

    python results/libdocs/curves/slot_spread.py CHECKPOINT [CHECKPOINT ...] [--pairs 64]

For the first PAIRS dev queries with one of their relevant pages each, encoded at the full
budget (16 query and 64 candidate vectors, L2-normalised), it prints per checkpoint:

- the mean cosine between two vectors of one page (64 vectors) and of one query (16): near 1
  means the slots say the same thing, so extra vectors add little;
- the mean cosine of each page vector with the page's first (its 1x1 vector);
- the effective rank of a page's 64 vectors (exp of the entropy of their normalised squared
  singular values; 1 = one direction, 64 = all orthogonal);
- at 16x64, for each query vector, which page vector wins its MaxSim against the relevant
  page: how many distinct page slots win per pair (of at most 16), and the share of wins that
  go to the page's first slot.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from harness.registry import get_model, get_tasks  # noqa: E402


def pairs(n: int):
    """The first n dev queries (in file order) that have a relevant page, with that page."""
    data = get_tasks(["libdocs-dev"])[0].load(None, ("text",))
    pages = {item.id: item for item in data.candidates}
    out = []
    for query in data.queries:
        relevant = [cid for cid, gain in data.qrels.get(query.id, {}).items() if gain > 0]
        if relevant:
            out.append((query, pages[sorted(relevant)[0]]))
        if len(out) == n:
            break
    return out


def mean_offdiagonal_cosine(vectors: torch.Tensor) -> float:
    """Mean cosine between two different rows, averaged over items; vectors [N, T, D] unit."""
    gram = vectors @ vectors.transpose(1, 2)
    t = vectors.shape[1]
    return float((gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(1)).mean() / (t * (t - 1)))


def effective_rank(vectors: torch.Tensor) -> float:
    """Mean over items of exp(entropy) of the normalised squared singular values."""
    ranks = []
    for rows in vectors:
        s2 = torch.linalg.svdvals(rows.double()) ** 2
        p = s2 / s2.sum()
        p = p[p > 0]
        ranks.append(math.exp(float(-(p * p.log()).sum())))
    return sum(ranks) / len(ranks)


def spread(checkpoint: str, n: int) -> dict[str, float]:
    model = get_model("metaembed", {"checkpoint": checkpoint, "max_length": 512})
    chosen = pairs(n)
    with torch.no_grad():
        q = model.encode([query for query, _ in chosen], role="query", batch_size=16)
        c = model.encode([page for _, page in chosen], role="candidate", batch_size=16)
    qv, cv = q.vectors.float(), c.vectors.float()
    assert int(q.lengths.min()) == qv.shape[1] and int(c.lengths.min()) == cv.shape[1]
    winners = (qv @ cv.transpose(1, 2)).argmax(-1)  # [N, 16]: the page slot each query vector picks
    distinct = sum(len(set(row.tolist())) for row in winners) / len(winners)
    return {
        "pairs": len(chosen),
        "page cos": mean_offdiagonal_cosine(cv),
        "query cos": mean_offdiagonal_cosine(qv),
        "page cos to its first": float((cv[:, 1:] @ cv[:, 0:1].transpose(1, 2)).mean()),
        "page effective rank": effective_rank(cv),
        "distinct slots won": distinct,
        "wins of slot 1": float((winners == 0).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="MetaEmbed checkpoint folders")
    parser.add_argument("--pairs", type=int, default=64, help="dev queries, one page each")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = {ckpt: spread(ckpt, args.pairs) for ckpt in args.checkpoints}
    keys = list(next(iter(rows.values())))
    print("| checkpoint | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for ckpt, row in rows.items():
        cells = [f"{row[k]:.0f}" if k == "pairs" else f"{row[k]:.3f}" for k in keys]
        print(f"| {ckpt} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
