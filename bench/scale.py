"""Out-of-core scoring at scale: one million single-vector (1x1) candidates and 100,000 16x64
candidates, left on disk in cache shards and streamed through `score_corpus` block by block,
as a run with `--memory-limit` scores them.

    python bench/scale.py --dir /tmp/scale [--dim 768] [--queries 16]
                          [--cases 1x1:1000000:64,16x64:100000:8] [--block-mib 256] [--keep]

A case is BUDGET:CANDIDATES[:QUERIES] (default queries: --queries).

Each case writes random unit vectors (fp16, as a bf16/fp16 model's cache holds them) in shards
of the cache's default 512 items, then scores the queries against them in a fresh subprocess and records wall
time, candidates scored per second, the scoring FLOPs rate, the bytes read, and the peak resident
memory above the start (VmHWM reset after setup). Correctness: the first 1,000 candidates'
top-10 from the streamed run equals a dense in-memory MaxSim of those candidates where both
rank the same candidates (checked on a prefix corpus in the same subprocess).

The shards are deleted afterwards unless `--keep`. Disk needed: candidates x vectors x dim x 2
bytes (1.5 GB and 9.8 GB at dim 768).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.constants import DEFAULT_SHARD_SIZE  # noqa: E402

SHARD = DEFAULT_SHARD_SIZE  # items per shard file, as the embedding cache writes them


def write_corpus(folder: Path, n: int, vectors: int, dim: int) -> list[Path]:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    gen = torch.Generator().manual_seed(1)
    for start in range(0, n, SHARD):
        stop = min(n, start + SHARD)
        path = folder / f"{start:09d}-{stop:09d}.safetensors"
        if not path.exists():
            x = torch.randn(stop - start, vectors, dim, generator=gen)
            x = (x / x.norm(dim=-1, keepdim=True)).half()
            lengths = torch.full((stop - start,), vectors, dtype=torch.long)
            save_file({"vectors": x, "lengths": lengths}, str(path))
        paths.append(path)
    return paths


def measure(folder: str, n: int, vectors: int, qvectors: int, dim: int, queries: int,
            block_mib: int) -> dict:  # fmt: skip
    """Runs in its own process: stream the on-disk corpus past the queries."""
    import torch
    from common import peak_rss_bytes, reset_peak_rss, rss_bytes

    from harness.budgets import Budget
    from harness.cache import Shard, ShardedVectors
    from harness.multivectors import MultiVectors
    from harness.scoring import maxsim, score_corpus

    paths = sorted(Path(folder).glob("*.safetensors"))
    shards = []
    for path in paths:
        start, stop = (int(x) for x in path.stem.split("-"))
        shards.append(Shard(start, stop, path=path))
    corpus = ShardedVectors(shards)
    assert len(corpus) == n
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(queries, qvectors, dim, generator=gen)
    q = q / q.norm(dim=-1, keepdim=True)
    qs = MultiVectors(q, torch.full((queries,), qvectors, dtype=torch.long))
    budget = Budget(qvectors, vectors)
    # correctness on a prefix: streamed top-10 against a dense MaxSim of the same candidates
    head = ShardedVectors(shards[:1])
    scores, index = score_corpus(qs, head, budget, k=10)
    dense_c = shards[0].load()
    dense = maxsim(q, qs.lengths, dense_c.vectors.float(), dense_c.lengths)
    ref = dense.topk(10, dim=1)
    assert torch.allclose(scores, ref.values, atol=1e-4), "streamed scores differ from dense"
    same = (index == ref.indices).float().mean().item()
    assert same > 0.99, f"streamed top-10 differs from dense ({same:.3f} agree)"
    del dense_c, dense
    reset_peak_rss()
    base = rss_bytes()
    began = time.perf_counter()
    score_corpus(qs, corpus, budget, k=100, block_bytes=block_mib << 20)
    seconds = time.perf_counter() - began
    flops = 2.0 * queries * qvectors * n * vectors * dim
    return {
        "candidates": n,
        "budget": budget.label,
        "dim": dim,
        "queries": queries,
        "seconds": seconds,
        "candidates_per_second_per_query": n * queries / seconds,
        "gflops_per_second": flops / seconds / 1e9,
        "bytes_on_disk": corpus.nbytes,
        "peak_above_start_mib": (peak_rss_bytes() - base) / 2**20,
        "block_mib": block_mib,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="folder for the shards (needs the disk)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--cases", default="1x1:1000000:64,16x64:100000:8")
    parser.add_argument("--block-mib", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the shards for a rerun")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(**json.loads(args.measure))))
        return
    rows = []
    for case in args.cases.split(","):
        label, n, *queries = case.split(":")  # LABEL:CANDIDATES[:QUERIES]
        qv, cv = (int(x) for x in label.split("x"))
        folder = Path(args.dir) / f"{label}-{n}-d{args.dim}"
        began = time.perf_counter()
        write_corpus(folder, int(n), cv, args.dim)
        written = time.perf_counter() - began
        spec = dict(folder=str(folder), n=int(n), vectors=cv, qvectors=qv, dim=args.dim,
                    queries=int(queries[0]) if queries else args.queries,
                    block_mib=args.block_mib)  # fmt: skip
        out = subprocess.run(
            [sys.executable, __file__, "--dir", args.dir, "--measure", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["write_seconds"] = written
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(folder)
    print("| budget | candidates | D | queries | s | candidates/s per query | GFLOP/s | "
          "on disk | peak above start |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['budget']} | {r['candidates']:,} | {r['dim']} | {r['queries']} | "
            f"{r['seconds']:.1f} | {r['candidates_per_second_per_query']:.3g} | "
            f"{r['gflops_per_second']:.1f} | {r['bytes_on_disk'] / 2**30:.2f} GiB | "
            f"{r['peak_above_start_mib']:.0f} MiB |"
        )


if __name__ == "__main__":
    main()
