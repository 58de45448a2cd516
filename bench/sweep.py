"""Budget sweep: encode once and slice, against re-encoding per budget.

With the bundled metaembed-mini checkpoint on the offline mini task, through the harness's own
encode and score stages (harness.pipeline.encode.encode_pass / score.score_budget, EmbeddingCache(None): nothing cached,
so every variant really encodes):

- (a) sliced sweep: one encoding pass, then all 5 budgets scored on prefixes (what the encode stage does
  for nested models);
- (b) re-encoding sweep: one encoding pass per budget, with num_vectors = the budget (what
  the encode stage does for non-nested models; MetaEmbed computes every slot whatever num_vectors is);
- (b') re-encoding with only the budget's slots: the meta-token table cut to the budget's
  r_q query and r_c candidate slots, the cheapest a per-budget encoder could be;
- (c) a single budget (16x64): one encoding pass and one scoring.

Variants run in one process in rotated rounds; medians of the total, the encoding and the
scoring seconds are printed with ratios to (c). The scores of (a) and (b) are checked equal.

    python bench/sweep.py [--quick] [--limit 16] [--corpus 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from contextlib import contextmanager

import torch
from common import rotated_medians

from harness.budgets import Budget
from harness.cache import EmbeddingCache
from harness.config import RunConfig
from harness.pipeline.context import TaskContext
from harness.pipeline.data import prepare
from harness.pipeline.encode import Encoded, EncodeTiming, encode_pass
from harness.pipeline.score import score_budget
from harness.registry import get_model, get_tasks
from harness.task import TaskData

BUDGETS = [Budget(1, 1), Budget(2, 4), Budget(4, 8), Budget(8, 16), Budget(16, 64)]


def task_data(spec, n_queries: int, n_pages: int | None) -> TaskData:
    """The first n_queries queries; for a corpus task, their positive pages plus the first other
    pages up to n_pages (the encoding cost scales with the items, not with the task)."""
    data = spec.load(None).limit(n_queries)
    if spec.kind != "corpus" or n_pages is None or n_pages >= len(data.candidates):
        return data
    positives = {c for rel in data.qrels.values() for c in rel}
    keep = [c for c in data.candidates if c.id in positives]
    others = [c for c in data.candidates if c.id not in positives]
    keep += others[: max(0, n_pages - len(keep))]
    return TaskData(
        queries=data.queries,
        candidates=keep,
        qrels=data.qrels,
        notes=[*data.notes, f"corpus cut to {len(keep)} pages"],
    )


@contextmanager
def only_slots(model, rq: int, rc: int):
    """MetaEmbed with its meta-token table cut to the first rq query and rc candidate slots."""
    q_tokens, c_tokens, table = model.query_tokens, model.candidate_tokens, model.meta_tokens
    cut = torch.cat([table.data[:rq], table.data[q_tokens : q_tokens + rc]])
    model.meta_tokens = torch.nn.Parameter(cut, requires_grad=False)
    model.query_tokens, model.candidate_tokens = rq, rc
    try:
        yield
    finally:
        model.meta_tokens = table
        model.query_tokens, model.candidate_tokens = q_tokens, c_tokens


class Sweep:
    def __init__(self, encoder, spec, data, config):
        self.encoder, self.spec, self.config = encoder, spec, config
        self.prepared = prepare(spec, data)
        self.encode_s = 0.0
        self.last: dict[str, float] = {}

    def _run(self) -> TaskContext:
        return TaskContext(self.encoder, self.spec, self.config, EmbeddingCache(None))

    def _encode(self, ctx: TaskContext, budget: Budget | None) -> Encoded:
        began = time.perf_counter()
        enc = encode_pass(ctx, self.prepared, budget, EncodeTiming())
        self.encode_s += time.perf_counter() - began
        return enc

    def _score(self, ctx: TaskContext, enc: Encoded, slice_to: Budget | None) -> float:
        scored = score_budget(ctx, self.prepared, enc, slice_to)
        return scored.metrics[self.spec.main_metric]

    def sliced(self, budgets=BUDGETS):
        ctx = self._run()
        enc = self._encode(ctx, None)
        return {b.label: self._score(ctx, enc, b) for b in budgets}

    def reencode(self):
        ctx, out = self._run(), {}
        for b in BUDGETS:
            enc = self._encode(ctx, b)
            out[b.label] = self._score(ctx, enc, b)
        return out

    def own_slots(self):
        ctx, out = self._run(), {}
        for b in BUDGETS:
            with only_slots(self.encoder, b.query, b.candidate):
                enc = self._encode(ctx, b)
            out[b.label] = self._score(ctx, enc, None)
        return out

    def timed(self, fn):
        """fn, with this call's encoding seconds recorded under its name."""

        def call():
            self.encode_s = 0.0
            began = time.perf_counter()
            scores = fn()
            self.last.setdefault(fn.__name__, [])
            self.last[fn.__name__].append((time.perf_counter() - began, self.encode_s, scores))

        return call


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--task", default="libdocs-corpus")
    parser.add_argument("--limit", type=int, help="queries (default 16, 8 with --quick)")
    parser.add_argument("--corpus", type=int, help="pages kept (default 32, 16 with --quick)")
    parser.add_argument("--rounds", type=int, help="default 3, 2 with --quick")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    limit = args.limit or (8 if args.quick else 16)
    corpus = args.corpus or (16 if args.quick else 32)
    rounds = args.rounds or (2 if args.quick else 3)
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)

    encoder = get_model("metaembed-mini", device="cpu")
    spec = get_tasks(args.task)[0]
    data = task_data(spec, limit, corpus)
    config = RunConfig(
        models=[], tasks=[], no_cache=True, progress=False, device="cpu", limit=limit
    )
    config.batch_size = args.batch_size
    sweep = Sweep(encoder, spec, data, config)
    n_items = len(sweep.prepared.unique_queries) + len(sweep.prepared.unique_candidates)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, metaembed-mini on "
        f"{spec.name}: {len(data.queries)} queries, {len(data.candidates)} candidates "
        f"({n_items} unique items per encoding pass), batch {args.batch_size}, {rounds} rounds"
    )

    def single():
        return sweep.sliced([Budget(16, 64)])

    def sliced_sweep():
        return sweep.sliced()

    def reencode_sweep():
        return sweep.reencode()

    def own_slots_sweep():
        return sweep.own_slots()

    names = {
        "(c) single budget 16x64: encode + score": single,
        "(a) 5 budgets: encode once, score prefixes": sliced_sweep,
        "(b) 5 budgets: re-encode per budget": reencode_sweep,
        "(b') 5 budgets: re-encode with only the budget's slots": own_slots_sweep,
    }
    variants = {name: sweep.timed(fn) for name, fn in names.items()}
    medians = rotated_medians(variants, rounds, warmup=False)
    # correctness: slicing one encoding gives the same scores as encoding per budget
    sliced = sweep.last["sliced_sweep"][0][2]
    reencoded = sweep.last["reencode_sweep"][0][2]
    for label in sliced:
        assert abs(sliced[label] - reencoded[label]) < 1e-6, (label, sliced, reencoded)
    print(
        "main score per budget (sliced == re-encoded):", {k: round(v, 4) for k, v in sliced.items()}
    )
    base = medians["(c) single budget 16x64: encode + score"]
    print(f"\n## budget sweep, metaembed-mini, {spec.name}, CPU")
    print("| variant | total s | encode s | score + metrics s | x (c) |")
    print("|---|---|---|---|---|")
    for name, fn in names.items():
        runs = sweep.last[fn.__name__]
        enc = statistics.median(e for _, e, _ in runs)
        score = statistics.median(t - e for t, e, _ in runs)
        total = medians[name]
        print(f"| {name} | {total:.2f} | {enc:.2f} | {score:.3f} | {total / base:.2f} |")


if __name__ == "__main__":
    main()
