"""The result file (schema_version 1): one JSON per (model, task), written atomically."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

from harness import faults
from harness.errors import UsageError

SCHEMA_VERSION = 1


class BudgetRow(TypedDict, total=False):
    """One budget's result (docs/results.md); `groups` and `index` only where they apply."""

    label: str
    query: int | None
    candidate: int | None
    main_score: float
    metrics: dict[str, float]
    cost: dict[str, Any]
    groups: dict[str, dict[str, float]]
    index: dict[str, Any]
    per_query: dict[str, float]


class ResultRecord(TypedDict):
    """One (model, task) result file, schema_version 1; fields may be added, none renamed."""

    schema_version: int
    harness_version: str
    git_sha: str | None
    created_at: str
    model: dict[str, Any]
    task: dict[str, Any]
    budgets: list[BudgetRow]
    encode: dict[str, Any]
    environment: dict[str, Any]
    config: dict[str, Any]


# What a reader needs from a record; a file without it is named and skipped, never half-read.
REQUIRED_ROW = ("label", "main_score", "metrics", "cost")
NUMERIC_COST = (
    "vectors_per_candidate",
    "index_bytes_per_candidate",
    "scoring_flops_per_pair",
    "scoring_ms_per_query",
)


def not_understood(record: Any) -> str | None:
    """Why a parsed file is not a result record this harness can read, or None."""
    if not isinstance(record, dict):
        return "is not a JSON object"
    if record.get("schema_version") != SCHEMA_VERSION:
        return (
            f"has schema_version {record.get('schema_version')!r}; this harness reads "
            f"{SCHEMA_VERSION}"
        )
    for key in ("model", "task", "budgets"):
        if key not in record:
            return f"has no {key!r}"
    why = _bad_header(record)
    if why is not None:
        return why
    if not isinstance(record["budgets"], list):
        return "has no list of budgets"
    labels: set[str] = set()
    for row in record["budgets"]:
        why = _bad_row(row, labels, record["task"].get("main_metric"))
        if why is not None:
            return why
    return None


def _bad_header(record: dict[str, Any]) -> str | None:
    """Why a record's model and task parts cannot be read, or None."""
    if not isinstance(record["model"], dict) or "name" not in record["model"]:
        return "has no model name"
    if not isinstance(record["task"], dict) or "name" not in record["task"]:
        return "has no task name"
    for part in ("model", "task"):
        if not isinstance(record[part]["name"], str) or not record[part]["name"]:
            return f"has a {part} name {record[part]['name']!r} that is not a string"
    task = record["task"]
    for key in ("n_queries", "n_candidates"):
        value = task.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            return f"has task {key} = {value!r} (not a count)"
    check = task.get("size_check")
    if check is not None and not isinstance(check, dict):
        return "has a size_check that is not an object"
    if isinstance(check, dict) and check.get("official_size") not in (None, True, False):
        return f"has size_check.official_size = {check['official_size']!r} (not true or false)"
    return None


def _bad_row(row: Any, labels: set[str], main_metric: Any) -> str | None:
    """Why one budget row cannot be read (its label is added to `labels`), or None."""
    missing = [k for k in REQUIRED_ROW if not isinstance(row, dict) or k not in row]
    if missing:
        return f"has a budget row without {missing[0]!r}"
    label = row.get("label")
    why = _bad_label(label)
    if why is not None:
        return why
    if label in labels:
        return f"has two rows for budget {label!r}"
    labels.add(label)
    if not isinstance(row["cost"], dict):
        return f"has a cost that is not an object at budget {label!r}"
    for name in NUMERIC_COST:  # what tables, plots and pages compute with
        value = row["cost"].get(name)
        if value is not None and not (_is_finite(value) and value >= 0):
            return f"has cost {name} = {value!r} at budget {label!r} (not a number >= 0)"
    per_query = row.get("per_query")
    if per_query is not None:
        if not isinstance(per_query, dict):
            return f"has per_query scores that are not an object at budget {label!r}"
        bad = next((v for v in per_query.values() if not _is_finite(v)), None)
        if bad is not None or any(not _is_finite(v) for v in per_query.values()):
            return f"has a per-query score {bad!r} at budget {label!r} (not a finite number)"
    if not _is_score(row["main_score"]):
        return f"has main_score {row['main_score']!r} at budget {label!r} (not a number in [0, 1])"
    if not isinstance(row["metrics"], dict):
        return f"has metrics that are not an object at budget {label!r}"
    for name, value in row["metrics"].items():
        if value is not None and not _is_finite(value):
            return f"has metric {name} = {value!r} at budget {label!r} (not a finite number)"
    # the main score is the main metric's value (files that keep it in metrics)
    kept = row["metrics"].get(main_metric) if isinstance(main_metric, str) else None
    if kept is not None and abs(kept - row["main_score"]) > 1e-9:
        return (
            f"has main_score {row['main_score']!r} but {main_metric} = {kept!r} at budget "
            f"{label!r}; they must be equal"
        )
    return None


