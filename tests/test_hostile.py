"""Hostile but realistic input across the verbs: nothing of the user's is lost, nothing invalid
is passed through as a number, and every refusal is one line with exit code 2 (usage) or 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli import TESTS, base_args, cli

RUN = ["run", "--model", "test-hash", "--tasks", "toy_tasks:CORPUS"]


def one_line_error(result, code: int, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, (result.returncode, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def train_args(tmp_path: Path, output: Path, *extra: str) -> list[str]:
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"query": f"q{i} word{i}", "positive": f"page {i} word{i}"}) + "\n"
            for i in range(8)
        )
    )
    return [
        "train",
        "--model",
        "metaembed-mini",
        "--model-args",
        "ocr=none",
        "--data",
        f"jsonl:{data}",
        "--output",
        str(output),
        "--steps",
        "2",
        "--batch-size",
        "4",
        "--tune",
        "frozen",
        "--no-progress",
        *extra,
    ]


@pytest.mark.parametrize(
    "layout, fragment",
    [
        ({"notes.txt": "mine"}, "already holds notes.txt and is not a checkpoint"),
        (
            {"train_config.json": "{}", "state/results.csv": "a,b\n"},
            "also holds state/results.csv",
        ),
        ({"train_config.json": "{}", "paper.pdf": "%PDF"}, "also holds paper.pdf"),
    ],
)
def test_train_refuses_an_output_folder_holding_other_files(tmp_path, layout, fragment):
    output = tmp_path / "ckpt"
    for name, text in layout.items():
        (output / name).parent.mkdir(parents=True, exist_ok=True)
        (output / name).write_text(text)
    result = cli(*train_args(tmp_path, output))
    one_line_error(result, 2, fragment)
    for name, text in layout.items():  # untouched
        assert (output / name).read_text() == text
    assert sorted(
        p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file()
    ) == sorted(layout)


def test_train_resumes_its_own_interrupted_run_but_not_with_other_settings(tmp_path):
    output = tmp_path / "ckpt"
    first = cli(*train_args(tmp_path, output, "--run-steps", "1", "--save-every", "1"))
    assert first.returncode == 0, first.stderr
    changed = cli(*train_args(tmp_path, output, "--lr", "1e-3"))
    one_line_error(changed, 2, "lr 0.0002 -> 0.001", "--no-resume")
    again = cli(*train_args(tmp_path, output))
    assert again.returncode == 0, again.stderr
    steps = [
        json.loads(line)["step"] for line in (output / "train_log.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2]


@pytest.mark.parametrize(
    "setting, fragment",
    [
        ('overwrite = "false"', "overwrite (--overwrite) in"),
        ('no_cache = "yes"', "must be true or false, got 'yes'"),
        ('batch_size = "x"', "must be a whole number, got 'x'"),
        ("models = 3", "must be a list of names"),
        ('top_k = "10"', "top_k (--top-k)"),
        ("limit = 0", "must be at least 1, got 0"),
        ('device = "gpu"', "must be one of auto, cpu, cuda"),
        ("block_bytes = 0", "block_bytes in"),
    ],
)
def test_run_config_files_are_checked_by_type_and_range_before_anything_runs(
    tmp_path, setting, fragment
):
    first = cli(*RUN, *base_args(tmp_path))
    assert first.returncode == 0, first.stderr
    result_file = tmp_path / "out" / "test-hash" / "toy-corpus.json"
    before = result_file.read_bytes(), result_file.stat().st_mtime_ns
    config = tmp_path / "settings.toml"
    config.write_text(setting + "\n")
    result = cli(*RUN, *base_args(tmp_path), "--config", str(config))
    one_line_error(result, 2, fragment)
    assert (result_file.read_bytes(), result_file.stat().st_mtime_ns) == before


@pytest.mark.parametrize(
    "flags, fragment",
    [
        (["--lr=-1e-4"], "--lr must be greater than 0, got -0.0001"),
        (["--temperature", "0"], "--temperature must be greater than 0"),
        (["--warmup=-1"], "--warmup must be at least 0"),
    ],
)
def test_train_settings_out_of_range_stop_before_loading_anything(tmp_path, flags, fragment):
    result = cli(*train_args(tmp_path, tmp_path / "ckpt", *flags))
    one_line_error(result, 2, fragment)
    assert not (tmp_path / "ckpt").exists()


def test_one_training_example_without_a_negative_is_refused(tmp_path):
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"query": "a", "positive": "b"}) + "\n")
    args = train_args(tmp_path, tmp_path / "ckpt")
    args[args.index("--data") + 1] = f"jsonl:{data}"
    one_line_error(cli(*args), 1, "the loss needs at least two examples")


def test_a_mixture_weight_that_is_not_a_positive_number_is_refused(tmp_path):
    args = train_args(tmp_path, tmp_path / "ckpt")
    args[args.index("--data") + 1] = "libdocs:8@nan,libdocs:4@1"
    one_line_error(cli(*args), 2, "mixture weight of 'libdocs:8' must be a positive number")


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([*RUN, "--limit", "0"], "argument --limit: expected a positive integer, got '0'"),
        ([*RUN, "--batch-size", "0"], "--batch-size"),
        ([*RUN, "--memory-limit", "abc"], "expected a size such as 512MiB"),
        (["run", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["report", "table", "--format", "doc"], "invalid choice: 'doc'"),
        (["train", "--lr"], "expected one argument"),
    ],
)
def test_argument_errors_are_one_line_with_the_help_hint(args, fragment):
    result = cli(*args)
    one_line_error(result, 2, fragment, "--help`)")


def test_concurrent_runs_with_other_budgets_keep_both_rows(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "harness", *RUN, "--budgets", budget, *base_args(tmp_path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for budget in ("1x1", "16x64", "4x8")
    ]
    for process in runs:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    record = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert [b["label"] for b in record["budgets"]] == ["1x1", "4x8", "16x64"]


def test_report_match_against_a_missing_or_empty_reference_fails(tmp_path):
    assert cli(*RUN, *base_args(tmp_path)).returncode == 0
    missing = cli("report", "match", str(tmp_path / "nowhere"), "--results", str(tmp_path / "out"))
    one_line_error(missing, 1, "is not a folder of result files")
    (tmp_path / "empty").mkdir()
    empty = cli("report", "match", str(tmp_path / "empty"), "--results", str(tmp_path / "out"))
    one_line_error(empty, 1, "no valid result files under reference")


@pytest.mark.parametrize("bad", [float("nan"), None, "0.5", 1.7])
def test_a_result_with_an_invalid_score_is_never_shown_and_never_overwritten(tmp_path, bad):
    assert cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)).returncode == 0
    path = tmp_path / "out" / "test-hash" / "toy-corpus.json"
    record = json.loads(path.read_text())
    good = record["budgets"][0]["main_score"]
    record["budgets"][0]["main_score"] = bad
    text = json.dumps(record)  # NaN written as the bare token some tools emit
    path.write_text(text)
    table = cli("report", "table", "--results", str(tmp_path / "out"))
    assert table.returncode == 1 and "nan" not in table.stdout.lower()
    assert f"skipped {path}" in table.stderr and "main_score" in table.stderr
    rerun = cli(*RUN, "--budgets", "1x1", *base_args(tmp_path))
    assert rerun.returncode == 0, rerun.stderr
    aside = path.with_name(path.name + ".unreadable")
    assert aside.read_text() == text  # the user's file, kept as it was
    assert json.loads(path.read_text())["budgets"][0]["main_score"] == good


def test_bad_training_data_and_groups_are_named_before_the_model_loads(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "positive": "b"}\n{"query": "c", "positive": 3}\n{oops\n')
    args = train_args(tmp_path, tmp_path / "ckpt")
    args[args.index("--data") + 1] = f"jsonl:{bad}"
    one_line_error(cli(*args), 1, f"{bad}:2: 'positive' must be a string")
    bad.write_text('{"query": "a", "positive": "b"}\n{oops\n')
    one_line_error(cli(*args), 1, f"{bad}:2 is not valid JSON")
    groups = cli(*train_args(tmp_path, tmp_path / "ckpt2", "--groups", "4x8,2x16"))
    one_line_error(groups, 2, "strictly increasing")


@pytest.mark.parametrize(
    "task, code, fragment",
    [
        ("bad_tasks:EMPTY_CORPUS", 1, "has no candidates (an empty corpus)"),
        ("bad_tasks:NO_QRELS", 1, "has no relevance judgements for its queries"),
        ("bad_tasks:MISMATCHED", 1, "the ids of qrels and corpus do not match"),
        ("bad_tasks:RAISES", 1, "its loader bad_tasks:raises failed: KeyError: 'missing key'"),
        ("bad_tasks:FLOAT_GAIN", 1, "judges 'd' with gain nan; relevance gains are whole"),
        ("bad_tasks:NO_CONTENT", 1, "candidate 'd' has neither text nor image"),
        ("bad_tasks:LONE_SURROGATE", 1, "has a text that is not valid Unicode"),
        ("bad_tasks:STRANGER_GROUP", 1, "query group 'english' names unknown query 'nobody'"),
        ("bad_tasks:POSITIVE_NOT_FIRST", 1, "the positive goes first in a candidate list"),
        ("bad_tasks:UNIMPORTABLE", 1, "its loader 'nomodule:nofunction' cannot be imported"),
        ("bad_tasks:CLASH", 2, "tasks 'a/b' and 'a:b' would write the same result file"),
    ],
)
def test_bad_task_data_stops_the_run_before_the_model_loads(tmp_path, task, code, fragment):
    # metaembed-mini would take seconds to load: the error comes first, with no result written
    result = cli("run", "--model", "metaembed-mini", "--tasks", task, *base_args(tmp_path))
    one_line_error(result, code, fragment)
    assert "Loading weights" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_faiss_index_faiss_cannot_build_stops_the_run_before_anything_loads(tmp_path):
    result = cli(*RUN, "--index", "faiss:garbage", *base_args(tmp_path))
    one_line_error(result, 2, "faiss cannot build index 'garbage': could not parse index string")
    params = cli(*RUN, "--index", "faiss:HNSW32|bogus=3", *base_args(tmp_path))
    one_line_error(params, 2, "faiss rejects search parameters 'bogus=3'")
    hnsw = cli(*RUN, "--index", "faiss:HNSW0", *base_args(tmp_path))  # faiss itself would abort
    one_line_error(hnsw, 2, "HNSW needs at least 2 neighbours per node")


def test_a_cached_shard_with_nan_is_discarded_and_encoded_again(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    assert cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)).returncode == 0
    shard = sorted((tmp_path / "cache").glob("embeddings/*/*/[0-9]*.safetensors"))[0]
    tensors = load_file(str(shard))
    tensors["vectors"][0, 0, 0] = float("nan")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(shard))
    (tmp_path / "out").rename(tmp_path / "first")
    again = cli(*RUN, "--budgets", "1x1", *base_args(tmp_path))
    assert again.returncode == 0, again.stderr
    assert f"cache shard {shard} is damaged (1 of its" in again.stderr
    assert bool(torch.isfinite(load_file(str(shard))["vectors"]).all())
    first = json.loads((tmp_path / "first" / "test-hash" / "toy-corpus.json").read_text())
    second = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert first["budgets"][0]["metrics"] == second["budgets"][0]["metrics"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        (None, "cannot read claims file"),
        ("[[claims]\nid = 1", "is not valid TOML"),
        ('tasks = ["toy-corpus"]\n', "has no [[claims]] tables"),
        ('[[claims]]\nid = "a"\n', "claim 1 needs `id` and `comparisons`"),
        ('[[claims]]\nid = "a"\ntasks = ["toy-corpus"]\ncomparisons = [["x"]]\n', "each is [a, b]"),
        (
            '[systems]\nm = []\n[[claims]]\nid = "a"\ntasks = ["t"]\ncomparisons = [["m @ 1x1", "m @ 1x1"]]\n',
            "system 'm' is []; give it one or more model names",
        ),  # fmt: skip
        ('[[claims]]\nid = "a"\ntasks = ["t"]\ncomparisons = []\n', "claim 'a' has no comparisons"),
        (
            '[systems]\nm = ["x", "x"]\n[[claims]]\nid = "a"\ntasks = ["t"]\ncomparisons = [["m @ 1x1", "m @ 1x1"]]\n',
            "system 'm' lists a model twice",
        ),  # fmt: skip
        (
            'txt = 1\n[[claims]]\nid = "a"\ntasks = ["t"]\ncomparisons = [["m @ 1x1", "m @ 1x1"]]\n',
            "unknown key 'txt'",
        ),  # fmt: skip
    ],
)
def test_a_bad_claims_file_is_one_line(tmp_path, text, fragment):
    assert cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)).returncode == 0
    path = tmp_path / "claims.toml"
    if text is not None:
        path.write_text(text)
    result = cli("report", "claims", str(path), "--results", str(tmp_path / "out"))
    one_line_error(result, 2, fragment)


def test_claims_on_a_limited_run_say_why_it_is_left_out(tmp_path):
    assert cli(*RUN, "--budgets", "1x1", "--limit", "3", *base_args(tmp_path)).returncode == 0
    path = tmp_path / "claims.toml"
    path.write_text(
        '[systems]\nhash = "test-hash"\n[[claims]]\nid = "a"\ntasks = ["toy-corpus"]\n'
        'comparisons = [["hash @ 1x1", "hash @ 1x1"]]\n'
    )
    result = cli("report", "claims", str(path), "--results", str(tmp_path / "out"))
    one_line_error(result, 2, "is a partial result (", "run it on the whole task (no --limit)")


def test_trec_run_files_stay_valid_whatever_the_ids(tmp_path):
    from urllib.parse import unquote

    from harness.pipeline.record import trec_id

    for raw in ["plain", "two words", "tab\there", "100%", "new\nline", ""]:
        field = trec_id(raw)
        assert field and not any(ch.isspace() for ch in field)
        assert unquote(field) == (raw or "\x00")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission")
def test_a_cache_folder_that_is_not_writable_is_one_line(tmp_path):
    cache = tmp_path / "cache" / "embeddings"
    cache.mkdir(parents=True)
    cache.chmod(0o500)
    try:
        result = cli(*RUN, *base_args(tmp_path))
    finally:
        cache.chmod(0o700)
    one_line_error(result, 1, "cannot write to the cache folder")


def test_the_default_models_run_quietly(tmp_path):
    """No library warning, deprecation notice or load report reaches stderr without -v."""
    result = cli(
        "run",
        "--model",
        "metaembed-mini,single-mean,colbert",
        "--tasks",
        "toy_tasks:CORPUS",
        "--limit",
        "3",
        *base_args(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    verbose = cli("run", "-v", "--model", "single-mean", "--tasks", "toy_tasks:CORPUS",
                  "--limit", "3", "--overwrite", *base_args(tmp_path))  # fmt: skip
    assert verbose.returncode == 0 and "INFO" in verbose.stderr


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda r: r["budgets"][0]["per_query"].update(q0=float("nan")), "per-query score"),
        (lambda r: r["budgets"].append(dict(r["budgets"][0])), "has two rows for budget"),
        (lambda r: r["budgets"][0].update(label="1x1 | evil\nrow"), "cannot parse"),
        (
            lambda r: r["budgets"][0]["cost"].update(index_bytes_per_candidate=-128),
            "not a number >= 0",
        ),
        (lambda r: r["budgets"][0].update(main_score=10**400), "not a number in [0, 1]"),
        (lambda r: r["budgets"][0].update(main_score=0.99), "they must be equal"),
        (lambda r: r["task"].update(name=7), "task name 7 that is not a string"),
        (lambda r: r["task"].update(n_queries=-3), "n_queries = -3 (not a count)"),
        (lambda r: r["task"]["size_check"].update(official_size="no"), "(not true or false)"),
    ],
)
def test_invalid_values_in_a_result_file_are_named_and_never_shown(tmp_path, edit, fragment):
    assert cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)).returncode == 0
    path = tmp_path / "out" / "test-hash" / "toy-corpus.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    for verb in (["table", "--ci"], ["html", "--output", str(tmp_path / "p.html")]):
        result = cli("report", *verb, "--results", str(tmp_path / "out"))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"skipped {path}" in result.stderr and fragment in result.stderr


def test_markdown_tables_keep_their_shape_whatever_the_names():
    from harness.reporting.report import render

    text = render(["model @ budget", "t|x"], [["a|b\nc @ 1x1", "1.00"]], "md")
    assert [line.count(" | ") for line in text.splitlines() if line.startswith("| ")] == [1, 1]
    assert "a\\|b c @ 1x1" in text


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([*RUN, "--output", ""], "--output is empty"),
        (["report", "table", "--results", ""], "--results is empty"),
        (["report", "match", "x", "--tolerance", "-1"], "--tolerance must be a number in [0, 1]"),
        (["train", "--device", "tpu"], "invalid choice: 'tpu'"),
        ([*RUN, "--model-args", "dim=abc"], "--model-args dim= takes a whole number, got 'abc'"),
        ([*RUN, "--model-args", "dim=8,dim=16"], "--model-args gives dim= twice"),
        ([*RUN, "--model-args", "name="], "--model-args name= is empty"),
        (
            ["run", "--model", "os:sep", "--tasks", "toy_tasks:CORPUS"],
            "'os:sep' is not a model factory",
        ),
        (
            ["prefetch", "--tasks", "libdocs-quick", "--data-dir", __file__],
            "is a file; name a folder",
        ),
        (["train", "--output", ""], "--output is empty"),
        (["report", "import", "--from", ".", "--commit", "x", "--models", ""], "--models is empty"),
        ([*RUN, "--model-args", "nested=maybe"], "nested= takes true or false, got 'maybe'"),
        ([*RUN, "--model-args", "noise=x"], "noise= takes a number, got 'x'"),
        (
            [
                "run",
                "--model",
                "metaembed-mini",
                "--tasks",
                "toy_tasks:CORPUS",
                "--model-args",
                "max_length=-5",
            ],
            "--model-args max_length= must be at least 1, got -5",
        ),  # fmt: skip
        (
            [
                "run",
                "--model",
                "metaembed-mini",
                "--tasks",
                "toy_tasks:CORPUS",
                "--model-args",
                "query_tokens=2.5",
            ],
            "query_tokens= takes a whole number or none, got 2.5",
        ),  # fmt: skip
    ],
)
def test_empty_paths_and_bad_values_are_refused(tmp_path, args, fragment):
    one_line_error(cli(*args), 2, fragment)


def test_a_second_training_run_into_the_same_folder_stops(tmp_path):
    from harness.training.loop import _lock_output

    output = tmp_path / "ckpt"
    output.mkdir()
    held = _lock_output(output)  # as a first run holds it
    try:
        result = cli(*train_args(tmp_path, output))
    finally:
        held.close()
    one_line_error(result, 2, "another training run is writing to")


def test_a_stored_result_of_another_task_or_setting_is_never_taken_for_this_one(tmp_path):
    """A file at this task's path holding another task (names that map to one file name), or
    written with another --top-k or --index, is refused, never skipped as done or merged."""
    out = tmp_path / "out"
    assert cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)).returncode == 0
    (path,) = (out / "test-hash").glob("*.json")
    record = json.loads(path.read_text())
    record["task"]["name"] = "toy:corpus"
    path.write_text(json.dumps(record))
    one_line_error(
        cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)),
        2,
        "it holds the result of task 'toy:corpus', not 'toy-corpus'",
    )
    record["task"]["name"] = "toy-corpus"
    path.write_text(json.dumps(record))
    one_line_error(
        cli(*RUN, "--budgets", "2x4", "--top-k", "10", *base_args(tmp_path)),
        2,
        "--top-k 100 differs from 10",
    )
    one_line_error(
        cli(*RUN, "--budgets", "2x4", "--index", "faiss", *base_args(tmp_path)),
        2,
        "--index exact differs from faiss",
    )
    assert json.loads(path.read_text()) == record  # nothing rewritten


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        ([*RUN, "--model-args", "dim=0"], 2, "--model-args dim= must be at least 1, got 0"),
        ([*RUN, "--top-k", "3"], 2, "--top-k 3 is below the cutoff of the main metric"),
        (["run", "--model", "toy_models:broken_factory", "--tasks", "toy_tasks:CORPUS"], 1,
         "model 'toy_models:broken_factory' could not be built: ValueError: no such size"),
        (["run", "--model", "toy_models:BuggyEncoder", "--tasks", "toy_tasks:CORPUS"], 1,
         "RuntimeError: shape mismatch in my pooling"),
    ],
)  # fmt: skip
def test_models_that_fail_and_depths_too_small_are_one_line(tmp_path, args, code, fragment):
    one_line_error(cli(*args, *base_args(tmp_path)), code, fragment)


def test_a_limit_past_the_task_size_is_a_full_run(tmp_path):
    from harness.results import partial_reason

    assert cli(*RUN, "--budgets", "1x1", "--limit", "100000", *base_args(tmp_path)).returncode == 0
    (path,) = (tmp_path / "out" / "test-hash").glob("*.json")
    assert partial_reason(json.loads(path.read_text())) is None


def test_world_size_without_a_rendezvous_is_one_line(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}
    env.pop("MASTER_ADDR", None)
    env.pop("MASTER_PORT", None)
    result = subprocess.run(
        [sys.executable, "-m", "harness", *RUN, *base_args(tmp_path)],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])},
        timeout=300,
    )
    one_line_error(result, 2, "MASTER_ADDR and MASTER_PORT are not set; launch with torchrun")


def test_an_export_never_writes_outside_its_output_folder(tmp_path):
    assert cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)).returncode == 0
    path = tmp_path / "out" / "test-hash" / "toy-corpus.json"
    record = json.loads(path.read_text())
    record["task"]["name"] = "vidore-v1-docvqa"
    record["model"]["revision"] = "../../../escaped"
    path.write_text(json.dumps(record))
    export = tmp_path / "export"
    result = cli("report", "export", "--format", "mteb", "--results", str(tmp_path / "out"),
                 "--output", str(export), "--allow-partial")  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = [p for p in tmp_path.rglob("*.json") if "export" in p.parts]
    assert written and all(p.resolve().is_relative_to(export.resolve()) for p in written)
    assert not list(tmp_path.rglob("escaped"))


def test_a_match_with_part_of_the_reference_unreadable_fails(tmp_path):
    assert cli(*RUN, "--budgets", "1x1", *base_args(tmp_path)).returncode == 0
    reference = tmp_path / "reference"
    (reference / "test-hash").mkdir(parents=True)
    good = tmp_path / "out" / "test-hash" / "toy-corpus.json"
    (reference / "test-hash" / "toy-corpus.json").write_bytes(good.read_bytes())
    (reference / "test-hash" / "toy-lists.json").write_text('{"schema_version": 1, "trunc')
    result = cli("report", "match", str(reference), "--results", str(tmp_path / "out"))
    assert result.returncode == 1 and "the match is incomplete" in result.stderr


def test_latex_and_csv_tables_stay_valid_for_their_format(tmp_path):
    import csv
    import io

    name = "a&b_c%d#e$f{g}~^h"
    args = [*RUN, "--budgets", "1x1", "--limit", "2", "--model-args", f"name={name}"]
    assert cli(*args, *base_args(tmp_path)).returncode == 0
    latex = cli("report", "table", "--format", "latex", "--results", str(tmp_path / "out"))
    assert latex.returncode == 0, latex.stderr
    lines = latex.stdout.splitlines()
    assert not [line for line in lines if line.startswith("#")]
    assert r"a\&b\_c\%d\#e\$f\{g\}\textasciitilde{}\textasciicircum{}h" in latex.stdout
    table = cli("report", "table", "--format", "csv", "--results", str(tmp_path / "out"))
    rows = list(csv.reader(io.StringIO(table.stdout)))
    assert rows[0][0] == "model @ budget" and any(r and r[0].startswith("# ") for r in rows)


def test_misleading_cases_say_what_is_wrong(tmp_path):
    config = tmp_path / "settings.json"
    config.write_text("[1, 2]")
    one_line_error(cli(*RUN, "--config", str(config), *base_args(tmp_path)), 2, "holds a list")
    afile = tmp_path / "afile"
    afile.write_text("x")
    convert = cli("convert", "--model-args", f"checkpoint={afile}", "--output", str(tmp_path / "c"))
    assert "is a file; a checkpoint is the folder" in convert.stderr
    fetched = cli("prefetch", "--tasks", "libdocs-quick", "--data-dir", str(tmp_path / "d"))
    assert fetched.returncode == 0 and "bundled with the project" in fetched.stdout


def test_two_cached_shards_swapped_on_disk_are_caught_and_encoded_again(tmp_path):
    args = [*RUN, "--budgets", "16x64", "--shard-size", "4", *base_args(tmp_path)]
    assert cli(*args).returncode == 0
    a, b = sorted((tmp_path / "cache").glob("embeddings/*/*/[0-9]*.safetensors"))[:2]
    content_a, content_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(content_b)
    b.write_bytes(content_a)
    (tmp_path / "out").rename(tmp_path / "first")
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert "holds the vectors of other items (moved or swapped" in again.stderr
    first = json.loads((tmp_path / "first" / "test-hash" / "toy-corpus.json").read_text())
    second = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert first["budgets"][0]["per_query"] == second["budgets"][0]["per_query"]


def test_an_output_under_a_file_or_a_broken_link_says_so(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for output in (afile / "out", tmp_path / "dangling"):
        result = cli(*RUN, "--output", str(output), "--cache-dir", str(tmp_path / "cache"))
        one_line_error(result, 1, "is a file or a broken link, not a folder")
    assert afile.read_text() == "x"


def test_a_limit_that_cut_nothing_extends_like_a_full_run(tmp_path):
    assert cli(*RUN, "--budgets", "1x1", "--limit", "100000", *base_args(tmp_path)).returncode == 0
    again = cli(*RUN, "--budgets", "1x1,2x4", *base_args(tmp_path))
    assert again.returncode == 0, again.stderr
    record = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert [b["label"] for b in record["budgets"]] == ["1x1", "2x4"]


def test_a_cascade_shallower_than_the_main_metric_is_said_once(tmp_path):
    result = cli(*RUN, "--budgets", "1x1>16x64@1", *base_args(tmp_path))
    assert result.returncode == 0 and "returns 1 candidates per query, fewer" in result.stderr


def test_an_interim_claims_reading_names_what_it_leaves_out(tmp_path):
    """`report claims --partial` tests what has run and says which comparisons it left out, on
    stderr and under the Markdown table, so an interim file is not read as the whole study."""
    assert cli(*RUN, "--budgets", "1x1,4x8", *base_args(tmp_path)).returncode == 0
    path = tmp_path / "claims.toml"
    path.write_text(
        'tasks = ["toy-corpus"]\n[systems]\nhash = "test-hash"\nlater = ["later-s0"]\n'
        '[[claims]]\nid = "a"\ncomparisons = [["hash @ 4x8", "hash @ 1x1"]]\n'
        '[[claims]]\nid = "b"\ncomparisons = [["later @ 1x1", "hash @ 1x1"]]\n'
    )
    out = tmp_path / "claims.md"
    args = ("report", "claims", str(path), "--results", str(tmp_path / "out"), "--partial")
    result = cli(*args, "--output", str(out))
    assert result.returncode == 0, result.stderr
    note = "left out, no seed run yet: b: later @ 1x1 > hash @ 1x1 on toy-corpus"
    assert note in result.stderr
    text = out.read_text()
    assert "| a | hash @ 4x8 > hash @ 1x1 | toy-corpus |" in text and text.rstrip().endswith(note)
    assert text.startswith("Read with `--partial`: each comparison uses the seeds run so far")
