"""`python -m harness prefetch`: download dataset snapshots for offline runs."""

from __future__ import annotations

import argparse


def add(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    fetch = sub.add_parser(
        "prefetch", parents=parents, help="download dataset snapshots for offline runs"
    )
    fetch.add_argument("--tasks", required=True, help="comma list of tasks or groups")
    fetch.add_argument("--data-dir", required=True, help="where snapshots go, as DIR/<org>/<name>")


def command(args: argparse.Namespace) -> int:
    from harness.hub import prefetch, prefetch_jobs
    from harness.registry import get_tasks

    for path in prefetch(prefetch_jobs(get_tasks(args.tasks)), args.data_dir):
        print(f"ready: {path}")
    return 0
