"""Cascades against the exhaustive scan they undercut, idle and beside a competing CPU-bound
process, side by side in one run.

    python bench/cascade.py --dir /tmp/cascade [--candidates 100000] [--queries 16]
                            [--depths 10,100,1000] [--rounds 3] [--libdocs] [--quick]

Variants, each timed in every round and condition:

- `exhaustive`: `score_corpus` at SECOND over the whole corpus (top-100), as a run scores it;
- `cascade@D`: FIRST over the corpus (top-D), then the shortlists re-scored at SECOND and
  ranked: `score_shortlists` + `rank_shortlists`, the path a run's cascade takes;
- `old@D` (with `--old`): the same first stage, then the shortlists scored as candidate
  lists (`score_candidate_lists`, a block of queries scored densely against the union of its
  lists) and ranked one query at a time, the second stage before `score_shortlists`.

Corpora: a synthetic one of random unit vectors (D = 768, 64 per candidate, 16 per query,
fp16 in cache shards on disk, scored out of core as a run with `--memory-limit` does), and with
`--libdocs` metaembed-mini's embeddings of `libdocs-corpus` (505 pages, 1122 queries, D = 384,
in memory; encoded once into `--dir`).

Conditions alternate within each round: `idle`, then `loaded` (a competing process started
by this script that multiplies fp32 matrices on 2 threads until stopped), and the variants
rotate their order round by round. Reported: per variant and condition the median and min
seconds, ms per query, and the cascade's min / exhaustive's min in the same condition
(min-to-min). Correctness first: every cascade's ranking equals the old second stage's and its
scores agree to 1e-5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from harness.budgets import Budget  # noqa: E402
from harness.cache import Shard, ShardedVectors  # noqa: E402
from harness.multivectors import MultiVectors  # noqa: E402
from harness.scoring import (  # noqa: E402
    rank_shortlists,
    score_candidate_lists,
    score_corpus,
    score_shortlists,
)

FIRST, SECOND = Budget(1, 1), Budget(16, 64)
TOP_K = 100
COMPETITOR = (
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "a = torch.randn(1024, 1024)\n"
    "while True:\n"
    "    a = torch.tanh(a @ a)\n"
)


def synthetic(folder: Path, n: int, queries: int) -> tuple[MultiVectors, ShardedVectors]:
    from scale import write_corpus

    paths = write_corpus(folder, n, 64, 768)
    shards = []
    for path in paths:
        start, stop = (int(x) for x in path.stem.split("-")[:2])
        shards.append(Shard(start, stop, path))
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(queries, 16, 768, generator=gen)
    q = q / q.norm(dim=-1, keepdim=True)
    return MultiVectors(q, torch.full((queries,), 16)), ShardedVectors(shards)


def libdocs(folder: Path) -> tuple[MultiVectors, MultiVectors]:
    """metaembed-mini's embeddings of libdocs-corpus (encoded once, then read back)."""
    path = folder / "libdocs-corpus-metaembed-mini.pt"
    if not path.exists():
        from harness.registry import get_model, get_tasks

        spec = get_tasks("libdocs-corpus")[0]
        model = get_model("metaembed-mini")
        data = spec.load(None, model.card.modalities)
        with torch.inference_mode():
            q = model.encode(data.queries, role="query", batch_size=32)
            c = model.encode(data.candidates, role="candidate", batch_size=16)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"q": (q.vectors, q.lengths), "c": (c.vectors, c.lengths)}, path)
    saved = torch.load(path)
    return MultiVectors(*saved["q"]), MultiVectors(*saved["c"])


def variants(queries, corpus, depths, old: bool):
    def exhaustive():
        return score_corpus(queries, corpus, SECOND, k=min(TOP_K, len(corpus)))

    def first(depth):
        return score_corpus(queries, corpus, FIRST, k=depth)[1]

    def cascade(depth):
        shortlist = first(depth)
        return rank_shortlists(score_shortlists(queries, corpus, shortlist, SECOND), shortlist)

    def old_cascade(depth):
        shortlist = first(depth)
        lists = shortlist.tolist()
        pool = corpus
        if isinstance(corpus, ShardedVectors):  # the union read from the shards, as before
            union = sorted({r for rows in lists for r in rows})
            where = {r: i for i, r in enumerate(union)}
            pool = corpus.take(union)
            lists = [[where[r] for r in rows] for rows in lists]
        scores = score_candidate_lists(queries, pool, lists, SECOND)
        out_s, out_r = [], []
        for row_scores, rows in zip(scores, shortlist, strict=True):
            by_row = torch.argsort(rows)
            s, r = row_scores[by_row], rows[by_row]
            order = torch.sort(s, descending=True, stable=True).indices
            out_s.append(s[order])
            out_r.append(r[order])
        return torch.stack(out_s), torch.stack(out_r)

    out = {"exhaustive": exhaustive}
    for depth in depths:
        out[f"cascade@{depth}"] = lambda d=depth: cascade(d)
        if old:
            out[f"old@{depth}"] = lambda d=depth: old_cascade(d)
    return out


