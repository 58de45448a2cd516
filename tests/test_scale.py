"""Scale-out: data-parallel encoding under torchrun (gloo, two processes on 127.0.0.1), resume
across world sizes after a rank dies, out-of-core scoring from cache shards, the FAISS backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toy_tasks import CORPUS, TASKS

import harness
from harness.cache import ShardedVectors
from harness.config import RunConfig
from harness.errors import UsageError
from harness.evaluation import run
from harness.index import recall_against_exact
from harness.multivectors import MultiVectors
from harness.scoring import score_corpus
from harness.testing import HashEncoder

TESTS = Path(__file__).parent


def torchrun(nproc: int, *args: str, env_extra: dict[str, str] | None = None):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "HARNESS_DIST_TIMEOUT": "120",
    }
    env.update(env_extra or {})
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "harness",
        "run",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def cli_args(root: Path, *extra: str) -> list[str]:
    return [
        "--budgets",
        "1x1,4x8,16x64",
        "--output",
        str(root / "out"),
        "--cache-dir",
        str(root / "cache"),
        "--data-dir",
        str(root / "data"),
        "--no-progress",
        "--trec-runs",
        *extra,
    ]


def run_single(root: Path, tasks, model="test-hash", **options) -> list[dict]:
    config = RunConfig(
        models=[],
        tasks=[],
        budgets=["1x1", "4x8", "16x64"],
        output=str(root / "out"),
        cache_dir=str(root / "cache"),
        data_dir=str(root / "data"),
        progress=False,
        trec_runs=True,
        **options,
    )
    return run(config, models=[model], tasks=tasks)


def read(root: Path, task: str) -> dict:
    return json.loads((root / "out" / "test-hash" / f"{task}.json").read_text())


def trec(root: Path, task: str, budget: str) -> list[tuple[str, str, int, float]]:
    path = root / "out" / "test-hash" / "runs" / f"{task}.{budget}.trec"
    rows = []
    for line in path.read_text().splitlines():
        qid, _, doc, rank, score, _ = line.split()
        rows.append((qid, doc, int(rank), float(score)))
    return rows


def assert_same_results(a: Path, b: Path, task: str) -> None:
    ra, rb = read(a, task), read(b, task)
    assert [x["label"] for x in ra["budgets"]] == [x["label"] for x in rb["budgets"]]
    for x, y in zip(ra["budgets"], rb["budgets"], strict=True):
        assert x["metrics"] == y["metrics"], x["label"]
        assert x["per_query"] == y["per_query"], x["label"]
    if ra["task"]["name"] == "toy-corpus":
        for budget in ("1x1", "4x8", "16x64"):
            ta, tb = trec(a, task, budget), trec(b, task, budget)
            assert [r[:3] for r in ta] == [r[:3] for r in tb]  # same ids at the same ranks
            assert [r[3] for r in ta] == pytest.approx([r[3] for r in tb], abs=1e-5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process run every distributed and out-of-core run must reproduce."""
    root = tmp_path_factory.mktemp("reference")
    run_single(root, TASKS, shard_size=7)
    return root


def shard_items(cache: Path, role: str) -> int:
    """Items held by finished shard files of one role (from their `start-stop-digest` names)."""
    total = 0
    for key in cache.glob("embeddings/*/*/key.json"):
        if json.loads(key.read_text())["role"] != role:
            continue
        for shard in key.parent.glob("[0-9]*.safetensors"):
            start, stop, _ = shard.name.split("-")
            total += int(stop) - int(start)
    return total


