"""Single-vector (1x1) corpus scoring against its arithmetic limit: a bare GEMM of all queries
against all candidates plus `torch.topk`.

    python bench/single_vector.py [--quick] [--rounds 5] [--queries 512] [--dims 384,3584]
                                  [--candidates 16384,65536]

Both variants run side by side in rotated rounds (bench/common.py) and must agree: top-k
scores to 1e-5, and the same candidates except where two scores are within rounding (1e-5) of
each other. The harness
path is `harness.scoring.score_corpus` at budget 1x1 with its default block size, the path
runs use; the limit holds the whole [queries, candidates] score matrix at once.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import rotated_medians  # noqa: E402

from harness.budgets import Budget  # noqa: E402
from harness.multivectors import MultiVectors  # noqa: E402
from harness.scoring import score_corpus  # noqa: E402

K = 100


def unit(n: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, d, generator=gen)
    return x / x.norm(dim=-1, keepdim=True)


def case(nq: int, nc: int, d: int, rounds: int) -> dict[str, float]:
    q, c = unit(nq, d, 0), unit(nc, d, 1)
    queries = MultiVectors(q, torch.ones(nq, dtype=torch.long))
    corpus = MultiVectors(c, torch.ones(nc, dtype=torch.long))
    q2, c2 = q[:, 0], c[:, 0]

    def harness_path():
        return score_corpus(queries, corpus, Budget(1, 1), k=K)

    def gemm_topk():
        return (q2 @ c2.T).topk(K, dim=1)

    got_scores, got_index = harness_path()
    ref = gemm_topk()
    # Blocked and whole GEMMs round differently in the last bits, so candidates whose scores
    # are that close may swap; any other difference is an error.
    assert torch.allclose(got_scores, ref.values, atol=1e-5), "top-k scores differ"
    differ = got_index != ref.indices
    exact = q2 @ c2.T
    swapped = (exact.gather(1, got_index) - exact.gather(1, ref.indices)).abs()[differ]
    assert bool((swapped < 1e-5).all()), "top-k candidates differ beyond rounding"
    return rotated_medians({"harness": harness_path, "gemm+topk": gemm_topk}, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one small case, 3 rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=512)
    parser.add_argument("--dims", default="384,3584")
    parser.add_argument("--candidates", default="16384,65536")
    args = parser.parse_args()
    dims = [int(x) for x in args.dims.split(",")]
    sizes = [int(x) for x in args.candidates.split(",")]
    rounds = args.rounds
    if args.quick:
        dims, sizes, rounds = dims[:1], sizes[:1], 3
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, top-{K}, fp32")
    print("| queries | candidates | D | harness s | GEMM + topk s | harness / (GEMM + topk) |")
    print("|---|---|---|---|---|---|")
    for d in dims:
        for nc in sizes:
            t = case(args.queries, nc, d, rounds)
            ratio = t["harness"] / t["gemm+topk"]
            print(
                f"| {args.queries} | {nc} | {d} | {t['harness']:.4f} | {t['gemm+topk']:.4f} | "
                f"{ratio:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
