"""Command line: `python -m harness run | list | report table`. A thin layer over the Python API.

Exit codes: 0 success, 2 usage error (unknown name, bad budget or flag), 1 failure at run time.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.config import DEFAULT_MODELS, DEFAULT_OUTPUT, DEFAULT_TASKS
from harness.errors import HarnessError, UsageError

log = logging.getLogger("harness")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def _size(text: str) -> int:
    """Bytes from '512MiB', '8GB', '1.5GiB' or a plain number."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512MiB, 8GB or 1000000, got {text!r}"
        )
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive size, got {text!r}")
    return value


def _names(value: str | None, flag: str, default: Sequence[str] | None) -> list[str] | None:
    """A comma list from a flag; the default when the flag is absent, a usage error when it is
    given but empty (`--tasks ''` must not quietly run the default suite)."""
    from harness.registry import split_names

    if value is None:
        return list(default) if default is not None else None
    names = split_names(value)
    if not names:
        raise UsageError(f"{flag} is empty; name at least one, or leave the flag out")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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

    run = sub.add_parser("run", parents=[verbose], help="evaluate models on tasks at token budgets")
    run.add_argument(
        "--model",
        "--models",
        dest="models",
        default=None,
        help=f"comma list of registry names or package.module:factory (default: {','.join(DEFAULT_MODELS)})",
    )
    run.add_argument(
        "--tasks",
        default=None,
        help=f"comma list of tasks, groups or package.module:attr (default: {','.join(DEFAULT_TASKS)})",
    )
    run.add_argument(
        "--budgets",
        default=None,
        help="comma list such as 1x1,2x4,16x64 or allxall; 'all' (default) = each model's own budgets",
    )
    run.add_argument("--model-args", default="", help="k=v,k2=v2 passed to each model's factory")
    run.add_argument(
        "--data-dir",
        default=None,
        help="offline dataset snapshots in the hub layout (default: $HARNESS_DATA_DIR)",
    )
    run.add_argument(
        "--output", default=DEFAULT_OUTPUT, help=f"results directory (default: {DEFAULT_OUTPUT})"
    )
    run.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache (default: $HARNESS_CACHE_DIR or ~/.cache/harness)",
    )
    run.add_argument("--no-cache", action="store_true", help="keep no embeddings on disk")
    run.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        help="evaluate only the first N queries of each task (smoke tests)",
    )
    run.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="items per encoder call (default 32); lower it when a model runs out of memory",
    )
    run.add_argument(
        "--shard-size",
        type=_positive_int,
        default=512,
        help="items per cache shard, the unit of resuming and of work split across ranks (512)",
    )
    run.add_argument(
        "--memory-limit",
        type=_size,
        default=None,
        help="score shared-corpus candidates from disk, shard by shard, when their embeddings "
        "exceed this size (e.g. 8GiB); exact, like in-memory scoring",
    )
    run.add_argument(
        "--score-dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="dtype of the MaxSim GEMM (float32: exact; bfloat16 is faster on GPUs)",
    )
    run.add_argument(
        "--candidate-padding",
        default="exact",
        choices=["exact", "zero"],
        help="how a candidate's padded vectors score in MaxSim when it has fewer than the "
        "budget: exact (never win the max; default) or zero (score 0, the rule of "
        "colpali-engine, pylate, vidore-benchmark and mteb, to match their published numbers)",
    )
    run.add_argument(
        "--index",
        default="exact",
        help="exact (default), faiss, or faiss:FACTORY[|PARAMS] such as faiss:IVF64,Flat|nprobe=8; "
        "approximate backends serve single-vector budgets and report recall against exact search",
    )
    run.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where models run and scores are computed (auto: cuda when torch sees a GPU)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="recompute results that already exist"
    )
    run.add_argument(
        "--top-k",
        type=_positive_int,
        default=100,
        help="candidates kept per query on shared corpora (default 100): the run's depth, the "
        "largest cutoff metrics and TREC run files can use",
    )
    run.add_argument(
        "--no-progress",
        action="store_true",
        help="hide progress bars (the harness's and the libraries' loading bars) and, unless -v, "
        "transformers' warnings",
    )
    run.add_argument(
        "--trec-runs",
        action="store_true",
        help="also write TREC run files (<output>/<model>/runs/<task>.<budget>.trec)",
    )

    lst = sub.add_parser("list", parents=[verbose], help="list tasks, groups or models")
    lst.add_argument("what", choices=["tasks", "groups", "models"])

    report = sub.add_parser("report", parents=[verbose], help="tables from result files")
    rsub = report.add_subparsers(dest="report_command", required=True)
    table = rsub.add_parser("table", parents=[verbose], help="leaderboard table")
    table.add_argument(
        "--results", default=DEFAULT_OUTPUT, help=f"results directory (default: {DEFAULT_OUTPUT})"
    )
    table.add_argument("--format", default="md", choices=["md", "csv", "html", "latex"])
    table.add_argument("--output", default=None, help="write to FILE instead of stdout")
    table.add_argument(
        "--no-reported",
        action="store_true",
        help="leave out the published numbers (results/reported/)",
    )
    table.add_argument(
        "--include-partial",
        action="store_true",
        help="count partial results (--limit runs, datasets of another size) in means and aggregates",
    )
    table.add_argument(
        "--ci",
        action="store_true",
        help="show each score ± the half-width of its 95%% bootstrap interval",
    )

    train = sub.add_parser(
        "train",
        parents=[verbose],
        help="train MetaEmbed (MMR) or a baseline under the same settings",
    )
    train.add_argument(
        "--config",
        default=None,
        help="a TOML or JSON file of TrainConfig fields; flags override it",
    )
    for flag, kind, help_text in TRAIN_FLAGS:
        if kind is bool:
            train.add_argument(flag, action="store_true", default=None, help=help_text)
        else:
            train.add_argument(flag, type=kind, default=None, help=help_text)
    train.add_argument("--no-progress", action="store_true", default=None)

    cmp = rsub.add_parser(
        "compare",
        parents=[verbose],
        help="paired test of two `model @ budget` rows on their common tasks",
    )
    cmp.add_argument("a", help="e.g. 'metaembed-mini @ 16x64'")
    cmp.add_argument("b", help="e.g. 'metaembed-mini @ 1x1'")
    cmp.add_argument("--results", default=DEFAULT_OUTPUT)
    cmp.add_argument("--format", default="md", choices=["md", "csv", "html", "latex"])

    claims = rsub.add_parser(
        "claims",
        parents=[verbose],
        help="a study's claims: paired tests across seeds, Holm-corrected",
    )
    claims.add_argument("spec", help="claim file (TOML), e.g. results/libdocs/claims.toml")
    claims.add_argument("--results", default=DEFAULT_OUTPUT)
    claims.add_argument("--format", default="md", choices=["md", "csv", "html", "latex"])
    claims.add_argument("--output", default=None, help="write to FILE instead of stdout")
    claims.add_argument(
        "--partial",
        action="store_true",
        help="a study still running: compare on the seeds run so far, leave out what has none",
    )

    match = rsub.add_parser(
        "match",
        parents=[verbose],
        help="do the scores under --results match those of a reference folder?",
    )
    match.add_argument("reference", help="results folder to compare with")
    match.add_argument("--results", default=DEFAULT_OUTPUT)
    match.add_argument(
        "--tolerance", type=float, default=0.005, help="largest |difference| of a score in [0, 1]"
    )

    plot = rsub.add_parser("plot", parents=[verbose], help="quality-versus-cost plots")
    plot.add_argument(
        "--results", default=DEFAULT_OUTPUT, help=f"results directory (default: {DEFAULT_OUTPUT})"
    )
    plot.add_argument(
        "--x", default="all", choices=["all", "budget", "index_bytes", "flops", "latency"]
    )
    plot.add_argument(
        "--output", default=None, help="folder for the PNG and SVG files (default: RESULTS/plots)"
    )

    fetch = sub.add_parser(
        "prefetch", parents=[verbose], help="download dataset snapshots for offline runs"
    )
    fetch.add_argument("--tasks", required=True, help="comma list of tasks or groups")
    fetch.add_argument("--data-dir", required=True, help="where snapshots go, as DIR/<org>/<name>")
    return parser