def _is_finite(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _bad_label(label: Any) -> str | None:
    from harness.budgets import Budget

    if not isinstance(label, str):
        return f"has a budget label {label!r} that is not a string"
    try:
        Budget.parse(label)
    except UsageError:
        return f"has a budget label {label!r} this harness cannot parse"
    return None


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a log the harness appends to (training loss, dev scores); a last line
    half-written by a killed process is passed over."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def _is_score(value: Any) -> bool:
    """Scores are stored in [0, 1] (a hair of rounding above 1 allowed)."""
    return _is_finite(value) and -1e-9 <= value <= 1 + 1e-9


def safe_name(name: str) -> str:
    """A model or task name as a single path component."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "__", name).strip(".") or "_"


def result_path(output: str | os.PathLike, model_name: str, task_name: str) -> Path:
    return Path(output) / safe_name(model_name) / f"{safe_name(task_name)}.json"


def public_mode() -> int:
    """The mode a plain `open()` would give a new file under the current umask (0644 usually)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def folder_lock(path: str | os.PathLike):
    """An exclusive lock on the folder that holds `path` (flock on the folder itself, so no
    lock file is left among the results), for a read-merge-write that concurrent runs into
    the same output must not interleave. A no-op where flock does not exist."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def write_json_atomic(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        text = json.dumps(record, indent=2, sort_keys=False, allow_nan=False) + "\n"
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text[: len(text) // 2])
            handle.flush()
            faults.reach("result-write")
            handle.write(text[len(text) // 2 :])
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, public_mode())  # mkstemp makes 0600; results are shared like any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def partial_reason(record: dict[str, Any]) -> str | None:
    """Why a result is not comparable with full runs of its task, or None: a `--limit` run, or a
    dataset whose loaded size differs from the published one."""
    limit = (record.get("config") or {}).get("limit")
    notes = (record.get("task") or {}).get("notes")
    # a --limit at or above the task's query count cut nothing (the data then has no note)
    cut = not isinstance(notes, list) or any(str(n).startswith("limited to") for n in notes)
    if limit and cut:
        return f"limited to {limit} queries"
    check = record.get("task", {}).get("size_check") or {}
    if check.get("official_size") is False:
        return "dataset size differs from the published one"
    return None


def read_result(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except RecursionError:  # nested deeper than any result file: not one
            raise ValueError("nested too deeply to be a result file") from None


def iter_results(
    root: str | os.PathLike, skipped: list[tuple[Path, str]] | None = None
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every schema-1 result file under `root`, in path order. JSON files that are not result
    files (no `schema_version`: configs, logs) are passed over; a file that cannot be read or
    parsed, or has a schema_version this harness does not know, is appended to `skipped` with
    the reason, so a report can name it."""
    for path in sorted(Path(root).rglob("*.json")):
        try:
            record = read_result(path)
        except (OSError, UnicodeDecodeError) as exc:
            if skipped is not None:
                skipped.append((path, f"cannot be read ({exc})"))
            continue
        except json.JSONDecodeError as exc:
            if skipped is not None:
                skipped.append((path, f"is not valid JSON (truncated?): {exc}"))
            continue
        except ValueError as exc:  # e.g. nested too deeply
            if skipped is not None:
                skipped.append((path, str(exc)))
            continue
        if not isinstance(record, dict) or "schema_version" not in record:
            continue  # another JSON file (a leaderboard, a config), not a result
        why = not_understood(record)
        if why is not None:
            if skipped is not None:
                skipped.append((path, why))
            continue
        yield path, record


@functools.lru_cache(maxsize=1)
def git_sha() -> str | None:
    """The harness checkout's commit, when it runs from one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def environment() -> dict[str, Any]:
    gpu = None
    torch_version = _version("torch")
    if "torch" in sys.modules:
        import torch

        torch_version = torch.__version__
        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return {
        "python": platform.python_version(),
        "torch": torch_version,
        "transformers": _version("transformers"),
        "platform": platform.platform(),
        "cpu": _cpu(),
        "gpu": gpu,
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
