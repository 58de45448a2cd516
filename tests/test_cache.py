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

    resumed = toy_models.FailingEncoder(fail_after=10**9)  # the same code, not failing now
    record = run(resumed, tmp_path)[0]
    assert [r for r, _ in resumed.calls] == ["candidate"] * 8  # only the 32 pages left, by 4
    assert sum(n for _, n in resumed.calls) == 32
    assert record["encode"]["items_from_cache"] == 12 + 8

    fresh = run(HashEncoder(), tmp_path / "uninterrupted")[0]
    assert without_timing(record["budgets"]) == without_timing(fresh["budgets"])


def without_timing(budgets):
    return [
        {
            **b,
            "cost": {
                k: v
                for k, v in b["cost"].items()
                if k
                not in ("scoring_ms_per_query", "scoring_timing_runs", "scoring_ms_per_query_runs")
            },
        }
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


ENCODER_SOURCE = """
import torch
from harness.budgets import Budget
from harness.multivectors import MultiVectors
from harness.protocol import ModelCard


class Encoder:
    card = ModelCard(name="mine", family="single", dim=4, budgets=(Budget(1, 1),))

    def encode(self, items, *, role, batch_size):
        rows = []
        for item in items:
            g = torch.Generator().manual_seed(hash(item.text) % 1000 + SALT)
            rows.append(torch.nn.functional.normalize(VALUE * torch.randn(1, 4, generator=g), dim=-1))
        return MultiVectors(torch.stack(rows), torch.ones(len(items), dtype=torch.long))


def make():
    return Encoder()
"""


def _write_encoder(folder, salt, value="1.0"):
    (folder / "my_encoder.py").write_text(
        ENCODER_SOURCE.replace("SALT", str(salt)).replace("VALUE", value)
    )


def _cli_run(folder, out, *extra):
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{folder}{os.pathsep}{tests}", "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--model",
            "my_encoder:make",
            "--tasks",
            "toy_tasks:CORPUS",
            "--data-dir",
            str(folder / "data"),
            "--cache-dir",
            str(folder / "cache"),
            "--output",
            str(folder / out),
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _score(folder, out):
    import json

    path = folder / out / "mine" / "toy-corpus.json"
    return json.loads(path.read_text())


@pytest.mark.slow
def test_an_edited_encoder_never_reuses_the_old_vectors(tmp_path):
    _write_encoder(tmp_path, salt=1)
    assert _cli_run(tmp_path, "a").returncode == 0
    _write_encoder(tmp_path, salt=2)  # the researcher edits encode()
    again = _cli_run(tmp_path, "a", "--overwrite")
    assert again.returncode == 0, again.stderr
    fresh = _cli_run(tmp_path, "b", "--no-cache")
    assert fresh.returncode == 0, fresh.stderr
    edited, uncached = _score(tmp_path, "a"), _score(tmp_path, "b")
    assert edited["budgets"][0]["per_query"] == uncached["budgets"][0]["per_query"]
    assert edited["encode"]["items_from_cache"] == 0  # recorded: nothing came from the cache
    # Rerunning the same code reuses the vectors, and says so.
    third = _cli_run(tmp_path, "c")
    assert third.returncode == 0 and _score(tmp_path, "c")["encode"]["items_from_cache"] > 0


@pytest.mark.slow
def test_overwrite_recomputes_embeddings_even_for_unchanged_code(tmp_path):
    _write_encoder(tmp_path, salt=1)
    assert _cli_run(tmp_path, "a").returncode == 0
    again = _cli_run(tmp_path, "a", "--overwrite")
    assert again.returncode == 0
    assert _score(tmp_path, "a")["encode"]["items_from_cache"] == 0


@pytest.mark.slow
def test_embeddings_that_fail_the_checks_are_never_cached(tmp_path):
    _write_encoder(tmp_path, salt=1, value="float('nan')")
    bad = _cli_run(tmp_path, "a")
    assert bad.returncode == 1 and "NaN" in bad.stderr
    assert not list((tmp_path / "cache").rglob("*.safetensors"))
    _write_encoder(tmp_path, salt=1)  # fixed: a valid encoder under the same name
    good = _cli_run(tmp_path, "a")
    assert good.returncode == 0, good.stderr
