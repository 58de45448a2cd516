"""Stage 3, encode: embed a task's distinct items through the cache (shards written once,
locally or split across torch.distributed ranks) and give one set of embeddings per budget.

How a model's budgets are served depends on what it declares: a nested model (MetaEmbed) is
encoded once and every budget reads a prefix; a model that can `reduce` (token pooling) is
encoded once and reduced per budget; any other model is encoded once per budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from tqdm.auto import tqdm

from harness.budgets import Budget, Cascade
from harness.cache import EncodeRequest, EncodeStats, ShardedVectors, load_shards
from harness.errors import HarnessError
from harness.multivectors import MultiVectors, check_embeddings
from harness.pipeline.context import TaskContext
from harness.pipeline.data import Prepared
from harness.protocol import Item, ReducingEncoder


@dataclass
class Encoded:
    queries: MultiVectors
    candidates: MultiVectors | ShardedVectors  # ShardedVectors: scored out of core
    cascade: Cascade | None = None  # a two-stage budget is scored from these embeddings
    first: Encoded | None = None  # its first stage's own (reduced) embeddings; None: a prefix
    storage: str | None = None  # candidates stored compressed (harness/compression.py)


@dataclass
class EncodeTiming:
    query: EncodeStats = field(default_factory=EncodeStats)
    candidate: EncodeStats = field(default_factory=EncodeStats)


def encode_items(
    ctx: TaskContext, items: list[Item], role: str, num_vectors: int | None, timing: EncodeTiming
) -> MultiVectors | ShardedVectors | None:
    """Embeddings through the cache; None on ranks other than 0, which only encode.

    Shared-corpus candidates stay on disk (ShardedVectors) when they exceed the memory
    limit; everything else is loaded.
    """
    stats = timing.query if role == "query" else timing.candidate
    limit = ctx.config.memory_limit
    # Only shared-corpus candidates may be scored from disk; those are not kept in memory.
    may_spill = (
        role == "candidate"
        and ctx.spec.kind == "corpus"
        and limit is not None
        and ctx.cache.root is not None
    )
    plural = {"query": "queries", "candidate": "candidates"}.get(role, role)
    label = f"{ctx.card.name} | {ctx.spec.name} | encode {plural}" + (
        f" @{num_vectors}" if num_vectors else ""
    )
    with tqdm(total=len(items), desc=label, disable=not ctx.show_progress, leave=False) as bar:
        try:
            request = EncodeRequest(
                ctx.encoder, items, role, ctx.config.batch_size, num_vectors, progress=bar
            )
            shards = ctx.cache.fill(request, stats=stats, dist=ctx.dist, keep=not may_spill)
        except HarnessError as exc:
            raise HarnessError(f"task {ctx.spec.name}: {exc}") from exc
    if not ctx.dist.is_main:
        return None
    ids = [i.id for i in items]
    if may_spill and shards:
        stored = ShardedVectors(shards)
        if stored.nbytes > limit:
            for offset, block in stored.chunks(stored.shard_items()):
                check_embeddings(
                    block, ids[offset : offset + len(block)], model=ctx.card.name, role=role
                )
            return stored
    mv = load_shards(shards, ctx.card.dim)
    check_embeddings(mv, ids, model=ctx.card.name, role=role)
    return mv


def encode_pass(
    ctx: TaskContext, data: Prepared, budget: Budget | None, timing: EncodeTiming
) -> Encoded:
    """Embeddings of the distinct items for one encoding pass; `budget` None encodes every
    vector the model makes (one pass serves every budget)."""
    nq = None if budget is None else budget.query
    nc = None if budget is None else budget.candidate
    return Encoded(
        encode_items(ctx, data.unique_queries, "query", nq, timing),
        encode_items(ctx, data.unique_candidates, "candidate", nc, timing),
    )


def per_budget(
    ctx: TaskContext, data: Prepared, budgets: list[Budget], timing: EncodeTiming
) -> Iterator[tuple[Budget, Encoded, Budget | None]]:
    """(budget, its embeddings, the budget to slice them to or None) for each budget, on rank 0;
    other ranks encode their share and yield nothing."""
    encoder = ctx.encoder

    def bar(what: str):
        desc = f"{ctx.card.name} | {ctx.spec.name} | {what}"
        return tqdm(budgets, desc=desc, disable=not ctx.show_progress, leave=False)

    if not ctx.card.nested and isinstance(encoder, ReducingEncoder):
        whole = encode_pass(ctx, data, None, timing)
        if not ctx.dist.is_main:
            return
        for budget in bar("score"):
            if isinstance(budget, Cascade):
                first = _reduced(encoder, whole, budget.first)
                yield (
                    budget,
                    replace(_reduced(encoder, whole, budget.second), cascade=budget, first=first),
                    None,
                )
            else:
                yield (
                    budget,
                    replace(_reduced(encoder, whole, budget), storage=budget.storage),
                    None,
                )
    elif ctx.card.nested:
        whole = encode_pass(ctx, data, None, timing)
        if not ctx.dist.is_main:
            return
        for budget in bar("score"):
            if isinstance(budget, Cascade):
                yield budget, replace(whole, cascade=budget), budget
            else:
                yield budget, replace(whole, storage=budget.storage), budget
    else:
        for budget in bar("encode+score"):
            own = encode_pass(ctx, data, budget, timing)
            if ctx.dist.is_main:
                yield budget, replace(own, storage=budget.storage), None


def _reduced(encoder: ReducingEncoder, whole: Encoded, budget: Budget) -> Encoded:
    return Encoded(
        encoder.reduce(whole.queries, "query", budget.query),
        reduce_candidates(encoder, whole.candidates, budget.candidate),
    )


def reduce_candidates(
    encoder: ReducingEncoder, candidates: MultiVectors | ShardedVectors, count: int | None
) -> MultiVectors | ShardedVectors:
    if isinstance(candidates, ShardedVectors):
        return ShardedVectors(
            candidates.shards,
            transform=lambda mv: encoder.reduce(mv, "candidate", count).zero_padding(),
        )
    return encoder.reduce(candidates, "candidate", count).zero_padding()
