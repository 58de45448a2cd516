"""Command line: `python -m harness run | train | list | report | prefetch | convert`, one module per verb
(each with `add`, which declares its flags, and `command`, which runs it). A thin layer over
the Python API.

Exit codes: 0 success, 2 usage error (unknown name, bad budget or flag), 1 failure at run time.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from harness import __version__
from harness.errors import HarnessError

log = logging.getLogger("harness")
VERBS = {
    "run": "run",
    "train": "train",
    "list": "listing",
    "report": "report",
    "prefetch": "prefetch",
    "convert": "convert",
}


def _verb(name: str):
    return importlib.import_module(f"harness.cli.{VERBS[name]}")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line and the help hint, not the usage block (exit code 2)."""

    def error(self, message: str):
        sys.stderr.write(f"error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness",
        description="Evaluate multimodal late-interaction retrievers under token budgets.",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details and full tracebacks"
    )
    # -v is accepted after the verb too (`run -v`); SUPPRESS keeps the top-level value otherwise.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "list", "report", "train", "prefetch", "convert"):
        _verb(name).add(sub, [verbose])
    return parser


def _printed_already(record: logging.LogRecord) -> bool:
    """False for a record that a library's own handler (huggingface_hub, transformers) has
    printed on its way up, so that it is not printed twice."""
    name = record.name
    while name:
        if logging.getLogger(name).handlers:
            return False
        name = name.rpartition(".")[0]
    return True


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_printed_already)
    if not args.verbose:
        from harness.cli.common import quiet_warnings

        quiet_warnings()
    try:
        return _verb(args.command).command(args)
    except HarnessError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        kept = (
            "the last saved training state is kept"
            if getattr(args, "command", None) == "train"
            else "finished shards and results are kept"
        )
        print(f"interrupted: {kept}; rerun the same command to resume", file=sys.stderr)
        return 130
