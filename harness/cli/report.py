"""`python -m harness report table | html | plot | compare | claims | match | export | import`: everything derived from
result files, never from a second source of truth."""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path
from typing import Any

from harness.cli.common import emit
from harness.constants import DEFAULT_OUTPUT
from harness.errors import HarnessError, UsageError

FORMATS = ["md", "csv", "html", "latex"]


def add(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    report = sub.add_parser("report", parents=parents, help="tables from result files")
    rsub = report.add_subparsers(dest="report_command", required=True)
    results_help = f"results directory (default: {DEFAULT_OUTPUT})"
    table = rsub.add_parser("table", parents=parents, help="leaderboard table")
    table.add_argument("--results", default=DEFAULT_OUTPUT, help=results_help)
    table.add_argument("--format", default="md", choices=FORMATS)
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
    _seeds_flag(table)
    table.add_argument(
        "--ci",
        action="store_true",
        help="show each score ± the half-width of its 95%% bootstrap interval",
    )
    page = rsub.add_parser(
        "html",
        parents=parents,
        help="one self-contained HTML page: sortable leaderboard and curves",
    )
    page.add_argument("--results", default=DEFAULT_OUTPUT, help=results_help)
    page.add_argument(
        "--output", default=None, help="the HTML file (default: RESULTS/leaderboard.html)"
    )
    page.add_argument("--title", default="Leaderboard", help="the page's title")
    _seeds_flag(page)
    page.add_argument(
        "--no-reported",
        action="store_true",
        help="leave out the published scores (results/reported/)",
    )
    _add_analysis_verbs(rsub, parents)
    _add_mteb_verbs(rsub, parents)
    plot = rsub.add_parser("plot", parents=parents, help="quality-versus-cost plots")
    plot.add_argument("--results", default=DEFAULT_OUTPUT, help=results_help)
    plot.add_argument(
        "--x", default="all", choices=["all", "budget", "index_bytes", "flops", "latency"]
    )
    plot.add_argument(
        "--output", default=None, help="folder for the PNG and SVG files (default: RESULTS/plots)"
    )
    _seeds_flag(plot)


def _seeds_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds",
        choices=("each", "mean"),
        default="each",
        help="mean: a model trained with several seeds (NAME-s0, NAME-s1, ... of one recipe) "
        "as one row, the mean over seeds ± their standard deviation (default: each seed)",
    )


def _add_analysis_verbs(rsub: argparse._SubParsersAction, parents: list) -> None:
    cmp = rsub.add_parser(
        "compare",
        parents=parents,
        help="paired test of two `model @ budget` rows on their common tasks",
    )
    cmp.add_argument("a", help="e.g. 'metaembed-mini @ 16x64'")
    cmp.add_argument("b", help="e.g. 'metaembed-mini @ 1x1'")
    cmp.add_argument("--results", default=DEFAULT_OUTPUT)
    cmp.add_argument("--format", default="md", choices=FORMATS)
    claims = rsub.add_parser(
        "claims",
        parents=parents,
        help="a study's claims: paired tests across seeds, Holm-corrected",
    )
    claims.add_argument(
        "spec", help="claim file (TOML), e.g. results/libdocs/recipe-75steps/claims.toml"
    )
    claims.add_argument("--results", default=DEFAULT_OUTPUT)
    claims.add_argument("--format", default="md", choices=FORMATS)
    claims.add_argument("--output", default=None, help="write to FILE instead of stdout")
    claims.add_argument(
        "--partial",
        action="store_true",
        help="a study still running: compare on the seeds run so far, leave out what has none",
    )
    match = rsub.add_parser(
        "match",
        parents=parents,
        help="do the scores under --results match those of a reference folder?",
    )
    match.add_argument("reference", help="results folder to compare with")
    match.add_argument("--results", default=DEFAULT_OUTPUT)
    match.add_argument(
        "--tolerance", type=float, default=0.005, help="largest |difference| of a score in [0, 1]"
    )