TRAIN_FLAGS: list[tuple[str, type, str]] = [
    ("--model", str, "model to train (default metaembed-mini)"),
    ("--model-args", str, "k=v,... for the model factory"),
    (
        "--data",
        str,
        "sources, optionally weighted: libdocs[:N] | mmeb-train[:Subset+...] | colpali | task:NAME | jsonl:PATH, e.g. mmeb-train@0.7,colpali@0.3",
    ),
    ("--data-dir", str, "offline dataset snapshots"),
    ("--output", str, "checkpoint folder (also holds the training state and loss log)"),
    ("--steps", int, "optimizer steps"),
    ("--epochs", float, "train for this many passes over the data (sets --steps)"),
    ("--batch-size", int, "queries per step (in-batch negatives)"),
    ("--grad-accum", int, "micro-batches per step"),
    ("--lr", float, "learning rate of the backbone (LoRA or full)"),
    ("--own-lr", float, "learning rate of the encoder's own weights (meta tokens, projection)"),
    ("--weight-decay", float, "AdamW weight decay"),
    ("--warmup", int, "warm-up steps"),
    ("--schedule", str, "linear | cosine | constant decay after warm-up"),
    ("--temperature", float, "InfoNCE temperature (0.03)"),
    ("--objective", str, "mmr (one loss per nested group) | nommr (largest group only)"),
    ("--groups", str, "nested groups, e.g. 1x1,2x4,4x8,8x16,16x64"),
    ("--tune", str, "lora | full | frozen"),
    ("--lora-r", int, "LoRA rank (32)"),
    ("--lora-alpha", int, "LoRA alpha (32)"),
    ("--gradient-checkpointing", bool, "trade compute for memory"),
    ("--no-hard-negatives", bool, "use in-batch negatives only"),
    ("--no-dropout", bool, "train with the backbone's dropout off"),
    ("--seed", int, "seed of weights' initialisation and batches"),
    ("--save-every", int, "save a resumable checkpoint every N steps"),
    ("--run-steps", int, "stop after N steps in this invocation (rerun to continue)"),
    ("--device", str, "auto | cpu | cuda"),
    ("--no-resume", bool, "start over even if the output holds a training state"),
]


