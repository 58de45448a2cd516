"""`python -m harness train`: train MetaEmbed (MMR) or a baseline under the same settings."""

from __future__ import annotations

import argparse

from harness.cli.common import quiet_libraries
from harness.config import TrainConfig
from harness.errors import UsageError
from harness.options import add_flags, settings


def add(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    train = sub.add_parser(
        "train",
        parents=parents,
        help="train MetaEmbed (MMR) or a baseline under the same settings",
    )
    train.add_argument(
        "--config",
        default=None,
        help="a TOML or JSON file of TrainConfig fields; flags override it",
    )
    add_flags(train, TrainConfig)


def command(args: argparse.Namespace) -> int:
    from harness.training.loop import train

    if args.steps is not None and args.epochs is not None:
        raise UsageError("give --steps or --epochs, not both")
    values = settings(TrainConfig, args, args.config)
    if values.get("output") == "":  # as run: an empty path is not the current folder
        raise UsageError("--output is empty; name a folder, or leave the flag out")
    if args.steps is not None:
        values["epochs"] = None  # a --steps flag overrides epochs from a --config file
    if args.progress is not None:  # --no-progress
        quiet_libraries(args.verbose)
    output = train(TrainConfig(**values))
    print(f"checkpoint: {output}")
    return 0