def _add_mteb_verbs(rsub: argparse._SubParsersAction, parents: list) -> None:
    export = rsub.add_parser(
        "export",
        parents=parents,
        help="write results in mteb's results-repository layout (TaskResult files)",
    )
    export.add_argument("--format", default="mteb", choices=["mteb"])
    export.add_argument("--results", default=DEFAULT_OUTPUT)
    export.add_argument("--output", required=True, help="folder; files go under OUTPUT/results/")
    export.add_argument(
        "--allow-partial",
        action="store_true",
        help="also export --limit runs and datasets of another size (not comparable with mteb's)",
    )
    imp = rsub.add_parser(
        "import",
        parents=parents,
        help="published ViDoRe scores from a checkout of mteb's results repository",
    )
    imp.add_argument("--format", default="mteb", choices=["mteb"])
    imp.add_argument(
        "--from",
        dest="source",
        required=True,
        help="checkout of github.com/embeddings-benchmark/results",
    )
    imp.add_argument("--commit", required=True, help="the commit the checkout is at (recorded)")
    imp.add_argument(
        "--models", default=None, help="comma-separated model names (default: a fixed list)"
    )
    imp.add_argument("--output", default="results/reported/mteb_vidore.json")


def command(args: argparse.Namespace) -> int:
    for name in ("results", "output"):
        if getattr(args, name, None) == "":
            raise UsageError(f"--{name} is empty; name a folder or file, or leave the flag out")
    tolerance = getattr(args, "tolerance", 0.0)
    if not (0 <= tolerance <= 1):  # NaN fails too
        raise UsageError(f"--tolerance must be a number in [0, 1], got {tolerance}")
    if args.report_command == "import":
        return _import(args)
    records = _records(args.results)
    if getattr(args, "seeds", "each") == "mean":
        from harness.seeds import merge_seeds

        records = merge_seeds(records)
    verbs = {
        "plot": _plot,
        "compare": _compare,
        "claims": _claims,
        "match": _match,
        "html": _html,
        "export": _export,
    }
    return verbs.get(args.report_command, _table)(args, records)


def _records(folder: str) -> list[dict[str, Any]]:
    """Every valid result file under `folder`; each skipped file is named on stderr, and none
    valid at all is an error."""
    from harness.results import iter_results

    skipped: list[tuple[Path, str]] = []
    records = [record for _, record in iter_results(folder, skipped)]
    for path, why in skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if not records:
        raise HarnessError(
            f"no valid result files under {folder!r}"
            + (f" ({len(skipped)} skipped, named above)" if skipped else "")
            + "; run `python -m harness run` first or pass --results DIR"
        )
    return records


