"""A study's claims, tested on result files: paired comparisons over queries, seeds kept apart,
and a Holm correction over every test of the study.

A claim file (TOML) names systems, a system being one model trained with several seeds (a
list of model names, in seed order) or one untrained model (`single_seed_trained` lists the
one-model systems that rest on a single random draw), and lists claims, each a set of comparisons
`A @ budget` > `B @ budget` on the given tasks, or a difference of two such gaps (`A - B` > `C -
D`: "the gain grows with model size"). For each comparison and task:

- per query, the score of a system is its mean over seeds; the difference is tested with a
  two-sided paired sign-flip randomisation test over queries, with a paired bootstrap interval;
- the difference is also computed seed by seed (seed i of A against seed i of B; a one-seed
  system is compared with every seed of the other), to show whether every seed agrees;
- p-values are adjusted with Holm's step-down method over all tests in the file.

Verdicts: *holds* (adjusted p < alpha, in the claimed direction, and every seed agrees),
*does not hold* (adjusted p < alpha against the claimed direction), *inconclusive* otherwise;
a comparison that rests on a single seed of a trained model can at most be *suggestive*.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import UsageError
from harness.reporting.report import split_entry
from harness.reporting.stats import paired

ALPHA = 0.05
FILE_KEYS = {"tasks", "single_seed_trained", "systems", "claims"}
CLAIM_KEYS = {"id", "text", "comparisons", "tasks"}


@dataclass
class Test:
    claim: str
    label: str
    task: str
    n: int
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    per_seed: list[float]
    single_seed: bool
    p_holm: float = 1.0
    verdict: str = ""


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


class Scores:
    """Per-query main scores by (model, task, budget label), read from result records. Partial
    results (`--limit`, datasets of another size) are left out; a row found twice is an error,
    since which copy to test would be a guess."""

    def __init__(self, records: list[dict[str, Any]]):
        from harness.results import partial_reason

        self.table: dict[tuple[str, str, str], dict[str, float]] = {}
        self.partial: dict[tuple[str, str], str] = {}  # (model, task) left out, and why
        for record in records:
            why = partial_reason(record)
            if why is not None:
                self.partial[(record["model"]["name"], record["task"]["name"])] = why
                continue
            for row in record["budgets"]:
                if row.get("per_query"):
                    key = (record["model"]["name"], record["task"]["name"], row["label"])
                    if key in self.table:
                        raise UsageError(
                            f"{key[0]} @ {key[2]} on {key[1]} appears twice under --results; "
                            f"point --results at one copy"
                        )
                    self.table[key] = row["per_query"]

    def get(self, model: str, task: str, label: str) -> dict[str, float]:
        try:
            return self.table[(model, task, label)]
        except KeyError:
            why = self.partial.get((model, task))
            if why is not None:
                raise UsageError(
                    f"{model} on {task} is a partial result ({why}), which claims leave out; "
                    "run it on the whole task (no --limit)"
                ) from None
            raise UsageError(
                f"no per-query scores for {model} @ {label} on {task}; run it first"
            ) from None

    def has(self, model: str, task: str, label: str) -> bool:
        return (model, task, label) in self.table


def _side(spec: str, systems: dict[str, list[str]]) -> tuple[list[str], str]:
    name, _, label = split_entry(spec)
    if name not in systems:
        raise UsageError(f"unknown system {name!r} in {spec!r}; define it under [systems]")
    if not label:
        raise UsageError(f"{spec!r} needs a budget, e.g. '{name} @ 16x64'")
    return systems[name], label


def _runs(scores: Scores, task: str, models: list[str], label: str, partial: bool):
    """{seed index: per-query scores} of a system (its list order is the seed order); with
    `partial`, only the seeds already run, else every one or an error naming the missing run."""
    return {
        i: scores.get(m, task, label)
        for i, m in enumerate(models)
        if not partial or scores.has(m, task, label)
    }


def _seed_gaps(
    scores: Scores, task: str, a: str, b: str, systems, partial: bool
) -> tuple[dict[int, dict[str, float]], bool]:
    """{seed: per-query A - B}, pairing seed i of A with seed i of B (a one-model system is set
    against every seed of the other), and whether any side has seeds at all."""
    (models_a, label_a), (models_b, label_b) = _side(a, systems), _side(b, systems)
    runs_a = _runs(scores, task, models_a, label_a, partial)
    runs_b = _runs(scores, task, models_b, label_b, partial)
    if len(models_a) == len(models_b):
        seeds = sorted(set(runs_a) & set(runs_b))
        pairs = {s: (runs_a[s], runs_b[s]) for s in seeds}
    elif len(models_b) == 1:
        pairs = {s: (run, runs_b[0]) for s, run in runs_a.items() if 0 in runs_b}
    elif len(models_a) == 1:
        pairs = {s: (runs_a[0], run) for s, run in runs_b.items() if 0 in runs_a}
    else:
        raise UsageError(
            f"{a!r} and {b!r} list {len(models_a)} and {len(models_b)} seeds; pair equal lists, "
            f"or one model against a list"
        )
    gaps = {s: {q: x[q] - y[q] for q in set(x) & set(y)} for s, (x, y) in pairs.items()}
    return gaps, max(len(models_a), len(models_b)) > 1


def _combine(
    left: dict[int, dict[str, float]], right: dict[int, dict[str, float]], seeded: tuple[bool, bool]
) -> dict[int, dict[str, float]]:
    """Seed by seed left - right; a seedless side (untrained or one-model systems) is set
    against every seed of the other."""
    if seeded[0] and seeded[1]:
        keys = sorted(set(left) & set(right))
        pairs = {s: (left[s], right[s]) for s in keys}
    elif seeded[0]:
        pairs = {s: (gap, right[0]) for s, gap in left.items() if 0 in right}
    else:
        pairs = {s: (left[0], gap) for s, gap in right.items() if 0 in left}
    return {s: {q: x[q] - y[q] for q in set(x) & set(y)} for s, (x, y) in pairs.items()}


def read_claims_file(path: str | Path) -> dict[str, Any]:
    """A claims TOML file, checked for the fields `run_claims` reads; errors name the file."""
    try:
        spec = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read claims file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"claims file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(spec) - FILE_KEYS)
    if unknown:
        raise UsageError(
            f"claims file {path}: unknown key {unknown[0]!r}; a claims file holds "
            f"{', '.join(sorted(FILE_KEYS))}"
        )
    claims = spec.get("claims", [])
    if not isinstance(claims, list) or not claims:
        raise UsageError(f"claims file {path} has no [[claims]] tables")
    for n, claim in enumerate(claims, 1):
        if not isinstance(claim, dict) or "id" not in claim or "comparisons" not in claim:
            raise UsageError(f"claims file {path}: claim {n} needs `id` and `comparisons`")
        extra = sorted(set(claim) - CLAIM_KEYS)
        if extra:
            raise UsageError(
                f"claims file {path}: claim {claim['id']!r} has unknown key {extra[0]!r}; a "
                f"claim holds {', '.join(sorted(CLAIM_KEYS))}"
            )
        if not isinstance(claim["comparisons"], list) or not claim["comparisons"]:
            raise UsageError(
                f"claims file {path}: claim {claim['id']!r} has no comparisons; list one or "
                'more, e.g. comparisons = [["a @ 16x64", "b @ 16x64"]]'
            )
        for comparison in claim["comparisons"]:
            if not isinstance(comparison, list) or len(comparison) not in (2, 4):
                raise UsageError(
                    f"claims file {path}: claim {claim['id']!r} has comparison {comparison!r}; "
                    "each is [a, b] or [a, b, c, d] of 'system @ budget' strings"
                )
        if not claim.get("tasks", spec.get("tasks")):
            raise UsageError(f"claims file {path}: claim {claim['id']!r} names no tasks")
    systems = spec.get("systems", {})
    if not isinstance(systems, dict):
        raise UsageError(f"claims file {path}: [systems] must be a table of name = [models]")
    for name, models in systems.items():
        # an empty system would make every claim naming it drop out of the report unseen
        if isinstance(models, str):
            models = [models]
        if (
            not isinstance(models, list)
            or not models
            or not all(isinstance(m, str) and m for m in models)
        ):
            raise UsageError(
                f"claims file {path}: system {name!r} is {models!r}; give it one or more model "
                f'names, e.g. {name} = ["metaembed-mini"]'
            )
        if len(set(models)) != len(models):
            # one model listed twice would count as seeds that agree with each other
            raise UsageError(
                f"claims file {path}: system {name!r} lists a model twice; a system's models "
                "are its seeds, one model each"
            )
    return spec


def run_claims(
    path: str | Path,
    records: list[dict[str, Any]],
    partial: bool = False,
    left_out: list[str] | None = None,
) -> list[Test]:
    """Every comparison of the claim file on every task. With `partial` (a study still
    running), systems are compared on the seeds already run, comparisons with no run yet are
    left out (named in `left_out`, when given, as "claim: comparison on task"), and the Holm
    correction covers the tests made so far."""
    spec = read_claims_file(path)
    systems: dict[str, list[str]] = {
        k: [v] if isinstance(v, str) else list(v) for k, v in spec.get("systems", {}).items()
    }
    single = set(spec.get("single_seed_trained", []))
    scores = Scores(records)
    tests: list[Test] = []
    for claim in spec.get("claims", []):
        for comparison in claim["comparisons"]:
            for task in claim.get("tasks", spec.get("tasks", [])):
                gaps, seeded = _seed_gaps(
                    scores, task, comparison[0], comparison[1], systems, partial
                )
                label = f"{comparison[0]} > {comparison[1]}"
                if len(comparison) == 4:  # a difference of two gaps
                    other, other_seeded = _seed_gaps(
                        scores, task, comparison[2], comparison[3], systems, partial
                    )
                    gaps = _combine(gaps, other, (seeded, other_seeded))
                    seeded = seeded or other_seeded
                    label = (
                        f"({comparison[0]} - {comparison[1]}) > ({comparison[2]} - {comparison[3]})"
                    )
                queries = sorted(set.intersection(*(set(g) for g in gaps.values()))) if gaps else []
                if not queries:  # not run yet (partial)
                    if left_out is not None:
                        left_out.append(f"{claim['id']}: {label} on {task}")
                    continue
                # Per query, the gap averaged over the paired seeds; tested over queries.
                gap = {q: float(np.mean([g[q] for g in gaps.values()])) for q in queries}
                result = paired(gap, dict.fromkeys(gap, 0.0))
                per_seed = [float(np.mean([gaps[s][q] for q in queries])) for s in sorted(gaps)]
                names = {side.partition("@")[0].strip() for side in comparison}
                tests.append(
                    Test(
                        claim=claim["id"],
                        label=label,
                        task=task,
                        n=result["n"],
                        difference=result["difference"],
                        ci_low=result["ci_low"],
                        ci_high=result["ci_high"],
                        p_value=result["p_value"],
                        per_seed=per_seed,
                        single_seed=bool(names & single) or (seeded and len(gaps) == 1),
                    )
                )
    for test, adjusted in zip(tests, holm([t.p_value for t in tests]), strict=True):
        test.p_holm = adjusted
        test.verdict = _verdict(test)
    return tests


def _verdict(test: Test) -> str:
    if test.p_holm >= ALPHA:
        return "inconclusive"
    if test.difference < 0:
        return "does not hold" + (" (one seed)" if test.single_seed else "")
    if test.single_seed:
        return "suggestive (one seed)"
    return "holds" if all(d > 0 for d in test.per_seed) else "inconclusive (seeds disagree)"


def claim_rows(tests: list[Test], fmt: str = "md") -> tuple[list[str], list[list[str]]]:
    """The claims table; verdicts in bold where the format has Markdown's bold."""
    header = [
        "claim",
        "comparison",
        "task",
        "queries",
        "difference (x100)",
        "95% CI",
        "per seed",
        "p",
        "p (Holm)",
        "verdict",
    ]
    rows = [
        [
            t.claim,
            t.label,
            t.task,
            str(t.n),
            f"{100 * t.difference:+.2f}",
            f"[{100 * t.ci_low:+.2f}, {100 * t.ci_high:+.2f}]",
            " ".join(f"{100 * d:+.1f}" for d in t.per_seed),
            f"{t.p_value:.4f}",
            f"{t.p_holm:.4f}",
            f"**{t.verdict}**" if fmt == "md" else t.verdict,
        ]
        for t in tests
    ]
    return header, rows
