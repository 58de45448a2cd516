"""MaxSim throughput: the harness scorer against a bare GEMM of the same FLOPs (the arithmetic
limit), a naive einsum over a padded [Nq, Nc, n, s] tensor, and colpali-engine's / pylate's
scorers when installed (each is checked against the naive einsum before it is timed, and skipped
with a note when it is not installed). Variants run side by side in one process, in rotated
rounds; medians and ratios are printed.

    python bench/maxsim.py [--quick]                      # CPU, fp32 and bf16 storage
    python bench/maxsim.py --device cuda --dtype bfloat16 --compute-dtype bfloat16
    python bench/maxsim.py --peers-only                   # just the 16x64 peer comparison

On CUDA the default sizes are 64 queries x 5000 candidates (16 x 1000 with --quick).
When a peer's documented import fails on an optional dependency of its package `__init__`
(colpali-engine's imports every model and so torchvision; pylate.utils imports `datasets`), only
the scorer's module is loaded, with those `__init__` files skipped; the note printed says so.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable

import torch
from common import import_skipping_inits, rotated_medians, sync

from harness.budgets import Budget
from harness.multivectors import MultiVectors
from harness.scoring import maxsim, score_candidate_lists, score_corpus

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def data(nq, nc, n, s, d, dtype, ragged=False, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(nq, n, d, generator=g), dim=-1).to(dtype)
    c = torch.empty(nc, s, d, dtype=dtype)
    for i in range(0, nc, 512):  # in chunks, so fp32 temporaries stay small
        part = torch.randn(min(512, nc - i), s, d, generator=g)
        c[i : i + 512] = torch.nn.functional.normalize(part, dim=-1).to(dtype)
    q_len = torch.full((nq,), n)
    c_len = torch.randint(s // 2, s + 1, (nc,), generator=g) if ragged else torch.full((nc,), s)
    c *= (torch.arange(s)[None, :] < c_len[:, None]).unsqueeze(-1).to(dtype)
    return MultiVectors(q, q_len).to(device), MultiVectors(c, c_len).to(device)


def einsum_naive(q: MultiVectors, c: MultiVectors, dtype: torch.dtype = torch.float32):
    """The reference (float32), or the same two lines in another compute dtype (timed beside
    the peers, which compute in their inputs' dtype)."""
    sim = torch.einsum("qnd,csd->qcns", q.vectors.to(dtype), c.vectors.to(dtype))
    sim = sim.masked_fill(~c.mask()[None, :, None, :], float("-inf"))
    return sim.amax(-1).sum(-1)


def bare_gemm(q: MultiVectors, c: MultiVectors, compute_dtype):
    return (
        q.vectors.reshape(-1, q.dim).to(compute_dtype)
        @ c.vectors.reshape(-1, c.dim).to(compute_dtype).T
    )


# ----------------------------------------------------------------------------- peers
Peer = Callable[[MultiVectors, MultiVectors, str], Callable[[], torch.Tensor]]
PEER_NOTES: dict[str, str] = {}


def _load(peer: str, top: str, normal: Callable, module: str, skip: tuple[str, ...]):
    """`normal()` imports the scorer the documented way; when that fails on something other
    than the package itself (an optional dependency of its package `__init__`), `module` is
    loaded with the `__init__` of each of `skip` left out."""
    if importlib.util.find_spec(top) is None:
        PEER_NOTES[peer] = "not installed, skipped"
        return None
    try:
        found = normal()
        PEER_NOTES[peer] = "imported as documented"
        return found
    except Exception as exc:  # an optional dependency missing or a version clash
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
    try:
        found = import_skipping_inits(module, skip)
    except Exception as exc:
        PEER_NOTES[peer] = f"import failed ({reason}; then {type(exc).__name__}: {exc}), skipped"
        return None
    PEER_NOTES[peer] = f"{module} loaded without the __init__ of {', '.join(skip)} ({reason})"
    return found


def _colpali() -> Peer | None:
    def normal():
        from colpali_engine.utils import processing_utils

        return processing_utils

    module = _load(
        "colpali-engine",
        "colpali_engine",
        normal,
        "colpali_engine.utils.processing_utils",
        ("colpali_engine",),
    )
    if module is None:
        return None
    score = module.BaseVisualRetrieverProcessor.score_multi_vector

    def prepare(q: MultiVectors, c: MultiVectors, device: str):
        # The API takes lists of unpadded [len, D] tensors (it pads each batch itself).
        qs = [v[:n] for v, n in zip(q.vectors, q.lengths.tolist(), strict=True)]
        ps = [v[:n] for v, n in zip(c.vectors, c.lengths.tolist(), strict=True)]
        return lambda: score(qs, ps, batch_size=128, device=device)

    return prepare


def _pylate() -> Peer | None:
    def normal():
        from pylate import scores

        return scores

    module = _load(
        "pylate",
        "pylate",
        normal,
        "pylate.scores.colbert",
        ("pylate", "pylate.utils", "pylate.scores"),
    )
    if module is None:
        return None
    colbert_scores = module.colbert_scores

    def prepare(q: MultiVectors, c: MultiVectors, device: str):
        ragged = bool((c.lengths < c.max_len).any())
        mask = c.mask() if ragged else None
        return lambda: colbert_scores(q.vectors, c.vectors, documents_mask=mask)

    return prepare


def peers() -> dict[str, Peer]:
    found = {"colpali-engine": _colpali(), "pylate": _pylate()}
    return {name: fn for name, fn in found.items() if fn is not None}


# ----------------------------------------------------------------------------- cases
def run_case(name, q, c, budget, args, peer_fns, with_einsum=True):
    device, cdt = args.device, DTYPES[args.compute_dtype]
    rq = q.prefix(budget.query) if budget.query else q
    rc = c.prefix(budget.candidate) if budget.candidate else c
    k = min(100, len(c))
    lowp = cdt != torch.float32 or q.vectors.dtype != torch.float32
    tol = dict(atol=5e-2, rtol=2e-2) if lowp else dict(atol=1e-3, rtol=1e-4)
    variants = {
        "harness score_corpus (top-100)": lambda: score_corpus(
            q, c, budget, k=k, compute_dtype=cdt
        ),
        "harness maxsim (dense block)": lambda: maxsim(
            rq.vectors, rq.lengths, rc.vectors, rc.lengths, cdt
        ),
        "bare GEMM, same FLOPs": lambda: bare_gemm(rq, rc, cdt),
    }
    if with_einsum:
        variants["naive einsum (fp32)"] = lambda: einsum_naive(rq, rc)
        if cdt != torch.float32:
            variants[f"naive einsum ({args.compute_dtype})"] = lambda: einsum_naive(rq, rc, cdt)
    if device == "cuda":  # as the score stage does: embeddings in CPU memory, each block sent over
        q_cpu, c_cpu = q.to("cpu"), c.to("cpu")
        variants["harness score_corpus, CPU-resident, device=cuda"] = lambda: score_corpus(
            q_cpu, c_cpu, budget, k=k, compute_dtype=cdt, device=device
        )
    ref = einsum_naive(rq, rc).float().cpu()
    # correctness before timing: the harness and every peer agree with the naive formula
    top = score_corpus(q, c, budget, k=k, compute_dtype=cdt)[0]
    assert torch.allclose(top, ref.sort(dim=1, descending=True).values[:, :k], **tol), name
    dense = maxsim(rq.vectors, rq.lengths, rc.vectors, rc.lengths, cdt).float().cpu()
    assert torch.allclose(dense, ref, **tol), name
    for peer, prepare in peer_fns.items():
        fn = prepare(rq, rc, device)
        got = fn().float().cpu()
        assert got.shape == ref.shape and torch.allclose(got, ref, **tol), (
            f"{peer} disagrees with the naive einsum on {name}: max diff "
            f"{(got - ref).abs().max().item():.3g}"
        )
        variants[f"{peer}"] = fn
    medians = rotated_medians(variants, args.rounds, device)
    gemm = medians["bare GEMM, same FLOPs"]
    ours = medians["harness score_corpus (top-100)"]
    ours_dense = medians["harness maxsim (dense block)"]
    print(f"\n## {name}")
    print("| variant | median s | x bare GEMM time | / score_corpus | / maxsim dense |")
    print("|---|---|---|---|---|")
    for v, m in medians.items():
        print(f"| {v} | {m:.4f} | {m / gemm:.2f} | {m / ours:.2f} | {m / ours_dense:.2f} |")
    return medians


def candidate_lists_case(args, d=3584, pool=2000, nq=200):
    """nq queries, each with 100 candidates drawn from `pool` (2000: lists barely overlap;
    150: they share most candidates, as MMEB classification label sets do)."""
    # Embeddings stay in CPU memory, as in the score stage; on CUDA the blocks are sent to the device.
    device, cdt = args.device, DTYPES[args.compute_dtype]
    dtype = torch.float32 if args.device == "cpu" else DTYPES[args.dtype[0]]
    q, c = data(nq, pool, 16, 64, d, dtype, seed=1)
    dev = None if device == "cpu" else device
    g = torch.Generator().manual_seed(2)
    lists = [torch.randperm(pool, generator=g)[:100] for _ in range(nq)]
    budget = Budget(16, 64)

    def per_query():
        out = []
        for i, lst in enumerate(lists):
            args_ = (q.vectors[i : i + 1], q.lengths[i : i + 1], c.vectors[lst], c.lengths[lst])
            out.append(maxsim(*(t.to(device) for t in args_), cdt).cpu())
        return out

    variants = {
        "harness score_candidate_lists (union per block)": lambda: score_candidate_lists(
            q, c, lists, budget, compute_dtype=cdt, device=dev
        ),
        "one small GEMM per query": per_query,
    }
    medians = rotated_medians(variants, max(2, args.rounds // 2), device)
    t_ours, t_loop = medians.values()
    print(
        f"\n## candidate lists: {nq} queries x 100 of {pool} candidates, 16x64, D={d}, "
        f"{str(dtype)[6:]} storage, {args.compute_dtype} compute"
    )
    for v, m in medians.items():
        print(f"| {v} | {m:.4f} s |")
    print(f"| speed-up | {t_loop / t_ours:.2f}x |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--dtype",
        nargs="+",
        default=None,
        choices=list(DTYPES),
        help="storage dtype(s); default float32 and bfloat16 on CPU, bfloat16 on CUDA",
    )
    parser.add_argument(
        "--compute-dtype",
        default="float32",
        choices=list(DTYPES),
        help="GEMM dtype of the harness scorer and the bare GEMM (the harness default: float32)",
    )
    parser.add_argument("--sizes", type=int, nargs=2, metavar=("QUERIES", "CANDIDATES"))
    parser.add_argument(
        "--peers-only", action="store_true", help="only the 16x64 D=3584 case with the peers"
    )
    parser.add_argument("--no-lists", action="store_true", help="skip the candidate-list cases")
    parser.add_argument("--lists-only", action="store_true", help="only the candidate-list cases")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU")
    args.dtype = args.dtype or (["bfloat16"] if args.device == "cuda" else list(DTYPES))
    torch.manual_seed(0)
    d = 3584
    if args.sizes:
        nq, nc = args.sizes
    elif args.device == "cuda":
        nq, nc = (16, 1000) if args.quick else (64, 5000)
    else:
        nq, nc = (8, 200) if args.quick else (32, 1000)
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"torch {torch.__version__}, {where}, threads {torch.get_num_threads()}, "
        f"compute {args.compute_dtype}, rounds {args.rounds}"
    )
    if args.lists_only:
        candidate_lists_case(args, pool=2000)
        candidate_lists_case(args, pool=150)
        return
    peer_fns = peers()
    for peer, note in PEER_NOTES.items():
        print(f"peer {peer}: {note}")
    budgets = (
        (Budget(16, 64),) if args.peers_only else (Budget(16, 64), Budget(8, 16), Budget(1, 1))
    )
    for dtype_name in args.dtype:
        dtype = DTYPES[dtype_name]
        q, c = data(nq, nc, 16, 64, d, dtype, device=args.device)
        sync(args.device)
        for budget in budgets:
            run_case(
                f"MetaEmbed {budget.label}, D={d}, {nq} queries x {nc} candidates, "
                f"{dtype_name} storage",
                q,
                c,
                budget,
                args,
                peer_fns,
                with_einsum=budget.label != "16x64" or nq * nc <= 64 * 5000,
            )
        del q, c
    if args.peers_only:
        return
    q, c = data(nq, max(1, nc // 4), 20, 1030, 128, torch.float32, ragged=True, device=args.device)
    run_case(
        f"ColPali-like 20 x ~1030 x 128 (ragged), {nq} queries x {nc // 4} pages, float32 storage",
        q,
        c,
        Budget(None, None),
        args,
        peer_fns,
        with_einsum=False,
    )
    if not args.no_lists:
        candidate_lists_case(args, pool=2000)
        candidate_lists_case(args, pool=150)


if __name__ == "__main__":
    main()
