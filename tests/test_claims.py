"""Claims of a study tested on result records: Holm's correction by hand, verdicts on
constructed per-query scores, and the rerun-matches-reference check."""

from __future__ import annotations

import random

import pytest

from harness.reporting.claims import holm, run_claims
from harness.reporting.report import match_scores

QUERIES = [f"q{i}" for i in range(200)]


def record(model: str, task: str, scores: dict[str, dict[str, float]]) -> dict:
    return {
        "model": {"name": model},
        "task": {"name": task},
        "budgets": [
            {"label": label, "main_score": sum(pq.values()) / len(pq), "per_query": pq}
            for label, pq in scores.items()
        ],
    }


def scores(base: float, seed: int, shift: float = 0.0) -> dict[str, float]:
    rng = random.Random(seed)
    return {q: min(1.0, max(0.0, base + shift + rng.gauss(0, 0.1))) for q in QUERIES}


def test_holm_adjustment_by_hand():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 0.5 x 2 caps at 1; monotone


def test_verdicts_on_constructed_scores(tmp_path):
    records = []
    for s in range(3):
        records.append(record(f"base-s{s}", "t", {"1x1": scores(0.5, 100 + s)}))
        records.append(record(f"better-s{s}", "t", {"1x1": scores(0.5, 100 + s, shift=0.1)}))
        records.append(record(f"same-s{s}", "t", {"1x1": scores(0.5, 200 + s)}))
        # two seeds far ahead, one behind: ahead on average, but the seeds disagree
        mixed = 0.15 if s < 2 else -0.03
        records.append(record(f"mixed-s{s}", "t", {"1x1": scores(0.5, 100 + s, shift=mixed)}))
    records.append(record("solo", "t", {"1x1": scores(0.5, 100, shift=0.1)}))
    records.append(record("solo-base", "t", {"1x1": scores(0.5, 100)}))
    (tmp_path / "claims.toml").write_text(
        'tasks = ["t"]\nsingle_seed_trained = ["solo"]\n[systems]\n'
        + "".join(
            f'{name} = ["{name}-s0", "{name}-s1", "{name}-s2"]\n'
            for name in ("base", "better", "same", "mixed")
        )
        + 'solo = ["solo"]\nsolo-base = ["solo-base"]\n'
        '[[claims]]\nid = "c"\ncomparisons = [\n'
        '  ["better @ 1x1", "base @ 1x1"],\n'
        '  ["base @ 1x1", "better @ 1x1"],\n'
        '  ["same @ 1x1", "base @ 1x1"],\n'
        '  ["mixed @ 1x1", "base @ 1x1"],\n'
        '  ["solo @ 1x1", "solo-base @ 1x1"],\n'
        '  ["solo @ 1x1", "solo-base @ 1x1", "better @ 1x1", "base @ 1x1"],\n'
        "]\n"
    )
    tests = run_claims(tmp_path / "claims.toml", records)
    verdicts = [t.verdict for t in tests]
    assert verdicts[:5] == [
        "holds",
        "does not hold",
        "inconclusive",
        "inconclusive (seeds disagree)",
        "suggestive (one seed)",
    ]
    better = tests[0]
    # the per-query difference of seed means, computed directly
    direct = sum(
        sum(
            r["budgets"][0]["per_query"][q] for r in records if r["model"]["name"] == f"better-s{s}"
        )
        - sum(
            r["budgets"][0]["per_query"][q] for r in records if r["model"]["name"] == f"base-s{s}"
        )
        for q in QUERIES
        for s in range(3)
    ) / (3 * len(QUERIES))
    assert better.difference == pytest.approx(direct)
    assert len(better.per_seed) == 3 and all(d > 0.05 for d in better.per_seed)
    assert tests[5].difference == pytest.approx(tests[4].difference - better.difference)
    assert all(t.p_holm >= t.p_value for t in tests)


def test_an_unknown_system_or_missing_run_is_a_clear_error(tmp_path):
    from harness.errors import UsageError

    records = [record("a", "t", {"1x1": scores(0.5, 1)})]
    (tmp_path / "c.toml").write_text(
        'tasks = ["t"]\n[systems]\na = ["a"]\n[[claims]]\nid = "x"\ncomparisons = [["a @ 1x1", "b @ 1x1"]]\n'
    )
    with pytest.raises(UsageError, match="unknown system 'b'"):
        run_claims(tmp_path / "c.toml", records)
    (tmp_path / "c.toml").write_text(
        'tasks = ["t"]\n[systems]\na = ["a"]\n[[claims]]\nid = "x"\ncomparisons = [["a @ 4x8", "a @ 1x1"]]\n'
    )
    with pytest.raises(UsageError, match="no per-query scores for a @ 4x8"):
        run_claims(tmp_path / "c.toml", records)