def check(table: dict, depths) -> None:
    for depth in depths:
        new_s, new_r = table[f"cascade@{depth}"]()
        if f"old@{depth}" in table:
            old_s, old_r = table[f"old@{depth}"]()
            # the same candidates, in an order that differs only where scores are within the
            # rounding of one summation order against another (near ties)
            assert torch.allclose(new_s, old_s, atol=1e-5), f"depth {depth}: scores differ"
            assert torch.equal(new_r.sort(1).values, old_r.sort(1).values), f"depth {depth}"
            swapped = int((new_r != old_r).sum())
            print(f"check depth {depth}: scores within 1e-5 of the old path's, "
                  f"{swapped} of {new_r.numel()} positions differ by a near tie", flush=True)  # fmt: skip


def competitor() -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=env)
    time.sleep(2.0)  # running before timing starts
    return proc


def measure(name: str, table: dict, rounds: int, n_queries: int) -> list[dict]:
    times: dict[tuple[str, str], list[float]] = {}
    names = list(table)
    for fn in table.values():  # warm-up: caches, threads, the page cache
        fn()
    for r in range(rounds):
        for condition in ("idle", "loaded"):
            proc = competitor() if condition == "loaded" else None
            try:
                shift = r % len(names)
                for variant in names[shift:] + names[:shift]:
                    began = time.perf_counter()
                    table[variant]()
                    seconds = time.perf_counter() - began
                    times.setdefault((variant, condition), []).append(seconds)
                    print(f"{name} round {r} {condition} {variant}: {seconds:.3f} s", flush=True)
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
    rows = []
    for (variant, condition), t in times.items():
        base = min(times[("exhaustive", condition)])
        rows.append(
            {
                "corpus": name,
                "variant": variant,
                "condition": condition,
                "median_s": statistics.median(t),
                "min_s": min(t),
                "max_s": max(t),
                "ms_per_query_min": 1000 * min(t) / n_queries,
                "min_over_exhaustive_min": min(t) / base,
            }
        )
    return rows


def paused_while(pids: list[int], work):
    import signal

    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        return work()
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where the synthetic shards are written")
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--depths", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--libdocs", action="store_true", help="also libdocs-corpus")
    parser.add_argument("--no-synthetic", action="store_true")
    parser.add_argument("--old", action="store_true", help="also the old second stage")
    parser.add_argument("--quick", action="store_true", help="10,000 candidates, 2 rounds")
    parser.add_argument("--json", help="write the rows here as well")
    parser.add_argument(
        "--pause",
        default="",
        help="comma-separated process ids stopped (SIGSTOP) while timing and continued after, "
        "so that `idle` is idle on a machine running other jobs",
    )
    args = parser.parse_args()
    paused = [int(p) for p in args.pause.split(",") if p]
    if args.quick:
        args.candidates, args.rounds = 10_000, 2
    torch.set_num_threads(2)
    folder = Path(args.dir)
    rows = []
    if args.libdocs:
        q, c = libdocs(folder)
        depths = [5, 10, 100]  # 5 is 1% of the 505 pages
        table = variants(q, c, depths, args.old)
        check(table, depths)
        rows += paused_while(paused, lambda: measure("libdocs-corpus", table, args.rounds, len(q)))
    if not args.no_synthetic:
        q, c = synthetic(folder / f"synthetic-{args.candidates}", args.candidates, args.queries)
        depths = [int(d) for d in args.depths.split(",")]
        table = variants(q, c, depths, args.old)
        check(table, depths)
        name = f"synthetic {args.candidates:,}"
        rows += paused_while(paused, lambda: measure(name, table, args.rounds, len(q)))
    print(
        "\n| corpus | variant | condition | median s | min s | max s | ms/query (min) | min / exhaustive min |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["corpus"], r["condition"], r["variant"])):
        print(
            f"| {row['corpus']} | {row['variant']} | {row['condition']} | {row['median_s']:.3f} "
            f"| {row['min_s']:.3f} | {row['max_s']:.3f} | {row['ms_per_query_min']:.2f} "
            f"| {row['min_over_exhaustive_min']:.3f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
