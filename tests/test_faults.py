"""Fault injection: runs killed with SIGKILL at every phase (encoding, between shards, inside a
shard write, scoring, inside a result write, one rank under torchrun), and damaged files on
disk. After each kill no finished-looking file is partial, a rerun recomputes no finished shard
or result, and the final results equal an uninterrupted run.

Runs are children of a fork server that imported the harness once (no torch work before the
fork), so a trial costs the run itself, not an interpreter start.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_scale import assert_same_results, torchrun

from harness.faults import POINTS

TESTS = Path(__file__).parent
CONTEXT = multiprocessing.get_context("forkserver")
CONTEXT.set_forkserver_preload(["torch", "harness.cli", "harness.evaluation", "toy_tasks"])
# How often an uninterrupted run reaches each point (batch size 2, shards of 4 items, two tasks
# of 52 and 32 unique items, three budgets); kills are drawn at most this far in.
REACHED = {"encode-batch": 43, "shard-write": 22, "shard-saved": 22, "score": 6, "result-write": 2}
SEED, TRIALS = 20261128, 24


def _child(argv: list[str], env: dict[str, str], log: str) -> None:
    os.environ.clear()
    os.environ.update(env)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(out, 1)
    os.dup2(out, 2)
    from harness.cli import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def harness_run(root: Path, fault: str | None = None) -> int:
    """`python -m harness run` on the toy tasks in a child process; its exit code (-9: killed)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("HARNESS_FAULT", None)
    if fault:
        env["HARNESS_FAULT"] = fault
    argv = ["run", "--model", "test-hash", "--tasks", "toy_tasks:TASKS"]
    argv += ["--budgets", "1x1,4x8,16x64", "--batch-size", "2", "--shard-size", "4"]
    argv += ["--output", str(root / "out"), "--cache-dir", str(root / "cache")]
    argv += ["--data-dir", str(root / "data"), "--no-progress", "--trec-runs"]
    child = CONTEXT.Process(target=_child, args=(argv, env, str(root / "log.txt")))
    child.start()
    child.join(300)
    return child.exitcode


def finished_files(root: Path) -> dict[Path, tuple[int, int]]:
    """Every result and cache shard under their final names, each checked whole, with the
    (inode, mtime) that shows whether a later run rewrote it."""
    out = {}
    for path in sorted((root / "out").glob("*/*.json")):
        record = json.loads(path.read_text())  # a partial file would not parse
        assert isinstance(record["budgets"], list) and record["budgets"], path
        out[path] = (path.stat().st_ino, path.stat().st_mtime_ns)
    for path in sorted((root / "cache").glob("embeddings/*/*/[0-9]*.safetensors")):
        tensors = load_file(path)  # refuses a truncated file
        start, stop, _ = path.name.split("-")
        assert tensors["vectors"].shape[0] == tensors["lengths"].shape[0] == int(stop) - int(start)
        out[path] = (path.stat().st_ino, path.stat().st_mtime_ns)
    return out


def schedule() -> list[list[tuple[str, int]]]:
    """Each trial: a kill at a random point and depth; in a third of them the resumed run is
    killed again, while it scores or writes (a task is always left unfinished by the first
    kill, so its three budgets are scored again). The first trials take every point once."""
    rng = random.Random(SEED)
    trials = [[(point, rng.randint(1, REACHED[point]))] for point in POINTS]
    while len(trials) < TRIALS:
        point = rng.choice(POINTS)
        trial = [(point, rng.randint(1, REACHED[point]))]
        if rng.random() < 1 / 3:
            trial.append(rng.choice([("score", rng.randint(1, 3)), ("result-write", 1)]))
        trials.append(trial)
    return trials


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    assert harness_run(root) == 0, (root / "log.txt").read_text()
    return root


@pytest.mark.parametrize("kills", schedule(), ids=lambda k: "+".join(f"{p}:{n}" for p, n in k))
def test_sigkill_at_any_point_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path, kills):
    kept: dict[Path, tuple[int, int]] = {}
    for point, n in kills:
        code = harness_run(tmp_path, f"{point}:{n}")
        log = (tmp_path / "log.txt").read_text()
        assert code == -signal.SIGKILL, f"not killed at {point}:{n} (exit {code}): {log[-2000:]}"
        survivors = finished_files(tmp_path)
        for path, stamp in kept.items():  # what the earlier kill left is still there, untouched
            assert survivors.get(path) == stamp, f"{path} was rewritten by a resumed run"
        kept = survivors
    assert harness_run(tmp_path) == 0, (tmp_path / "log.txt").read_text()[-2000:]
    final = finished_files(tmp_path)
    for path, stamp in kept.items():
        assert final.get(path) == stamp, f"{path} was recomputed although it was finished"
    for task in ("toy-corpus", "toy-lists"):
        assert_same_results(uninterrupted, tmp_path, task)


def test_a_killed_rank_under_torchrun_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path):
    args = ["--model", "test-hash", "--tasks", "toy_tasks:TASKS", "--budgets", "1x1,4x8,16x64"]
    args += ["--batch-size", "2", "--shard-size", "4", "--output", str(tmp_path / "out")]
    args += ["--cache-dir", str(tmp_path / "cache"), "--data-dir", str(tmp_path / "data")]
    args += ["--no-progress", "--trec-runs"]
    killed = torchrun(
        2, *args, env_extra={"HARNESS_FAULT": "shard-saved:3", "HARNESS_FAULT_RANK": "1"}
    )
    assert killed.returncode != 0
    assert "Signals.SIGKILL" in killed.stderr or "-9" in killed.stderr, killed.stderr[-2000:]
    kept = finished_files(tmp_path)
    assert any(p.suffix == ".safetensors" for p in kept)  # shards of both ranks survived
    assert not any(p.suffix == ".json" for p in kept)
    resumed = torchrun(2, *args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = finished_files(tmp_path)
    for path, stamp in kept.items():
        assert final.get(path) == stamp, f"{path} was recomputed although it was finished"
    for task in ("toy-corpus", "toy-lists"):
        assert_same_results(uninterrupted, tmp_path, task)


def test_truncated_shard_and_result_are_named_and_recomputed(uninterrupted, tmp_path):
    assert harness_run(tmp_path) == 0
    shard = sorted((tmp_path / "cache").glob("embeddings/*/*/[0-9]*.safetensors"))[3]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    result = tmp_path / "out" / "test-hash" / "toy-lists.json"
    result.write_text(result.read_text()[:100])
    # Both tasks run again (one result damaged, one removed), so every shard is read.
    (tmp_path / "out" / "test-hash" / "toy-corpus.json").unlink()
    (tmp_path / "log.txt").unlink()
    assert harness_run(tmp_path) == 0
    log = (tmp_path / "log.txt").read_text()
    assert f"cache shard {shard} is damaged" in log
    assert f"{result} is not a readable result file" in log
    finished_files(tmp_path)  # every file whole again
    for task in ("toy-corpus", "toy-lists"):
        assert_same_results(uninterrupted, tmp_path, task)
