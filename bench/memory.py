"""Peak memory of scoring a large corpus at (16,64), D = 3584, per block budget.

Each configuration runs in a fresh subprocess (one at a time): it allocates the candidate
embeddings, reads its resident set (the baseline: interpreter + torch + embeddings), resets the
peak, runs `score_corpus(..., block_bytes=B)` over a few queries, and reads the peak again. The
scoring overhead is peak minus baseline, reported next to the embedding storage itself and to
the configured block budget B. On CUDA the same is read from torch.cuda.memory_allocated /
max_memory_allocated (after reset_peak_memory_stats).

The peak on Linux is VmHWM, reset through /proc/self/clear_refs before scoring; where that is
not possible it falls back to ru_maxrss (the process peak, which the embedding allocation itself
does not exceed: the tensor is filled in place).

    python bench/memory.py [--quick] [--device cuda]

A configuration whose predicted peak exceeds 85% of MemAvailable is skipped with a note (20k
candidates in fp32 are 18.4 GB: too much for a 24 GiB machine).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import gib, mib, peak_rss_bytes, reset_peak_rss, rss_bytes

from harness.budgets import Budget
from harness.multivectors import MultiVectors
from harness.scoring import _block_sizes, _copy_bytes, score_corpus

D, N_Q, N_C = 3584, 16, 64
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def predicted(count, queries, budget, block_bytes, storage, compute, stored_width=N_C):
    """The harness's block sizes and the buffers one block allocates beyond the similarity
    block: a copy of the candidate block when it is cast to the compute dtype, or reshaped from
    a non-contiguous prefix."""
    rq, rc = budget.query, budget.candidate
    b, m = _block_sizes(
        queries,
        count,
        rq,
        rc,
        256,
        block_bytes,
        copy_bytes=_copy_bytes(rc, D, DTYPES[storage], DTYPES[compute], sliced=rc < stored_width),
        compute_bytes=DTYPES[compute].itemsize,
    )
    sim = b * rq * m * rc * DTYPES[compute].itemsize
    copy = 0
    if rc < stored_width:
        copy += m * rc * D * DTYPES[storage].itemsize
    if storage != compute:
        copy += m * rc * D * DTYPES[compute].itemsize
    return {"b": b, "m": m, "sim_block": sim, "cand_copy": copy}


def child(args) -> None:
    dtype, cdt = DTYPES[args.dtype], DTYPES[args.compute_dtype]
    device = args.device
    g = torch.Generator(device=device).manual_seed(0)
    c = torch.empty(args.count, N_C, D, dtype=dtype, device=device)
    for i in range(0, args.count, 1000):  # filled in place: no full-size temporary
        c[i : i + 1000].uniform_(-0.03, 0.03, generator=g)
    q = torch.empty(args.queries, N_Q, D, dtype=dtype, device=device).uniform_(
        -0.03, 0.03, generator=g
    )
    qmv = MultiVectors(q, torch.full((args.queries,), N_Q, device=device))
    cmv = MultiVectors(c, torch.full((args.count,), N_C, device=device))
    gc.collect()
    budget = Budget(args.budget_q, args.budget_c)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
        reset = reset_peak_rss()
    began = time.perf_counter()
    score_corpus(qmv, cmv, budget, k=100, block_bytes=args.block_mib * 2**20, compute_dtype=cdt)
    if device == "cuda":
        torch.cuda.synchronize()
        peak, how = torch.cuda.max_memory_allocated(), "cuda max_memory_allocated"
    else:
        peak, how = peak_rss_bytes(), ("VmHWM after reset" if reset else "ru_maxrss")
    out = {
        "storage": c.numel() * c.element_size(),
        "base": base,
        "peak": peak,
        "overhead": peak - base,
        "seconds": time.perf_counter() - began,
        "how": how,
    }
    print("RESULT " + json.dumps(out))


def mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--queries", type=int, help="default 8 on CPU (4 quick), 64 on CUDA")
    parser.add_argument("--count", type=int, help="candidates (default 20000; quick 4000)")
    parser.add_argument(
        "--fp32-count", type=int, help="fp32 candidates on CPU (default 5000; quick 2000)"
    )
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 256], help="block MiB")
    # child mode
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="bfloat16", help=argparse.SUPPRESS)
    parser.add_argument("--compute-dtype", default="float32", help=argparse.SUPPRESS)
    parser.add_argument("--block-mib", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--budget-q", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--budget-c", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU")
    gpu = args.device == "cuda"
    queries = args.queries or (64 if gpu else (4 if args.quick else 8))
    count = args.count or (4000 if args.quick else 20000)
    fp32_count = count if gpu else (args.fp32_count or (2000 if args.quick else 5000))
    # (storage, compute, count, budget)
    configs = [("bfloat16", "float32", count, Budget(16, 64))]
    configs.append(("bfloat16", "bfloat16", count, Budget(16, 64)))
    configs.append(("float32", "float32", fp32_count, Budget(16, 64)))
    if not args.quick:
        configs.append(("bfloat16", "float32", count, Budget(8, 16)))
    where = torch.cuda.get_device_name() if gpu else "cpu"
    print(f"torch {torch.__version__}, {where}, {queries} queries, D={D}, top-100")
    print(
        "| storage / compute | candidates | budget | block budget | embeddings | harness block "
        "b x m (sim block + candidate copy) | scoring overhead | overhead / block budget | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    notes: list[str] = []
    how: set[str] = set()
    for storage, compute, n, budget in configs:
        for block in args.blocks:
            pred = predicted(n, queries, budget, block * 2**20, storage, compute)
            stored = n * N_C * D * DTYPES[storage].itemsize
            need = stored + pred["sim_block"] + pred["cand_copy"]
            avail = None if gpu else mem_available()
            label = f"{storage} / {compute}"
            if avail is not None and need > 0.85 * avail:
                notes.append(
                    f"skipped {label}, {n} candidates, {budget.label}, {block} MiB: predicted "
                    f"peak {gib(need)} > 85% of MemAvailable {gib(avail)}"
                )
                continue
            cmd = [
                sys.executable,
                __file__,
                "--child",
                f"--device={args.device}",
                f"--dtype={storage}",
                f"--compute-dtype={compute}",
                f"--count={n}",
                f"--queries={queries}",
                f"--block-mib={block}",
                f"--budget-q={budget.query}",
                f"--budget-c={budget.candidate}",
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                notes.append(
                    f"{label}, {n}, {budget.label}, {block} MiB failed (rc {proc.returncode}): "
                    f"{proc.stderr.strip().splitlines()[-1:]}"
                )
                continue
            r = json.loads(line[0][7:])
            print(
                f"| {label} | {n} | {budget.label} | {block} MiB | {gib(r['storage'])} | "
                f"{pred['b']} x {pred['m']} ({mib(pred['sim_block'])} + {mib(pred['cand_copy'])}) | "
                f"{mib(r['overhead'])} | {r['overhead'] / (block * 2**20):.2f} | "
                f"{r['seconds']:.1f} |",
                flush=True,
            )
            how.add(r["how"])
    notes += [f"peak read with {h}" for h in sorted(how)]
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