def _cmd_train(args: argparse.Namespace) -> int:
    import json
    import tomllib
    from dataclasses import fields

    from harness.registry import parse_model_args
    from harness.training import TrainConfig, train

    values: dict = {}
    if args.config:
        try:
            with open(args.config, "rb") as handle:
                values = (
                    tomllib.load(handle) if not args.config.endswith(".json") else json.load(handle)
                )
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read --config {args.config}: {exc}") from exc
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown field {unknown[0]!r} in {args.config}; known: {', '.join(sorted(known))}"
        )
    for flag, _, _ in TRAIN_FLAGS:
        key = flag[2:].replace("-", "_")
        value = getattr(args, key, None)
        if value is None:
            continue
        if key == "no_hard_negatives":
            values["hard_negatives"] = False
        elif key == "no_resume":
            values["resume"] = False
        elif key == "no_dropout":
            values["dropout"] = False
        elif key == "model_args":
            values["model_args"] = parse_model_args(value)
        else:
            values[key] = value
    if args.steps is not None and args.epochs is not None:
        raise UsageError("give --steps or --epochs, not both")
    if args.steps is not None:
        values["epochs"] = None  # a --steps flag overrides epochs from a --config file
    if args.no_progress:
        values["progress"] = False
        _quiet_libraries(args.verbose)
    if isinstance(values.get("model_args"), str):
        values["model_args"] = parse_model_args(values["model_args"])
    output = train(TrainConfig(**values))
    print(f"checkpoint: {output}")
    return 0


