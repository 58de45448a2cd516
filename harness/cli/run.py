"""`python -m harness run`: evaluate models on tasks at token budgets, print the leaderboard."""

from __future__ import annotations

import argparse

from harness.cli.common import quiet_libraries
from harness.config import RunConfig
from harness.options import add_flags, settings


def add(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", parents=parents, help="evaluate models on tasks at token budgets")
    run.add_argument(
        "--config", default=None, help="a TOML or JSON file of run settings; flags override it"
    )
    add_flags(run, RunConfig)


def command(args: argparse.Namespace) -> int:
    if args.progress is not None:  # --no-progress
        quiet_libraries(args.verbose)
    from harness.evaluation import run

    config = RunConfig(**settings(RunConfig, args, args.config))
    records = run(config)
    from harness.distributed import current

    if not current().is_main:
        return 0  # rank 0 prints and writes the leaderboard
    from harness.cli.report import tables
    from harness.reporting.plots import write_plots

    table = tables(records, "md")
    print(table, end="")
    with open(f"{config.output}/leaderboard.md", "w", encoding="utf-8") as handle:
        handle.write(table)
    plots = write_plots(records, f"{config.output}/plots")
    print(f"results in {config.output}/ (leaderboard.md, plots/{plots[0].name}, ...)")
    return 0
