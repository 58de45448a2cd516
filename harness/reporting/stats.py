"""Uncertainty over queries: percentile-bootstrap confidence intervals of a mean score, and a
paired test between two systems (or two budgets) scored on the same queries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (queries resampled with replacement)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_resamples, len(x)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired(
    a: Mapping[str, float], b: Mapping[str, float], n_resamples: int = 10000, seed: int = 0
) -> dict[str, float]:
    """Mean difference a - b over the queries both have, a paired bootstrap interval of it, and
    a two-sided paired randomisation (sign-flip) test p-value."""
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two runs share no query")
    d = np.array([a[q] - b[q] for q in common], dtype=np.float64)
    rng = np.random.default_rng(seed)
    low, high = bootstrap_ci(d, n_resamples=n_resamples, seed=seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, len(d)))
    flipped = np.abs((signs * d).mean(axis=1))
    p = (1 + int((flipped >= abs(d.mean()) - 1e-12).sum())) / (n_resamples + 1)
    return {
        "n": len(common),
        "difference": float(d.mean()),
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
    }