def test_match_reports_rows_that_differ_or_are_missing():
    ref = [record("m", "t", {"1x1": {"q": 0.5}, "2x4": {"q": 0.6}})]
    same = [record("m", "t", {"1x1": {"q": 0.5}, "2x4": {"q": 0.6}})]
    lines, ok = match_scores(same, ref, tolerance=0.005)
    assert ok and lines[-1].startswith("matches: 2 of 2")
    off = [record("m", "t", {"1x1": {"q": 0.52}})]
    lines, ok = match_scores(off, ref, tolerance=0.005)
    assert not ok
    assert "differs: m @ 1x1 on t: 52.00 vs 50.00" in lines
    assert "missing: m @ 2x4 on t" in lines


def test_a_partial_study_compares_the_seeds_run_so_far(tmp_path):
    records = [
        record("a-s0", "t", {"1x1": scores(0.5, 1, shift=0.1)}),
        record("b-s0", "t", {"1x1": scores(0.5, 1)}),
        record("z", "t", {"1x1": scores(0.5, 2), "4x8": scores(0.5, 2, shift=0.1)}),
    ]
    (tmp_path / "c.toml").write_text(
        'tasks = ["t"]\n[systems]\na = ["a-s0", "a-s1"]\nb = ["b-s0", "b-s1"]\n'
        'c = ["c-s0"]\nz = ["z"]\n[[claims]]\nid = "x"\n'
        'comparisons = [["a @ 1x1", "b @ 1x1"], ["c @ 1x1", "b @ 1x1"], ["z @ 4x8", "z @ 1x1"]]\n'
    )
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="no per-query scores for a-s1"):
        run_claims(tmp_path / "c.toml", records)
    left_out: list[str] = []
    tests = run_claims(tmp_path / "c.toml", records, partial=True, left_out=left_out)
    assert [t.label for t in tests] == ["a @ 1x1 > b @ 1x1", "z @ 4x8 > z @ 1x1"]  # c: no run
    assert left_out == ["x: c @ 1x1 > b @ 1x1 on t"]
    assert tests[0].verdict == "suggestive (one seed)" and len(tests[0].per_seed) == 1
    assert tests[1].verdict == "holds"  # untrained: nothing to vary


def test_seeds_are_paired_by_their_place_in_the_list(tmp_path):
    # a has seeds 0 and 2 so far, b seeds 0 and 1: only seed 0 can be paired
    records = [
        record("a-s0", "t", {"1x1": scores(0.5, 1, shift=0.1)}),
        record("a-s2", "t", {"1x1": scores(0.5, 3, shift=0.3)}),
        record("b-s0", "t", {"1x1": scores(0.5, 1)}),
        record("b-s1", "t", {"1x1": scores(0.5, 2)}),
    ]
    (tmp_path / "c.toml").write_text(
        'tasks = ["t"]\n[systems]\na = ["a-s0", "a-s1", "a-s2"]\nb = ["b-s0", "b-s1", "b-s2"]\n'
        '[[claims]]\nid = "x"\ncomparisons = [["a @ 1x1", "b @ 1x1"]]\n'
    )
    (test,) = run_claims(tmp_path / "c.toml", records, partial=True)
    a0 = records[0]["budgets"][0]["per_query"]
    b0 = records[2]["budgets"][0]["per_query"]
    assert test.per_seed == pytest.approx([sum(a0[q] - b0[q] for q in QUERIES) / len(QUERIES)])
    assert test.difference == pytest.approx(test.per_seed[0])
    assert test.verdict == "suggestive (one seed)"


def test_partial_results_are_not_tested_and_duplicates_are_refused(tmp_path):
    from harness.errors import UsageError

    full = record("a", "t", {"1x1": scores(0.5, 1), "4x8": scores(0.5, 1, shift=0.1)})
    limited = record("b", "t", {"1x1": scores(0.5, 2)})
    limited["config"] = {"limit": 5}
    (tmp_path / "c.toml").write_text(
        'tasks = ["t"]\n[systems]\na = ["a"]\nb = ["b"]\n[[claims]]\nid = "x"\n'
        'comparisons = [["a @ 4x8", "b @ 1x1"]]\n'
    )
    with pytest.raises(UsageError, match=r"b on t is a partial result \(limited to 5 queries\)"):
        run_claims(tmp_path / "c.toml", [full, limited])
    with pytest.raises(UsageError, match="appears twice"):
        run_claims(tmp_path / "c.toml", [full, full])


def test_match_counts_a_nan_or_a_duplicate_as_a_mismatch():
    ref = [record("m", "t", {"1x1": {"q": 0.5}})]
    nan = [record("m", "t", {"1x1": {"q": float("nan")}})]
    lines, ok = match_scores(nan, ref, tolerance=0.005)
    assert not ok and "not a number" in lines[0]
    lines, ok = match_scores(ref + ref, ref, tolerance=0.005)
    assert not ok and lines[0].startswith("duplicate in the results")
