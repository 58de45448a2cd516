"""MaxSim throughput: the harness scorer against a bare GEMM of the same FLOPs (the arithmetic
limit), a naive einsum over a padded [Nq, Nc, n, s] tensor, and colpali-engine's / pylate's
scorers when installed. Variants run side by side in one process, in rotated rounds; medians and
ratios are printed. Run by hand: `python bench/maxsim.py [--quick]`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from harness.budgets import Budget
from harness.multivectors import MultiVectors
from harness.scoring import maxsim, score_candidate_lists, score_corpus


def data(nq, nc, n, s, d, dtype, ragged=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(nq, n, d, generator=g), dim=-1).to(dtype)
    c = torch.nn.functional.normalize(torch.randn(nc, s, d, generator=g), dim=-1).to(dtype)
    q_len = torch.full((nq,), n)
    c_len = torch.randint(s // 2, s + 1, (nc,), generator=g) if ragged else torch.full((nc,), s)
    c = c * (torch.arange(s)[None, :] < c_len[:, None]).unsqueeze(-1).to(dtype)
    return MultiVectors(q, q_len), MultiVectors(c, c_len)


def einsum_naive(q: MultiVectors, c: MultiVectors):
    sim = torch.einsum("qnd,csd->qcns", q.vectors.float(), c.vectors.float())
    sim = sim.masked_fill(~c.mask()[None, :, None, :], float("-inf"))
    return sim.amax(-1).sum(-1)


def bare_gemm(q: MultiVectors, c: MultiVectors):
    return q.vectors.reshape(-1, q.dim).float() @ c.vectors.reshape(-1, c.dim).float().T


def peers():
    out = {}
    try:
        from colpali_engine.utils.processing_utils import BaseVisualRetrieverProcessor

        out["colpali-engine"] = lambda q, c: BaseVisualRetrieverProcessor.score_multi_vector(
            list(q.vectors), list(c.vectors)
        )
    except ImportError:
        pass
    try:
        from pylate.scores import colbert_scores

        out["pylate"] = lambda q, c: colbert_scores(q.vectors, c.vectors, documents_mask=c.mask())
    except ImportError:
        pass
    return out


def timed(fn, rounds):
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run_case(name, q, c, budget, rounds, with_einsum=True):
    rq = q.prefix(budget.query) if budget.query else q
    rc = c.prefix(budget.candidate) if budget.candidate else c
    k = min(100, len(c))
    variants = {
        "harness score_corpus": lambda: score_corpus(q, c, budget, k=k),
        "harness maxsim (dense)": lambda: maxsim(rq.vectors, rq.lengths, rc.vectors, rc.lengths),
        "bare GEMM, same FLOPs": lambda: bare_gemm(rq, rc),
    }
    if with_einsum:
        variants["naive einsum"] = lambda: einsum_naive(rq, rc)
    for peer, fn in peers().items():
        variants[peer] = lambda fn=fn: fn(rq, rc)
    # correctness: the scorer agrees with the naive formula
    ref = einsum_naive(rq, rc)
    top = score_corpus(q, c, budget, k=k)[0]
    assert torch.allclose(top, ref.sort(dim=1, descending=True).values[:, :k], atol=1e-3), name
    medians = {v: [] for v in variants}
    names = list(variants)
    for r in range(rounds):  # rotated order, one call each per round
        for v in names[r % len(names) :] + names[: r % len(names)]:
            medians[v].append(timed(variants[v], 1))
    gemm = statistics.median(medians["bare GEMM, same FLOPs"])
    print(f"\n## {name}")
    print("| variant | median s | x bare GEMM time |")
    print("|---|---|---|")
    for v in names:
        m = statistics.median(medians[v])
        print(f"| {v} | {m:.4f} | {m / gemm:.2f} |")


def candidate_lists_case(rounds, d=3584, pool=2000):
    """200 queries, each with 100 candidates drawn from `pool` (2000: lists barely overlap;
    150: they share most candidates, as MMEB classification label sets do)."""
    q, c = data(200, 2000, 16, 64, d, torch.float32, seed=1)
    g = torch.Generator().manual_seed(2)
    lists = [torch.randperm(pool, generator=g)[:100] for _ in range(200)]
    budget = Budget(16, 64)
    ours = lambda: score_candidate_lists(q, c, lists, budget)  # noqa: E731

    def per_query():
        return [
            maxsim(q.vectors[i : i + 1], q.lengths[i : i + 1], c.vectors[lst], c.lengths[lst])
            for i, lst in enumerate(lists)
        ]  # noqa: E731

    t_ours = statistics.median([timed(ours, 1) for _ in range(rounds)])
    t_loop = statistics.median([timed(per_query, 1) for _ in range(rounds)])
    print(f"\n## candidate lists: 200 queries x 100 of {pool} candidates, 16x64, D={d}, fp32")
    print(
        f"| harness (union per block) | {t_ours:.4f} s |\n| one small GEMM per query | {t_loop:.4f} s |\n| ratio | {t_loop / t_ours:.2f}x |"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    d = 3584
    nq, nc = (8, 200) if args.quick else (32, 1000)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for dtype in (torch.float32, torch.bfloat16):
        q, c = data(nq, nc, 16, 64, d, dtype)
        for budget in (Budget(16, 64), Budget(8, 16), Budget(1, 1)):
            run_case(
                f"MetaEmbed {budget.label}, D={d}, {nq} queries x {nc} candidates, {str(dtype)[6:]}",
                q,
                c,
                budget,
                args.rounds,
                with_einsum=budget.label != "16x64" or nc <= 200,
            )
    q, c = data(nq, nc // 4, 20, 1030, 128, torch.float32, ragged=True)
    run_case(
        f"ColPali-like 20 x ~1030 x 128 (ragged), {nq} queries x {nc // 4} pages, float32",
        q,
        c,
        Budget(None, None),
        args.rounds,
        with_einsum=False,
    )
    candidate_lists_case(max(2, args.rounds // 2), pool=2000)
    candidate_lists_case(max(2, args.rounds // 2), pool=150)


if __name__ == "__main__":
    main()