def _cmd_list(what: str) -> int:
    from harness.registry import MODELS, group_members, groups, task_specs

    if what == "models":
        rows = [
            [e.name, e.family, e.backbone, "+".join(e.modalities), e.budgets, e.description]
            for e in MODELS.values()
        ]
        header = ["name", "family", "backbone", "modalities", "budgets", "description"]
    elif what == "groups":
        specs = task_specs()
        rows = [
            [g.name, str(len(group_members(g.name, specs))), g.description]
            for g in groups().values()
        ]
        header = ["group", "tasks", "description"]
    else:
        specs = task_specs()
        rows = [
            [
                s.name,
                s.benchmark,
                s.category or "",
                s.split or "",
                s.kind,
                s.main_metric,
                s.dataset.path,
                s.dataset.revision or "",
            ]
            for s in specs.values()
        ]
        header = [
            "task",
            "benchmark",
            "category",
            "ind/ood",
            "kind",
            "main metric",
            "dataset",
            "revision",
        ]
        if not rows:
            print("no tasks are installed in this version; see `python -m harness list groups`")
            return 0
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _quiet_libraries(verbose: bool) -> None:
    """--no-progress: the hub's, transformers' and datasets' progress bars off too, and (unless
    -v) transformers' warnings and the libraries' deprecation notices; errors still show."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        # Deprecation notices between libraries (peft calling transformers) ask nothing of a user.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        if not verbose:
            transformers_logging.set_verbosity_error()


def _cmd_run(args: argparse.Namespace) -> int:
    if args.no_progress:
        _quiet_libraries(args.verbose)
    from harness.config import RunConfig
    from harness.evaluation import run
    from harness.registry import parse_model_args

    config = RunConfig(
        models=_names(args.models, "--model", DEFAULT_MODELS),
        tasks=_names(args.tasks, "--tasks", DEFAULT_TASKS),
        budgets=_names(args.budgets, "--budgets", None),
        model_args=parse_model_args(args.model_args),
        output=args.output,
        cache_dir=args.cache_dir,
        no_cache=args.no_cache,
        limit=args.limit,
        batch_size=args.batch_size,
        device=args.device,
        overwrite=args.overwrite,
        top_k=args.top_k,
        progress=not args.no_progress,
        trec_runs=args.trec_runs,
        shard_size=args.shard_size,
        memory_limit=args.memory_limit,
        index=args.index,
        score_dtype=args.score_dtype,
        candidate_padding=args.candidate_padding,
    )
    if args.data_dir is not None:
        config.data_dir = args.data_dir
    records = run(config)
    from harness.distributed import current

    if not current().is_main:
        return 0  # rank 0 prints and writes the leaderboard
    from harness.plots import write_plots

    table = _tables(records, "md")
    print(table, end="")
    with open(f"{config.output}/leaderboard.md", "w", encoding="utf-8") as handle:
        handle.write(table)
    plots = write_plots(records, f"{config.output}/plots")
    print(f"results in {config.output}/ (leaderboard.md, plots/{plots[0].name}, ...)")
    return 0


def _tables(
    records: list[dict],
    fmt: str,
    reported: bool = False,
    ci: bool = False,
    include_partial: bool = False,
) -> str:
    """The leaderboard, then each benchmark's aggregate table present in the records. Partial
    results are marked and, unless `include_partial`, kept out of means and aggregates."""
    from harness.aggregate import benchmark_tables
    from harness.report import PARTIAL_MARK, leaderboard, render
    from harness.results import partial_reason

    parts = [render(*leaderboard(records, ci=ci, include_partial=include_partial), fmt)]
    reasons = sorted({why for r in records if (why := partial_reason(r)) is not None})
    if reasons:
        note = (
            f"{PARTIAL_MARK.strip()} partial ({'; '.join(reasons)}): not comparable with full runs"
            + ("" if include_partial else "; left out of means and aggregates")
        )
        parts.append({"md": f"\n{note}\n", "html": f"<p>{note}</p>\n"}.get(fmt, f"\n# {note}\n"))
    full = records if include_partial else [r for r in records if partial_reason(r) is None]
    for title, header, rows in benchmark_tables(full, reported=reported):
        heading = {
            "md": f"\n### {title}\n\n",
            "csv": f"\n# {title}\n",
            "html": f"<h3>{title}</h3>\n",
        }
        parts.append(heading.get(fmt, f"\n% {title}\n") + render(header, rows, fmt))
    return "".join(parts)


def _cmd_prefetch(args: argparse.Namespace) -> int:
    from harness.hub import prefetch, prefetch_jobs
    from harness.registry import get_tasks

    for path in prefetch(prefetch_jobs(get_tasks(args.tasks)), args.data_dir):
        print(f"ready: {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from harness.results import iter_results

    skipped: list[tuple[Path, str]] = []
    records = [record for _, record in iter_results(args.results, skipped)]
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if not records:
        raise HarnessError(
            f"no valid result files under {args.results!r}"
            + (f" ({len(skipped)} skipped, named above)" if skipped else "")
            + "; run `python -m harness run` first or pass --results DIR"
        )
    if args.report_command == "plot":
        from harness.plots import X_AXES, write_plots

        axes = list(X_AXES) if args.x == "all" else [args.x]
        folder = args.output or f"{args.results}/plots"
        try:
            written = write_plots(records, folder, axes)
        except OSError as exc:
            raise HarnessError(
                f"cannot write plots to {folder} ({exc.strerror or exc}); choose another --output"
            ) from exc
        for path in written:
            print(path)
        return 0
    if args.report_command == "compare":
        from harness.report import compare, render

        header, rows = compare(records, args.a, args.b)
        if not rows:
            raise UsageError(
                f"no task has per-query scores for both {args.a!r} and {args.b!r}; check the names with report table"
            )
        print(render(header, rows, args.format), end="")
        return 0
    if args.report_command == "claims":
        from harness.claims import claim_rows, run_claims
        from harness.report import render

        tests = run_claims(args.spec, records, partial=args.partial)
        _emit(render(*claim_rows(tests), args.format), args.output)
        return 0
    if args.report_command == "match":
        from harness.report import match_scores

        missed: list[tuple[Path, str]] = []
        reference = [record for _, record in iter_results(args.reference, missed)]
        for path, why in missed:
            print(f"skipped {path}: {why}", file=sys.stderr)
        lines, matched = match_scores(records, reference, args.tolerance)
        print("\n".join(lines))
        return 0 if matched else 1
    text = _tables(
        records,
        args.format,
        reported=not args.no_reported,
        ci=args.ci,
        include_partial=args.include_partial,
    )
    _emit(text, args.output)
    return 0


def _emit(text: str, output: str | None) -> None:
    """Print, or write to --output with one clear error when that place is not writable."""
    if not output:
        print(text, end="")
        return
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise HarnessError(
            f"cannot write {output} ({exc.strerror or exc}); choose another --output"
        ) from exc


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
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_printed_already)
    try:
        if args.command == "list":
            return _cmd_list(args.what)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "prefetch":
            return _cmd_prefetch(args)
        if args.command == "train":
            return _cmd_train(args)
        return _cmd_report(args)
    except HarnessError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(
            "interrupted: finished shards and results are kept; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
