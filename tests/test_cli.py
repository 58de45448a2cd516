"""The command line: exit codes, one-line errors, results on disk, report tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def cli(*args, cwd=None, env_extra=None):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def base_args(tmp_path):
    return [
        "--output",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--data-dir",
        str(tmp_path / "data"),
        "--no-progress",
    ]


def test_run_writes_results_prints_leaderboard_and_reruns_for_free(tmp_path):
    result = cli(
        "run",
        "--model",
        "test-hash",
        "--tasks",
        "toy_tasks:TASKS",
        "--budgets",
        "1x1,16x64",
        *base_args(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "| test-hash @ 1x1 |" in result.stdout and "| test-hash @ 16x64 |" in result.stdout
    files = sorted(p.name for p in (tmp_path / "out" / "test-hash").iterdir())
    assert files == ["toy-corpus.json", "toy-lists.json"]
    record = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert record["config"]["models"] == ["test-hash"] and record["encode"]["items_encoded"] == 52

    before = (tmp_path / "out" / "test-hash" / "toy-corpus.json").read_bytes()
    again = cli(
        "run",
        "--model",
        "test-hash",
        "--tasks",
        "toy_tasks:TASKS",
        "--budgets",
        "1x1,16x64",
        *base_args(tmp_path),
    )
    assert again.returncode == 0 and again.stdout == result.stdout
    assert (tmp_path / "out" / "test-hash" / "toy-corpus.json").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "test-hsah"], "did you mean 'test-hash'"),
        (["--tasks", "vidore-v22"], "did you mean 'vidore-v2'"),
        (["--budgets", "3x"], "malformed budget '3x'"),
        (["--budgets", "0x4"], "malformed budget '0x4'"),
        (["--budgets", "32x64"], "valid budgets for it: 1x1, 2x4, 4x8, 8x16, 16x64"),
        (["--model-args", "dim"], "key=value"),
        (["--model-args", "no_such=1"], "rejected --model-args"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path, args, message):
    defaults = {"--model": "test-hash", "--tasks": "toy_tasks:TASKS"}
    for flag, value in defaults.items():
        if flag not in args:
            args = [*args, flag, value]
    result = cli("run", *args, *base_args(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out" / "test-hash").exists()


def test_argparse_errors_also_exit_2(tmp_path):
    assert cli("run", "--device", "tpu").returncode == 2
    assert cli("run", "--limit", "0").returncode == 2
    assert cli("frobnicate").returncode == 2


def test_unwritable_output_exits_1_before_encoding(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli(
        "run",
        "--model",
        "test-hash",
        "--tasks",
        "toy_tasks:TASKS",
        "--output",
        str(blocker / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert result.returncode == 1 and "not writable" in result.stderr
    assert not (tmp_path / "cache" / "embeddings").exists()


def test_runtime_failure_exits_1_and_keeps_finished_tasks(tmp_path):
    result = cli(
        "run",
        "--model",
        "toy_models:NaNEncoder",
        "--tasks",
        "toy_tasks:LISTS,toy_tasks:CORPUS",
        *base_args(tmp_path),
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: task toy-corpus: model 'test-nan' produced NaN")
    assert (tmp_path / "out" / "test-nan" / "toy-lists.json").exists()


def test_list_commands(tmp_path):
    models = cli("list", "models")
    assert models.returncode == 0 and "test-hash" in models.stdout and "TEST ONLY" in models.stdout
    groups = cli("list", "groups")
    assert groups.returncode == 0 and "mmeb-ood" in groups.stdout
    assert cli("list", "tasks").returncode == 0


@pytest.mark.parametrize("fmt", ["md", "csv", "html", "latex"])
def test_report_table_formats(tmp_path, fmt):
    assert (
        cli(
            "run",
            "--model",
            "test-hash",
            "--tasks",
            "toy_tasks:TASKS",
            "--budgets",
            "1x1",
            *base_args(tmp_path),
        ).returncode
        == 0
    )
    out = tmp_path / f"table.{fmt}"
    result = cli(
        "report", "table", "--results", str(tmp_path / "out"), "--format", fmt, "--output", str(out)
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert "test-hash" in text and "toy-corpus" in text.replace("\\_", "_")
    if fmt == "csv":
        assert text.splitlines()[0].startswith("model @ budget,toy-corpus,toy-lists,mean")


def test_report_without_results_exits_1(tmp_path):
    result = cli("report", "table", "--results", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "no valid result files" in result.stderr


def test_metaembed_mini_runs_end_to_end_offline(tmp_path):
    result = cli(
        "run",
        "--model",
        "metaembed-mini,single-mean",
        "--tasks",
        "toy_tasks:TASKS",
        *base_args(tmp_path),
        env_extra={"HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --no-progress: no loading bars, no library notices either
    assert (
        "| metaembed-mini @ 16x64 |" in result.stdout and "| single-mean @ 1x1 |" in result.stdout
    )
    record = json.loads((tmp_path / "out" / "metaembed-mini" / "toy-lists.json").read_text())
    assert record["model"]["dim"] == 384 and len(record["budgets"]) == 5


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "--tasks", "", "--model", "test-hash"], 2, "--tasks is empty"),
        (["run", "--model", "", "--tasks", "toy_tasks:CORPUS"], 2, "--model is empty"),
        (["run", "--tasks", "os:path", "--model", "test-hash"], 2, "neither a TaskSpec"),
        (
            ["run", "--model", "single-mean", "--model-args", "max_length=abc"],
            2,
            "max_length= takes a whole number, got 'abc'",
        ),
        (["report", "table", "--output", "/proc/x/t.md"], 1, "cannot write /proc/x/t.md"),
    ],
)
def test_bad_invocations_give_one_line_and_the_right_exit_code(tmp_path, args, code, message):
    if args[0] == "report":
        args = [*args, "--results", str(TESTS / "data" / "example_results")]
    else:
        args = [*args, *base_args(tmp_path)]
    out = cli(*args, env_extra={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == code, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "out" / "test-hash").exists()


def test_verbose_is_accepted_after_the_verb():
    out = cli("list", "groups", "-v")
    assert out.returncode == 0 and "libdocs-quick" in out.stdout


def test_a_corrupt_result_in_the_output_folder_is_named_and_recomputed(tmp_path):
    args = ["run", "--model", "test-hash", "--tasks", "toy_tasks:CORPUS", *base_args(tmp_path)]
    assert cli(*args).returncode == 0
    path = tmp_path / "out" / "test-hash" / "toy-corpus.json"
    good = json.loads(path.read_text())
    path.write_text(path.read_text()[:100])  # truncated
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert str(path) in again.stderr and "recomputing" in again.stderr
    fixed = json.loads(path.read_text())
    assert [b["main_score"] for b in fixed["budgets"]] == [b["main_score"] for b in good["budgets"]]
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not 0600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_run_leaves_no_empty_output_folder(tmp_path):
    args = ["run", "--model", "toy_models:NaNEncoder", "--tasks", "toy_tasks:CORPUS"]
    out = cli(*args, *base_args(tmp_path))
    assert out.returncode == 1 and "NaN" in out.stderr
    assert not (tmp_path / "out").exists()


def test_missing_dataset_in_data_dir_fails_before_any_model_loads_and_offline(tmp_path):
    # No offline variable, and a hub endpoint that refuses connections: any network attempt
    # would show up as huggingface_hub retry warnings.
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    }
    env.update(
        HF_ENDPOINT="http://127.0.0.1:9",
        HARNESS_TEST_MARK=str(tmp_path / "model-loaded"),
        PYTHONPATH=str(TESTS),
    )
    (tmp_path / "data").mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--model", "toy_models:marked_encoder"]
        + ["--tasks", "toy_tasks:CORPUS,vidore-v1-arxivqa", *base_args(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    assert "mteb/arxivqa_test_subsampled_beir" in out.stderr and "not in --data-dir" in out.stderr
    assert "harness prefetch --tasks vidore-v1-arxivqa" in out.stderr
    assert "Retry" not in out.stderr and "127.0.0.1" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "model-loaded").exists()
    assert not (tmp_path / "out").exists()


def test_records_a_library_printed_itself_are_not_printed_again():
    import logging

    from harness.cli import _printed_already

    own = logging.getLogger("some_library_with_a_handler")
    own.addHandler(logging.NullHandler())
    try:
        child = logging.LogRecord("some_library_with_a_handler.http", 30, "", 0, "m", None, None)
        ours = logging.LogRecord("harness.evaluation", 30, "", 0, "m", None, None)
        assert not _printed_already(child) and _printed_already(ours)
    finally:
        own.handlers.clear()


def test_the_readme_task_example_runs_from_another_working_directory(tmp_path):
    """The 'Bring your own task' code block, saved as my_tasks.py beside a page image."""
    import re

    from PIL import Image

    readme = (TESTS.parent / "README.md").read_text()
    section = readme[readme.index("## Bring your own task") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    package = tmp_path / "pkg"
    (package / "pages").mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(package / "pages" / "p1.png")
    (package / "my_tasks.py").write_text(code)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = cli(
        "run",
        "--model",
        "test-hash",
        "--tasks",
        "my_tasks:TASKS",
        *base_args(tmp_path),
        cwd=elsewhere,
        env_extra={"PYTHONPATH": os.pathsep.join([str(package), str(TESTS)])},
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "test-hash" / "my-task.json").is_file()


def test_run_settings_come_from_a_config_file_and_flags_win(tmp_path):
    (tmp_path / "run.toml").write_text(
        'models = ["test-hash"]\ntasks = "toy_tasks:CORPUS"\nbudgets = ["1x1", "16x64"]\n'
        f'output = "{tmp_path / "out"}"\ncache_dir = "{tmp_path / "cache"}"\n'
        "trec_runs = true\n"
    )
    out = cli("run", "--config", str(tmp_path / "run.toml"), "--budgets", "4x8", "--no-progress")
    assert out.returncode == 0, out.stderr
    record = json.loads((tmp_path / "out" / "test-hash" / "toy-corpus.json").read_text())
    assert [b["label"] for b in record["budgets"]] == ["4x8"]  # the flag won
    assert record["config"]["trec_runs"] is True  # from the file
    (tmp_path / "bad.toml").write_text("batch = 3\n")
    bad = cli("run", "--config", str(tmp_path / "bad.toml"))
    assert bad.returncode == 2 and "unknown field 'batch'" in bad.stderr
