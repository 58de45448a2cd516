"""The embedding cache: interrupted runs resume without recomputing finished shards."""

from __future__ import annotations

import pytest
import toy_models
import toy_tasks

import harness
from harness.cache import EmbeddingCache
from harness.protocol import Item
from harness.testing import HashEncoder


def run(encoder, root, **kw):
    return harness.evaluate(
        encoder,
        [toy_tasks.CORPUS],
        budgets="1x1,4x8,16x64",
        output=str(root / "out"),
        cache_dir=str(root / "cache"),
        data_dir=str(root / "data"),
        shard_size=8,
        batch_size=4,
        progress=False,
        **kw,
    )


def test_interrupted_run_resumes_without_recomputing_finished_shards(tmp_path):
    # 12 unique queries (2 shards of 8 and 4), 40 unique pages (5 shards of 8), batches of 4.
    # Stopping after 6 calls (3 for queries) leaves both query shards and one page shard finished.
    with pytest.raises(KeyboardInterrupt):
        run(toy_models.FailingEncoder(fail_after=6), tmp_path)
    shards = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(shards) == 3
    assert not list((tmp_path / "cache").rglob(".tmp-*"))
    assert not (tmp_path / "out" / "test-hash" / "toy-corpus.json").exists()

    resumed = HashEncoder()
    record = run(resumed, tmp_path)[0]
    assert [r for r, _ in resumed.calls] == ["candidate"] * 8  # only the 32 pages left, by 4
    assert sum(n for _, n in resumed.calls) == 32
    assert record["encode"]["items_from_cache"] == 12 + 8

    fresh = run(HashEncoder(), tmp_path / "uninterrupted")[0]
    assert without_timing(record["budgets"]) == without_timing(fresh["budgets"])


def without_timing(budgets):
    return [
        {**b, "cost": {k: v for k, v in b["cost"].items() if k != "scoring_ms_per_query"}}
        for b in budgets
    ]


def test_cache_key_separates_roles_args_and_vector_counts(tmp_path):
    cache = EmbeddingCache(tmp_path, shard_size=4)
    items = [Item(f"i{i}", f"text {i}") for i in range(6)]
    cache.encode(HashEncoder(), items, role="query", batch_size=2)
    cache.encode(HashEncoder(), items, role="candidate", batch_size=2)
    cache.encode(HashEncoder(seed=1), items, role="query", batch_size=2)
    cache.encode(HashEncoder(nested=False), items, role="query", batch_size=2, num_vectors=4)
    assert len(list((tmp_path / "embeddings").rglob("key.json"))) == 4
    again = HashEncoder()
    first = cache.encode(again, items, role="query", batch_size=2)
    assert again.calls == []
    direct = HashEncoder().encode(items, role="query")
    assert (first.vectors == direct.vectors).all()


def test_shards_follow_content_not_position(tmp_path):
    cache = EmbeddingCache(tmp_path, shard_size=3)
    items = [Item(f"i{i}", f"text {i}") for i in range(6)]
    cache.encode(HashEncoder(), items, role="query", batch_size=3)
    changed = [*items[:3], Item("new", "other text"), *items[4:]]
    encoder = HashEncoder()
    cache.encode(encoder, changed, role="query", batch_size=3)
    assert encoder.calls == [("query", 3)]  # the first shard is reused, the edited one is not