def _table(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    text = tables(
        records,
        args.format,
        reported=not args.no_reported,
        ci=args.ci,
        include_partial=args.include_partial,
    )
    emit(text, args.output)
    return 0


def _plot(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    from harness.reporting.plots import X_AXES, write_plots

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


def _html(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    from harness.reporting.web.page import render_page

    output = args.output or f"{args.results}/leaderboard.html"
    emit(render_page(records, args.title, not args.no_reported), output)
    print(output)
    return 0


def _export(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    from harness.registry import task_specs
    from harness.reporting.mteb_results import export_mteb

    try:
        done = export_mteb(records, task_specs(), args.output, args.allow_partial)
    except OSError as exc:
        raise HarnessError(
            f"cannot write to {args.output} ({exc.strerror or exc}); choose another --output"
        ) from exc
    for what, why in done.skipped:
        print(f"skipped {what}: {why}", file=sys.stderr)
    if not done.written:
        raise HarnessError(
            f"nothing to export from {args.results!r}: no full result of a task mteb has "
            f"(ViDoRe v1, v2, v3); the skipped results are named above"
        )
    print(f"{len(done.written)} mteb result files under {Path(args.output) / 'results'}")
    return 0


def _import(args: argparse.Namespace) -> int:
    import json

    from harness.registry import task_specs
    from harness.reporting.mteb_results import DEFAULT_MODELS, import_mteb

    if args.models is not None and not args.models.strip(", "):
        raise UsageError("--models is empty; name at least one, or leave the flag out")
    models = (
        [m.strip() for m in args.models.split(",") if m.strip()] if args.models else DEFAULT_MODELS
    )
    data = import_mteb(args.source, task_specs(), args.commit, models)
    for skip in data["skipped"]:  # also kept in the file, under "skipped"
        if "file" in skip:  # a file that could not be read (a model with none is named below)
            print(f"skipped {skip['file']}: {skip['why']}", file=sys.stderr)
    if not data["models"]:
        raise HarnessError(f"no ViDoRe result of {', '.join(models)} under {args.source}")
    emit(json.dumps(data, indent=1, allow_nan=False) + "\n", args.output)
    tasks = sum(len(entry["tasks"]) for entry in data["models"])
    print(f"{len(data['models'])} model folders, {tasks} task scores -> {args.output}")
    return 0


def _compare(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    from harness.reporting.report import compare, render

    header, rows = compare(records, args.a, args.b)
    if not rows:
        raise UsageError(
            f"no task has per-query scores for both {args.a!r} and {args.b!r}; check the names with report table"
        )
    print(render(header, rows, args.format), end="")
    return 0


def _claims(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    from harness.reporting.claims import claim_rows, run_claims
    from harness.reporting.report import render

    left_out: list[str] = []
    tests = run_claims(args.spec, records, partial=args.partial, left_out=left_out)
    text = render(*claim_rows(tests, args.format), args.format)
    if args.partial and args.format == "md":
        text = (
            "Read with `--partial`: each comparison uses the seeds run so far (one difference per"
            " seed in the per-seed column), and Holm's correction runs over the comparisons"
            " made.\n\n" + text
        )
    if left_out:
        # an interim reading must say what it does not yet test
        note = "left out, no seed run yet: " + "; ".join(left_out)
        print(note, file=sys.stderr)
        if args.format == "md":
            text += f"\n{note}\n"
    emit(text, args.output)
    return 0


def _match(args: argparse.Namespace, records: list[dict[str, Any]]) -> int:
    from harness.reporting.report import match_scores
    from harness.results import iter_results

    if not Path(args.reference).is_dir():
        raise HarnessError(
            f"reference {args.reference!r} is not a folder of result files; check the path"
        )
    missed: list[tuple[Path, str]] = []
    reference = [record for _, record in iter_results(args.reference, missed)]
    for path, why in missed:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if not reference:
        raise HarnessError(
            f"no valid result files under reference {args.reference!r}"
            + (f" ({len(missed)} skipped, named above)" if missed else "")
            + "; nothing to match against"
        )
    lines, matched = match_scores(records, reference, args.tolerance)
    print("\n".join(lines))
    if missed:  # part of the reference could not be compared: not a match
        print(
            f"error: {len(missed)} reference file(s) could not be read (named above); the match "
            "is incomplete",
            file=sys.stderr,
        )
        return 1
    return 0 if matched else 1


def tables(
    records: list[dict],
    fmt: str,
    reported: bool = False,
    ci: bool = False,
    include_partial: bool = False,
) -> str:
    """The leaderboard, then each benchmark's aggregate table present in the records. Partial
    results are marked and, unless `include_partial`, kept out of means and aggregates."""
    from harness.reporting.aggregate import benchmark_tables
    from harness.reporting.report import PARTIAL_MARK, leaderboard, render
    from harness.results import partial_reason

    parts = [render(*leaderboard(records, ci=ci, include_partial=include_partial), fmt)]
    reasons = sorted({why for r in records if (why := partial_reason(r)) is not None})
    if reasons:
        note = (
            f"{PARTIAL_MARK.strip()} partial ({'; '.join(reasons)}): not comparable with full runs"
            + ("" if include_partial else "; left out of means and aggregates")
        )
        parts.append(_note(note, fmt))
    full = records if include_partial else [r for r in records if partial_reason(r) is None]
    for title, header, rows in benchmark_tables(full, reported=reported):
        heading = {"md": f"\n### {title}\n\n", "html": f"<h3>{html.escape(title)}</h3>\n"}
        parts.append((heading.get(fmt) or _note(title, fmt)) + render(header, rows, fmt))
    return "".join(parts)


def _note(text: str, fmt: str) -> str:
    """A line between tables that keeps the output valid for its format: a paragraph in
    Markdown and HTML, a comment in LaTeX, a one-field row in CSV."""
    import csv
    import io

    if fmt == "md":
        return f"\n{text}\n"
    if fmt == "html":
        return f"<p>{html.escape(text)}</p>\n"
    if fmt == "latex":
        return "\n" + "".join(f"% {line}\n" for line in text.splitlines())
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([f"# {text}"])
    return "\n" + buffer.getvalue()