@pytest.mark.parametrize(
    ("shard_size", "tasks"),
    [("7", "toy_tasks:TASKS"), ("1000", "toy_tasks:CORPUS")],
    ids=["uneven-shards", "empty-rank"],
)
@pytest.mark.slow
def test_world_size_two_equals_world_size_one(reference, tmp_path, shard_size, tasks):
    # 40 unique pages in shards of 7: six shards, split 3 + 3 with a short last one; the
    # queries' two shards go one per rank. With shards of 1000 rank 1 has nothing to encode.
    result = torchrun(
        2, "--model", "test-hash", "--tasks", tasks, *cli_args(tmp_path, "--shard-size", shard_size)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("| test-hash @ 16x64 |") == 1  # only rank 0 prints
    names = ["toy-corpus", "toy-lists"] if tasks.endswith("TASKS") else ["toy-corpus"]
    for task in names:
        assert_same_results(reference, tmp_path, task)
        record = read(tmp_path, task)
        assert record["encode"]["world_size"] == 2
        assert record["encode"]["items_encoded"] == read(reference, task)["encode"]["items_encoded"]
        per_rank = record["encode"]["items_encoded_per_rank"]
        assert sum(per_rank) == record["encode"]["items_encoded"]
        if shard_size == "1000":
            assert per_rank[1] == 0  # one shard per role: rank 1 only waits
        else:
            assert min(per_rank) > 0


@pytest.mark.slow
def test_a_rank_that_dies_leaves_whole_shards_and_world_size_one_finishes(
    reference, tmp_path, monkeypatch
):
    crashed = torchrun(
        2,
        "--model",
        "toy_models:DyingEncoder",
        "--tasks",
        "toy_tasks:CORPUS",
        *cli_args(tmp_path, "--shard-size", "7"),
        env_extra={"HARNESS_TEST_DIE_RANK": "1"},
    )
    assert crashed.returncode != 0
    assert "simulated crash of this rank" in crashed.stderr
    assert not (tmp_path / "out" / "test-hash" / "toy-corpus.json").exists()
    shards = list((tmp_path / "cache").glob("embeddings/*/*/[0-9]*.safetensors"))
    for shard in shards:  # every finished-looking shard is whole
        tensors = load_file(shard)
        start, stop, _ = shard.name.split("-")
        assert tensors["vectors"].shape[0] == tensors["lengths"].shape[0] == int(stop) - int(start)
    cached = shard_items(tmp_path / "cache", "query") + shard_items(tmp_path / "cache", "candidate")
    assert shard_items(tmp_path / "cache", "query") == 12  # the query shards finished
    assert shard_items(tmp_path / "cache", "candidate") >= 7  # rank 1's first shard survived

    # The same encoder code resumes (the cache is keyed by code), with no rank set to die.
    monkeypatch.setenv("HARNESS_TEST_DIE_RANK", "never")
    [record] = run_single(tmp_path, [CORPUS], model="toy_models:DyingEncoder", shard_size=7)
    assert record["encode"]["world_size"] == 1
    assert record["encode"]["items_from_cache"] == cached
    assert record["encode"]["items_encoded"] == 12 + 40 - cached  # unique queries and pages
    assert_same_results(reference, tmp_path, "toy-corpus")


@pytest.mark.slow
def test_distributed_run_refuses_no_cache(tmp_path):
    result = torchrun(
        2, "--model", "test-hash", "--tasks", "toy_tasks:CORPUS", "--no-cache", "--no-progress"
    )
    assert result.returncode != 0
    assert "error: a distributed run exchanges embeddings through the cache" in result.stderr


# ---------------------------------------------------------------- out-of-core scoring


@pytest.mark.slow
def test_out_of_core_run_under_a_tiny_memory_limit_equals_the_in_memory_run(reference, tmp_path):
    [record] = run_single(tmp_path, [CORPUS], shard_size=5, memory_limit=1000)
    assert all(b["cost"]["candidates_out_of_core"] for b in record["budgets"])
    assert not any(
        b["cost"]["candidates_out_of_core"] for b in read(reference, "toy-corpus")["budgets"]
    )
    assert_same_results(reference, tmp_path, "toy-corpus")


def naive_top(queries: MultiVectors, corpus: MultiVectors, k: int):
    """Exact top-k by a double loop over pairs, ties to the lower index."""
    rows = []
    for i in range(len(queries)):
        scored = []
        for j in range(len(corpus)):
            total = 0.0
            for a in range(int(queries.lengths[i])):
                total += max(
                    float(queries.vectors[i, a] @ corpus.vectors[j, b])
                    for b in range(int(corpus.lengths[j]))
                )
            scored.append((-total, j))
        rows.append([j for _, j in sorted(scored)[:k]])
    return rows


def grid_vectors(n: int, t: int, d: int, seed: int) -> MultiVectors:
    """Ragged vectors with entries in quarters, so every dot product is exact in float32 and
    equal scores are bit-identical wherever they are computed: real ties."""
    g = torch.Generator().manual_seed(seed)
    vectors = torch.randint(-2, 3, (n, t, d), generator=g).float() / 4
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    vectors *= (torch.arange(t)[None, :] < lengths[:, None]).unsqueeze(-1)
    return MultiVectors(vectors, lengths)


def test_sharded_vectors_score_exactly_with_ties_across_shards(tmp_path):
    from safetensors.torch import save_file

    from harness.cache import Shard

    queries = grid_vectors(5, 3, 4, seed=1)
    corpus = grid_vectors(23, 4, 4, seed=2)
    corpus = MultiVectors.cat([corpus, corpus.slice(2, 3)])  # a copy of row 2 in the last shard
    shards = []
    for start in range(0, 24, 5):  # shards of 5, the last one short
        stop = min(24, start + 5)
        path = tmp_path / f"{start:09d}-{stop:09d}-x.safetensors"
        part = corpus.slice(start, stop)
        save_file({"vectors": part.vectors.contiguous(), "lengths": part.lengths}, path)
        shards.append(Shard(start, stop, path))
    on_disk = ShardedVectors(shards)
    assert len(on_disk) == 24 and on_disk.nbytes == corpus.nbytes
    expected = naive_top(queries, corpus, 24)
    # Blocks of 3 candidates, smaller than a shard: blocks and shards both split the corpus.
    scores, index = score_corpus(queries, on_disk, k=24, block_bytes=3 * 4 * 4 * 3)
    assert index.tolist() == expected
    dense, dense_index = score_corpus(queries, corpus, k=24)
    assert torch.equal(index, dense_index) and torch.equal(scores, dense)
    # A transform (an encoder's `reduce`) is applied block by block as shards are read.
    halve = lambda mv: MultiVectors(mv.vectors[:, :2], mv.lengths.clamp(max=2))  # noqa: E731
    reduced = ShardedVectors(shards, transform=halve)
    assert reduced.lengths.tolist() == corpus.lengths.clamp(max=2).tolist()
    _, index = score_corpus(queries, reduced, k=5, block_bytes=2 * 3 * 4 * 3)
    assert index.tolist() == [row[:5] for row in naive_top(queries, halve(corpus), 5)]
    # Blocks larger than a shard span several shards, read slice by slice into one block.
    for size, r in ((7, None), (12, 2), (24, 3), (100, None)):
        blocks = list(on_disk.chunks(size, r))
        assert [o for o, _ in blocks] == list(range(0, 24, size))
        assert all(len(mv) == min(size, 24 - o) for o, mv in blocks)
        joined = MultiVectors.cat([mv for _, mv in blocks])
        width = corpus.max_len if r is None else r
        assert torch.equal(joined.vectors, corpus.vectors[:, :width])
        assert torch.equal(joined.lengths, corpus.lengths.clamp(max=width))
    scores, index = score_corpus(queries, on_disk, k=24, block_bytes=10 * 4 * 4 * 3 * 8)
    assert index.tolist() == expected and torch.equal(scores, dense)


# ---------------------------------------------------------------- FAISS backend


def single_vector_encoder() -> HashEncoder:
    return HashEncoder(query_vectors=1, candidate_vectors=1)


def test_faiss_flat_index_matches_exact_search_and_reports_recall(tmp_path):
    pytest.importorskip("faiss")
    options = dict(output=str(tmp_path / "exact"), data_dir=str(tmp_path / "data"), progress=False)
    [exact] = harness.evaluate(single_vector_encoder(), CORPUS, budgets="1x1", **options)
    options["output"] = str(tmp_path / "flat")
    [flat] = harness.evaluate(
        single_vector_encoder(), CORPUS, budgets="1x1", index="faiss:Flat", **options
    )
    row = flat["budgets"][0]
    assert row["index"]["backend"] == "faiss:Flat"
    assert row["index"]["recall_at_10"] == 1.0 and row["index"]["recall_at_100"] == 1.0
    assert row["metrics"] == pytest.approx(exact["budgets"][0]["metrics"], abs=1e-6)
    assert exact["budgets"][0]["index"] == {"backend": "exact"}


def test_approximate_faiss_index_reports_recall_below_one(tmp_path):
    pytest.importorskip("faiss")
    [record] = harness.evaluate(
        single_vector_encoder(),
        CORPUS,
        budgets="1x1",
        index="faiss:IVF8,Flat|nprobe=1",
        output=str(tmp_path / "ivf"),
        data_dir=str(tmp_path / "data"),
        progress=False,
    )
    info = record["budgets"][0]["index"]
    # One of eight inverted lists searched over 40 pages cannot hold every query's top 100
    # (all 40 pages).
    assert 0.0 < info["recall_at_100"] < 1.0
    assert 0.0 <= info["recall_at_1"] <= 1.0 and info["exact_scoring_ms_per_query"] > 0


def test_multi_vector_budgets_fall_back_to_exact_search_with_a_note(tmp_path):
    pytest.importorskip("faiss")
    [record] = harness.evaluate(
        "test-hash",
        CORPUS,
        budgets="1x1,16x64",
        index="faiss:Flat",
        output=str(tmp_path / "out"),
        data_dir=str(tmp_path / "data"),
        progress=False,
    )
    one, sixteen = record["budgets"]
    assert one["index"]["backend"] == "faiss:Flat" and one["index"]["recall_at_10"] == 1.0
    assert sixteen["index"]["backend"] == "exact" and "scored exactly" in sixteen["index"]["note"]


def test_recall_against_exact_by_hand():
    approx = torch.tensor([[3, 1, 7], [0, -1, -1]])
    exact = torch.tensor([[1, 3, 2], [0, 5, 6]])
    # cutoff 1: {3}∩{1}=0, {0}∩{0}=1 -> 1/2; cutoff 3: 2 + 1 = 3 of 6
    assert recall_against_exact(approx, exact, (1, 3)) == {"recall_at_1": 0.5, "recall_at_3": 0.5}


def test_unknown_index_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="unknown --index 'annoy'"):
        harness.evaluate("test-hash", CORPUS, index="annoy", output=str(tmp_path), progress=False)


def test_bfloat16_scoring_ranks_nearly_as_float32(reference, tmp_path):
    [record] = run_single(tmp_path, [CORPUS], shard_size=7, score_dtype="bfloat16")
    assert record["config"]["score_dtype"] == "bfloat16"
    exact = read(reference, "toy-corpus")
    for fast, slow in zip(record["budgets"], exact["budgets"], strict=True):
        # Rounded similarities may swap near-ties, but not move the main score by much.
        assert fast["main_score"] == pytest.approx(slow["main_score"], abs=0.1)
    ta, tb = trec(reference, "toy-corpus", "16x64"), trec(tmp_path, "toy-corpus", "16x64")
    assert [r[3] for r in ta] != [r[3] for r in tb]  # the scores really were computed in bf16
    assert [r[3] for r in sorted(ta)] == pytest.approx([r[3] for r in sorted(tb)], abs=0.1)
