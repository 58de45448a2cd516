"""A study's claims, tested on result files: paired comparisons over queries, seeds kept apart,
and a Holm correction over every test of the study.

A claim file (TOML) names systems, a system being one model trained with several seeds (a
list of model names) or one untrained model, and lists claims, each a set of comparisons
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
from harness.stats import paired

ALPHA = 0.05


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
    """Per-query main scores by (model, task, budget label), read from result records."""

    def __init__(self, records: list[dict[str, Any]]):
        self.table: dict[tuple[str, str, str], dict[str, float]] = {}
        for record in records:
            for row in record["budgets"]:
                if row.get("per_query"):
                    key = (record["model"]["name"], record["task"]["name"], row["label"])
                    self.table[key] = row["per_query"]

    def get(self, model: str, task: str, label: str) -> dict[str, float]:
        try:
            return self.table[(model, task, label)]
        except KeyError:
            raise UsageError(
                f"no per-query scores for {model} @ {label} on {task}; run it first"
            ) from None

    def has(self, model: str, task: str, label: str) -> bool:
        return (model, task, label) in self.table


def _side(spec: str, systems: dict[str, list[str]]) -> tuple[list[str], str]:
    name, _, label = (part.strip() for part in spec.partition("@"))
    if name not in systems:
        raise UsageError(f"unknown system {name!r} in {spec!r}; define it under [systems]")
    if not label:
        raise UsageError(f"{spec!r} needs a budget, e.g. '{name} @ 16x64'")
    return systems[name], label


def _available(scores: Scores, task: str, models: list[str], label: str, partial: bool):
    """The runs of a system's models; with `partial`, only those already run (seeds still
    training are left out), else every one or an error naming the missing run."""
    if not partial:
        return [scores.get(m, task, label) for m in models]
    return [scores.get(m, task, label) for m in models if scores.has(m, task, label)]


def _gap(
    scores: Scores, task: str, a: str, b: str, systems, partial: bool = False
) -> tuple[dict[str, float], list]:
    """Per-query (mean over seeds of A) - (mean over seeds of B), and the per-seed runs."""
    (models_a, label_a), (models_b, label_b) = _side(a, systems), _side(b, systems)
    runs_a = _available(scores, task, models_a, label_a, partial)
    runs_b = _available(scores, task, models_b, label_b, partial)
    if not runs_a or not runs_b:
        return {}, []
    common = sorted(set.intersection(*(set(r) for r in runs_a + runs_b)))
    gap = {
        q: float(np.mean([r[q] for r in runs_a]) - np.mean([r[q] for r in runs_b])) for q in common
    }
    pairs = (
        list(zip(runs_a, runs_b, strict=True))
        if len(runs_a) == len(runs_b)
        else [(x, y) for x in runs_a for y in runs_b]
    )
    return gap, pairs


def run_claims(
    path: str | Path, records: list[dict[str, Any]], partial: bool = False
) -> list[Test]:
    """Every comparison of the claim file on every task. With `partial` (a study still
    running), systems are compared on the seeds already run, comparisons with no run yet are
    left out, and the Holm correction covers the tests made so far."""
    spec = tomllib.loads(Path(path).read_text())
    systems: dict[str, list[str]] = {
        k: [v] if isinstance(v, str) else list(v) for k, v in spec.get("systems", {}).items()
    }
    single = set(spec.get("single_seed_trained", []))
    untrained = set(spec.get("untrained", []))
    scores = Scores(records)
    tests: list[Test] = []
    for claim in spec.get("claims", []):
        for comparison in claim["comparisons"]:
            for task in claim.get("tasks", spec.get("tasks", [])):
                gap, pairs = _gap(scores, task, comparison[0], comparison[1], systems, partial)
                label = f"{comparison[0]} > {comparison[1]}"
                if len(comparison) == 4:  # a difference of two gaps
                    other, other_pairs = _gap(
                        scores, task, comparison[2], comparison[3], systems, partial
                    )
                    gap = {q: gap[q] - other[q] for q in sorted(set(gap) & set(other))}
                    label = (
                        f"({comparison[0]} - {comparison[1]}) > ({comparison[2]} - {comparison[3]})"
                    )
                    per_seed = [
                        _mean_gap(x, y) - _mean_gap(u, v)
                        for (x, y) in pairs
                        for (u, v) in other_pairs
                    ]
                else:
                    per_seed = [_mean_gap(x, y) for x, y in pairs]
                if not gap:
                    continue  # not run yet (partial)
                zero = dict.fromkeys(gap, 0.0)
                result = paired(gap, zero)
                names = {n for side in comparison for n in [side.partition("@")[0].strip()]}
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
                        single_seed=bool(names & single)
                        or (len(pairs) == 1 and not names <= untrained),
                    )
                )
    for test, adjusted in zip(tests, holm([t.p_value for t in tests]), strict=True):
        test.p_holm = adjusted
        test.verdict = _verdict(test)
    return tests


def _mean_gap(a: dict[str, float], b: dict[str, float]) -> float:
    common = set(a) & set(b)
    return float(np.mean([a[q] - b[q] for q in common]))


def _verdict(test: Test) -> str:
    if test.p_holm >= ALPHA:
        return "inconclusive"
    if test.difference < 0:
        return "does not hold" + (" (one seed)" if test.single_seed else "")
    if test.single_seed:
        return "suggestive (one seed)"
    return "holds" if all(d > 0 for d in test.per_seed) else "inconclusive (seeds disagree)"


def claim_rows(tests: list[Test]) -> tuple[list[str], list[list[str]]]:
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
            f"**{t.verdict}**",
        ]
        for t in tests
    ]
    return header, rows
