"""`python -m harness prefetch`: download dataset snapshots for offline runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UsageError


def add(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    fetch = sub.add_parser(
        "prefetch", parents=parents, help="download dataset snapshots for offline runs"
    )
    fetch.add_argument("--tasks", required=True, help="comma list of tasks or groups")
    fetch.add_argument("--data-dir", required=True, help="where snapshots go, as DIR/<org>/<name>")


def command(args: argparse.Namespace) -> int:
    from harness.hub import prefetch, prefetch_jobs
    from harness.registry import get_tasks

    if Path(args.data_dir).exists() and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir} is a file; name a folder")
    specs = get_tasks(args.tasks)
    bundled = [s.name for s in specs if s.dataset.path.startswith("bundled:")]
    for name in bundled:  # shipped with the project: nothing to download
        print(f"ready: {name} (bundled with the project; no download needed)")
    jobs = prefetch_jobs([s for s in specs if not s.dataset.path.startswith("bundled:")])
    for path in prefetch(jobs, args.data_dir):
        print(f"ready: {path}")
    return 0
