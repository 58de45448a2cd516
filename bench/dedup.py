"""MMEB candidate dedup against none.

An MMEB-classification-like candidates task: every query is ranked against its own list of
candidates, and the lists are drawn from a small shared label set (ImageNet-1K: 1000 labels in
each of 1000 lists; N24News: 24). Two ways to encode and score it, side by side in one process
in rotated rounds:

- dedup (the harness path): `harness.pipeline.data.unique` over the list entries and the queries, encode
  the unique items once (EmbeddingCache(None), nothing on disk), `score_candidate_lists` on the
  unique rows (a block of queries is scored in one GEMM against the union of its lists);
- no dedup: every list entry encoded as its own item, each query scored against its own rows.

Encoders: the HashEncoder of harness.testing (the harness's own overhead: hashing, batching,
scoring) at the larger size, and the bundled metaembed-mini checkpoint (a real encoder's cost)
at a smaller one. Scores of the two paths are checked equal before the table is printed.

    python bench/dedup.py [--quick] [--queries 200 --labels 1000] [--mini-queries 16 --mini-labels 24]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time

import torch
from common import rotated_medians

from harness.budgets import Budget
from harness.cache import EmbeddingCache, EncodeStats
from harness.pipeline.data import unique as _unique
from harness.protocol import Item
from harness.scoring import score_candidate_lists
from harness.testing import HashEncoder

BUDGET = Budget(16, 64)


def mmeb_like(n_queries, query_texts, labels, list_size, seed=0):
    """(query texts, each query's list of label texts): positive first, then list_size - 1
    other labels in a random order, as MMEB's tgt_text lists are laid out."""
    rng = random.Random(seed)
    queries, lists = [], []
    for i in range(n_queries):
        positive = rng.randrange(len(labels))
        others = [j for j in range(len(labels)) if j != positive]
        rng.shuffle(others)
        queries.append(query_texts[i % len(query_texts)] + f" (#{i})")
        lists.append([labels[positive]] + [labels[j] for j in others[: list_size - 1]])
    return queries, lists


def dedup_path(encoder, queries, lists, batch):
    # Fresh Items each call, so content hashes (cached per Item) are really computed.
    q_items = [Item(f"q{i}", text=t) for i, t in enumerate(queries)]
    entries = [Item(f"q{i}/{j}", text=t) for i, lst in enumerate(lists) for j, t in enumerate(lst)]
    began = time.perf_counter()
    stats = EncodeStats()
    cache = EmbeddingCache(None)
    unique_q, q_rows = _unique(q_items)
    unique_c, c_rows = _unique(entries)
    qmv = cache.encode(encoder, unique_q, role="query", batch_size=batch, stats=stats)
    cmv = cache.encode(encoder, unique_c, role="candidate", batch_size=batch, stats=stats)
    encoded = time.perf_counter()
    rows = [r.tolist() for r in c_rows.split([len(lst) for lst in lists])]
    scores = score_candidate_lists(qmv.select(q_rows), cmv, rows, BUDGET)
    done = time.perf_counter()
    return scores, stats.encoded, encoded - began, done - encoded


def no_dedup_path(encoder, queries, lists, batch):
    q_items = [Item(f"q{i}", text=t) for i, t in enumerate(queries)]
    entries = [Item(f"q{i}/{j}", text=t) for i, lst in enumerate(lists) for j, t in enumerate(lst)]
    began = time.perf_counter()
    stats = EncodeStats()
    cache = EmbeddingCache(None)
    qmv = cache.encode(encoder, q_items, role="query", batch_size=batch, stats=stats)
    cmv = cache.encode(encoder, entries, role="candidate", batch_size=batch, stats=stats)
    encoded = time.perf_counter()
    rows, start = [], 0
    for lst in lists:
        rows.append(list(range(start, start + len(lst))))
        start += len(lst)
    scores = score_candidate_lists(qmv, cmv, rows, BUDGET)
    done = time.perf_counter()
    return scores, stats.encoded, encoded - began, done - encoded


def compare(title, encoder, queries, lists, batch, rounds, atol):
    runs: dict[str, list] = {"dedup (harness)": [], "no dedup": []}
    paths = {"dedup (harness)": dedup_path, "no dedup": no_dedup_path}

    def variant(name):
        def call():
            runs[name].append(paths[name](encoder, queries, lists, batch))

        return call

    # rotated order; the time reported is the encode + score region of each call (building the
    # Item objects, the same for both, is left out)
    rotated_medians({n: variant(n) for n in paths}, rounds, warmup=False)
    medians = {n: statistics.median(r[2] + r[3] for r in runs[n]) for n in paths}
    a, b = runs["dedup (harness)"][0][0], runs["no dedup"][0][0]
    worst = max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))
    assert worst <= atol, f"{title}: dedup and no-dedup scores differ by {worst:.3g}"
    entries = sum(len(lst) for lst in lists)
    print(f"\n## {title}")
    print(
        f"{len(queries)} queries x {len(lists[0])}-entry lists ({entries} entries, "
        f"{len({t for lst in lists for t in lst})} distinct labels), 16x64, {rounds} rounds; "
        f"scores agree to {worst:.1e}"
    )
    print("| variant | items encoded | encode s (incl. dedup) | score s | total s |")
    print("|---|---|---|---|---|")
    for name in paths:
        items = runs[name][0][1]
        enc = statistics.median(r[2] for r in runs[name])
        score = statistics.median(r[3] for r in runs[name])
        print(f"| {name} | {items} | {enc:.3f} | {score:.3f} | {medians[name]:.3f} |")
    ratio = medians["no dedup"] / medians["dedup (harness)"]
    print(f"| no dedup / dedup | | | | {ratio:.1f}x |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--queries", type=int, help="HashEncoder case (default 200; quick 100)")
    parser.add_argument(
        "--labels", type=int, help="label set = list size (default 1000; quick 100)"
    )
    parser.add_argument("--hash-dim", type=int, default=16)
    parser.add_argument(
        "--mini-queries", type=int, help="metaembed-mini case (default 16; quick 8)"
    )
    parser.add_argument("--mini-labels", type=int, help="default 24 (N24News); quick 12")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-mini", action="store_true", help="skip the metaembed-mini case")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    nq = args.queries or (100 if args.quick else 200)
    nl = args.labels or (100 if args.quick else 1000)
    mq = args.mini_queries or (8 if args.quick else 16)
    ml = args.mini_labels or (12 if args.quick else 24)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")

    labels = [f"a photo of class {i}: label words {i * 7919 % 1000}" for i in range(nl)]
    query_texts = ["Represent the given image for classification"]
    queries, lists = mmeb_like(nq, query_texts, labels, nl)
    compare(
        f"HashEncoder (dim {args.hash_dim}), ImageNet-1K-like",
        HashEncoder(dim=args.hash_dim),
        queries,
        lists,
        batch=256,
        rounds=args.rounds,
        atol=1e-5,
    )

    if args.no_mini:
        return
    from harness.registry import get_model, get_tasks

    encoder = get_model("metaembed-mini", device="cpu")
    mini = get_tasks("libdocs-corpus")[0].load(None)
    # Real strings: page titles of the libdocs suite as labels, its queries as query texts.
    titles = [c.text.split("\n")[0] for c in mini.candidates][:ml]
    queries, lists = mmeb_like(mq, [q.text for q in mini.queries], titles, ml)
    compare(
        "metaembed-mini, N24News-like",
        encoder,
        queries,
        lists,
        batch=32,
        rounds=args.rounds,
        atol=1e-3,
    )


if __name__ == "__main__":
    main()
