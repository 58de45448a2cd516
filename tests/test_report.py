"""Tables and plots derived from result records."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.reporting.aggregate import benchmark_tables
from harness.reporting.plots import curve_points, pareto, plot_curves
from harness.reporting.report import leaderboard, render

EXAMPLES = Path(__file__).parent / "data" / "example_results"


def record(model, task, rows, benchmark="toy", category=None, split=None):
    return {
        "model": {"name": model},
        "task": {"name": task, "benchmark": benchmark, "category": category, "split": split},
        "budgets": [
            {
                "label": label,
                "query": q,
                "candidate": c,
                "main_score": score,
                "metrics": {},
                "cost": {
                    "vectors_per_query": q or 30,
                    "vectors_per_candidate": c or 300,
                    "index_bytes_per_candidate": 4 * 8 * (c or 300),
                    "scoring_flops_per_pair": 2 * 8 * (q or 30) * (c or 300),
                    "scoring_ms_per_query": 0.1,
                    "n_candidates_scored": 10,
                },
            }
            for label, q, c, score in rows
        ],
    }


RECORDS = [
    record("meta", "a", [("1x1", 1, 1, 0.50), ("16x64", 16, 64, 0.70)]),
    record("meta", "b", [("1x1", 1, 1, 0.30), ("16x64", 16, 64, 0.60)]),
    record("single", "a", [("1x1", 1, 1, 0.55)]),
    record("colbert", "a", [("allxall", None, None, 0.65)]),
]


def test_leaderboard_rows_means_and_incomplete_coverage():
    header, rows = leaderboard(RECORDS)
    assert header[:4] == ["model @ budget", "a", "b", "mean"]
    by_label = {r[0]: r for r in rows}
    assert by_label["meta @ 1x1"][1:4] == ["50.00", "30.00", "40.00"]
    assert by_label["meta @ 16x64"][3] == "65.00"
    assert by_label["single @ 1x1"][2:4] == ["-", "55.00 (1/2)"]  # flagged, never a silent mean
    assert [r[0] for r in rows] == [
        "colbert @ allxall",
        "meta @ 1x1",
        "meta @ 16x64",
        "single @ 1x1",
    ]
    latex = render(header, rows, "latex")
    assert latex.startswith("\\begin{tabular}") and "meta @ 16x64 & 70.00" in latex


def test_curves_frontier_and_plot_series():
    curves = curve_points(RECORDS, "index_bytes", task="a")
    assert [(lbl, x) for lbl, x, _ in curves["meta"]] == [("1x1", 32.0), ("16x64", 2048.0)]
    assert [y for _, _, y in curves["meta"]] == pytest.approx([50.0, 70.0])
    assert pareto([(32.0, 50.0), (32.0, 55.0), (2048.0, 70.0), (9600.0, 65.0)]) == [
        (32.0, 55.0),
        (2048.0, 70.0),
    ]
    fig = plot_curves(RECORDS, "index_bytes", task="a")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "bytes" in ax.get_xlabel()
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["meta"].get_xdata()) == [32.0, 2048.0] and list(
        lines["meta"].get_ydata()
    ) == [50.0, 70.0]
    frontier = lines["Pareto frontier"]
    assert list(frontier.get_xdata()) == [32.0, 2048.0]
    assert list(frontier.get_ydata()) == pytest.approx([55.0, 70.0])
    scatter_labels = {c.get_label() for c in ax.collections}
    assert {"single", "colbert"} <= scatter_labels
    budget_fig = plot_curves(RECORDS, "budget")
    assert [t.get_text() for t in budget_fig.axes[0].get_xticklabels()] == [
        "1x1",
        "16x64",
        "allxall",
    ]


def test_mmeb_aggregates_and_reported_rows_are_labelled():
    mmeb = [
        record("m", "mmeb-ImageNet-1K", [("1x1", 1, 1, 0.8)], "mmeb", "classification", "IND"),
        record("m", "mmeb-OK-VQA", [("1x1", 1, 1, 0.4)], "mmeb", "vqa", "IND"),
    ]
    ((title, header, rows),) = benchmark_tables(mmeb, reported=True)
    assert title.startswith("MMEB") and rows[0][:2] == ["m @ 1x1", "80.00 (1/10)"]
    assert (
        rows[0][header.index("IND")] == "60.00 (2/20)"
        and rows[0][header.index("Overall")] == "60.00 (2/36)"
    )
    reported = [r for r in rows if r[0].endswith("(reported)")]
    assert any(
        r[0] == "MetaEmbed-7B @ 16x64 (reported)" and r[header.index("Overall")] == "76.60"
        for r in reported
    )


@pytest.mark.parametrize("fmt", ["md", "csv", "html", "latex"])
def test_every_format_renders_every_row(fmt):
    header, rows = leaderboard(copy.deepcopy(RECORDS))
    text = render(header, rows, fmt)
    assert all(r[0].replace("_", "\\_") in text or r[0] in text for r in rows)


def test_bootstrap_interval_agrees_with_scipy():
    import numpy as np
    from scipy.stats import bootstrap

    from harness.reporting.stats import bootstrap_ci

    values = np.random.default_rng(3).binomial(1, 0.6, size=300).astype(float)
    ours = bootstrap_ci(values, n_resamples=20000, seed=1)
    theirs = bootstrap(
        (values,), np.mean, n_resamples=20000, method="percentile", random_state=1
    ).confidence_interval
    assert ours[0] == pytest.approx(theirs.low, abs=0.006) and ours[1] == pytest.approx(
        theirs.high, abs=0.006
    )
    assert ours[0] < values.mean() < ours[1]


def test_paired_test_detects_a_real_difference_and_not_a_null_one():
    from harness.reporting.stats import paired

    a = {f"q{i}": 1.0 if i % 3 else 0.0 for i in range(90)}
    better = dict(a, **{f"q{i}": 1.0 for i in range(0, 90, 3)})
    same = paired(a, dict(a))
    assert same["difference"] == 0.0 and same["p_value"] == 1.0
    result = paired(better, a)
    assert result["difference"] == pytest.approx(30 / 90) and result["p_value"] < 0.001
    assert result["ci_low"] > 0


def test_ci_cells_and_compare_rows():
    from harness.reporting.report import compare

    records = copy.deepcopy(RECORDS)
    for rec in records:
        for row in rec["budgets"]:
            n = 40
            row["per_query"] = {
                f"q{i}": 1.0 if i < row["main_score"] * n else 0.0 for i in range(n)
            }
    header, rows = leaderboard(records, ci=True)
    assert rows[1][1].startswith("50.00 ± ")
    header, rows = compare(records, "meta @ 16x64", "meta @ 1x1")
    assert [r[0] for r in rows] == ["a", "b"] and rows[0][2] == "+20.00"


def test_size_plot_draws_a_line_per_family_through_the_sizes():
    from harness.reporting.plots import plot_per_task, plot_sizes

    def rec(name, family, objective, n_params, task, scores):
        training = {"objective": objective} if objective else None
        return {
            "model": {"name": name, "family": family, "n_params": n_params, "training": training},
            "task": {"name": task},
            "budgets": [{"label": b, "main_score": v} for b, v in scores.items()],
        }

    records = [
        # MetaEmbed (MMR) at 22M: two seeds, two tasks; at 110M: one seed
        rec("me-small-s0", "metaembed", "mmr", 22_713_216, "a", {"1x1": 0.5, "16x64": 0.6}),
        rec("me-small-s0", "metaembed", "mmr", 22_713_216, "b", {"1x1": 0.4, "16x64": 0.8}),
        rec("me-small-s1", "metaembed", "mmr", 22_713_216, "a", {"1x1": 0.5, "16x64": 0.5}),
        rec("me-small-s1", "metaembed", "mmr", 22_713_216, "b", {"1x1": 0.4, "16x64": 0.7}),
        rec("me-large", "metaembed", "mmr", 109_486_464, "a", {"16x64": 0.9}),
        rec("sv-small", "single", "mmr", 22_713_216, "a", {"1x1": 0.3}),
        rec("sv-large", "single", "mmr", 109_486_464, "a", {"1x1": 0.4}),
        rec("untrained", "single", None, 22_713_216, "a", {"1x1": 0.2}),
    ]
    ax = plot_sizes(records, "16x64").axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {
        "metaembed (MMR) @ 16x64",
        "single (fine-tuned) @ 1x1",
        "single (not fine-tuned) @ 1x1",
    }
    me = lines["metaembed (MMR) @ 16x64"]
    assert list(me.get_xdata()) == [22_713_216, 109_486_464]
    assert list(me.get_ydata()) == pytest.approx([(60 + 80 + 50 + 70) / 4, 90.0])
    assert list(lines["single (fine-tuned) @ 1x1"].get_ydata()) == pytest.approx([30.0, 40.0])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["23M", "109M"]
    assert ax.get_xscale() == "log" and "model size" in ax.get_title()
    # the backbone's size when recorded: adapters and meta tokens do not move a point
    records[0]["model"]["backbone_params"] = 109_486_464
    moved = plot_sizes(records[:1], "16x64").axes[0].get_lines()[0]
    assert list(moved.get_xdata()) == [109_486_464]
    fig = plot_per_task(copy.deepcopy(RECORDS))
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    assert titles == ["a", "b"]


@pytest.mark.parametrize("fmt", ["md", "csv"])
def test_tables_match_golden_files_of_stored_results(fmt):
    """Stored example results (tests/data/example_results) give exactly the stored tables, so a
    silent change in a table, an aggregate or the result reader fails loudly."""
    from pathlib import Path

    from harness.cli.report import tables as _tables
    from harness.results import iter_results

    data = Path(__file__).parent / "data"
    records = [r for _, r in iter_results(data / "example_results")]
    assert len(records) == 4
    assert _tables(records, fmt) == (data / f"golden_leaderboard.{fmt}").read_text()


def test_curves_carry_bootstrap_bands_when_per_query_scores_exist():
    from matplotlib.collections import PolyCollection

    records = copy.deepcopy(RECORDS)
    for rec in records:
        for row in rec["budgets"]:
            row["per_query"] = {
                f"q{i}": 1.0 if i < row["main_score"] * 40 else 0.0 for i in range(40)
            }
    ax = plot_curves(records, "index_bytes", task="a").axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1  # the one multi-budget model on task a; points get error bars
    lower = bands[0].get_paths()[0].vertices[:, 1].min()
    assert 30.0 < lower < 50.0


def test_reports_name_each_broken_result_file_and_fail_when_none_is_valid(tmp_path):
    import subprocess
    import sys

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "truncated.json").write_text('{"schema_version": 1, "budg')
    (tmp_path / "m" / "future.json").write_text('{"schema_version": 7, "budgets": []}')
    (tmp_path / "m" / "train_config.json").write_text('{"steps": 3}')  # not a result: ignored

    def report(*args):
        return subprocess.run(
            [sys.executable, "-m", "harness", "report", *args, "--results", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    for args in (["table"], ["plot"], ["compare", "a @ 1x1", "b @ 1x1"]):
        out = report(*args)
        assert out.returncode == 1, out.stderr
        assert "truncated.json: is not valid JSON" in out.stderr
        assert "future.json: has schema_version 7" in out.stderr
        assert "train_config.json" not in out.stderr
        assert "no valid result files" in out.stderr
    good = json.loads((EXAMPLES / "test-hash" / "toy-corpus.json").read_text())
    (tmp_path / "m" / "good.json").write_text(json.dumps(good))
    out = report("table", "--no-reported")
    assert out.returncode == 0 and "| test-hash @ " in out.stdout
    assert "skipped" in out.stderr and "truncated.json" in out.stderr


def test_partial_results_are_marked_and_kept_out_of_means_and_aggregates():
    from harness.cli.report import tables as _tables

    full = record("m", "a", [("1x1", 1, 1, 0.60)], benchmark="vidore-v1")
    limited = record("m", "b", [("1x1", 1, 1, 0.90)], benchmark="vidore-v1")
    limited["config"] = {"limit": 2}
    resized = record("n", "a", [("1x1", 1, 1, 0.75)], benchmark="vidore-v1")
    resized["task"]["size_check"] = {"expected": {}, "loaded": {}, "official_size": False}
    header, rows = leaderboard([full, limited, resized])
    by_row = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert by_row["m @ 1x1"]["b"] == "90.00 †" and by_row["m @ 1x1"]["a"] == "60.00"
    assert by_row["m @ 1x1"]["mean"] == "60.00 (1/2)"  # the partial score is not averaged in
    assert by_row["n @ 1x1"]["a"] == "75.00 †" and by_row["n @ 1x1"]["mean"] == "-"
    header, rows = leaderboard([full, limited], include_partial=True)
    assert rows[0][header.index("mean")] == "75.00"
    text = _tables([full, limited, resized], "md")
    assert "† partial (dataset size differs from the published one; limited to 2 queries)" in text
    aggregate = text.split("### ViDoRe v1")[1]
    assert "| m @ 1x1 |" in aggregate and "| n @ 1x1 |" not in aggregate  # n: partial only
    counted = _tables([full, limited, resized], "md", include_partial=True)
    assert "| n @ 1x1 |" in counted.split("### ViDoRe v1")[1]


def test_latency_curve_joins_budgets_in_cost_order_and_a_lone_frontier_point_shows():
    slow_small = record(
        "meta", "a", [("1x1", 1, 1, 0.50), ("2x4", 2, 4, 0.60), ("16x64", 16, 64, 0.70)]
    )
    for row, ms in zip(slow_small["budgets"], (0.9, 0.2, 0.5), strict=True):
        row["cost"]["scoring_ms_per_query"] = ms  # under load, 1x1 measured slowest
    ax = plot_curves([slow_small], "latency", task="a").axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["meta"].get_xdata()) == [0.2, 0.5, 0.9]
    assert list(lines["meta"].get_ydata()) == pytest.approx([60.0, 70.0, 50.0])
    lone = plot_curves([record("single", "a", [("1x1", 1, 1, 0.55)])], "index_bytes", task="a")
    frontier = {line.get_label(): line for line in lone.axes[0].get_lines()}["Pareto frontier"]
    assert list(frontier.get_xdata()) == [32.0] and frontier.get_marker() == "o"
    assert frontier.get_markersize() > 8 and frontier.get_markerfacecolor() == "none"


def test_every_model_has_its_own_colour_lines_and_points_alike():
    from matplotlib.colors import to_hex

    ax = plot_curves(RECORDS, "index_bytes", task="a").axes[0]
    colours = {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()}
    for collection in ax.collections:
        if collection.get_label() in ("single", "colbert"):
            colours[collection.get_label()] = to_hex(collection.get_facecolor()[0])
    models = {k: v for k, v in colours.items() if k != "Pareto frontier"}
    assert set(models) == {"meta", "single", "colbert"}
    assert len(set(models.values())) == 3


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda r: r.pop("task"), "has no 'task'"),
        (lambda r: r["budgets"][0].pop("cost"), "without 'cost'"),
        (lambda r: r.update(schema_version=2), "schema_version 2"),
    ],
)
def test_a_record_missing_what_readers_need_is_named_and_skipped(tmp_path, damage, why):
    from harness.results import iter_results

    good = record("meta", "a", [("1x1", 1, 1, 0.5)])
    good["schema_version"] = 1
    bad = json.loads(json.dumps(good))
    damage(bad)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.json").write_text(json.dumps(good))
    (tmp_path / "m" / "b.json").write_text(json.dumps(bad))
    skipped: list = []
    found = [p.name for p, _ in iter_results(tmp_path, skipped)]
    assert found == ["a.json"] and [p.name for p, _ in skipped] == ["b.json"]
    assert why in skipped[0][1]


def test_seeds_read_as_one_model_by_hand():
    from harness.reporting.report import leaderboard
    from harness.seeds import merge_seeds

    def rec(name, seed, scores, per_query, training_seed=None, lr=2e-4, **settings):
        return {
            "model": {
                "name": name,
                "args": {"checkpoint": f"ckpt/{name}", "max_length": 512},
                "backbone": "minilm",
                "n_params": 1000,
                "training": {"seed": seed if training_seed is None else training_seed, "lr": lr,
                             "output": f"ckpt/{name}", "model_args": {"name": name},
                             "normalize_scores": False, **settings},
            },
            "task": {"name": "t"},
            "config": {},
            "budgets": [
                {"label": label, "main_score": score, "metrics": {"ndcg_at_5": score},
                 "per_query": pq, "cost": {"scoring_ms_per_query": 1.0 + seed,
                                           "vectors_per_candidate": 1, "index_bytes_per_candidate": 4,
                                           "scoring_flops_per_pair": 2}}
                for (label, score), pq in zip(scores.items(), per_query, strict=True)
            ],
        }  # fmt: skip

    records = [
        rec("me-s0", 0, {"1x1": 0.40, "16x64": 0.50}, [{"a": 0.4}, {"a": 0.5}]),
        # a curve run: evaluated on dev while training, written before --normalize-scores
        # existed (None: its default, off); the same recipe as the seeds trained without both
        rec(
            "me-s1",
            1,
            {"1x1": 0.44, "16x64": 0.56},
            [{"a": 0.6}, {"a": 0.7}],
            eval_every=25,
            save_every=5,
            normalize_scores=None,
        ),
        rec("me-s2", 2, {"1x1": 0.42}, [{"a": 0.5}]),  # no 16x64 row: that budget has two seeds
        rec("other-s0", 0, {"1x1": 0.30}, [{"a": 0.3}], lr=1e-3),  # one seed: unchanged
        rec("mixed-s0", 0, {"1x1": 0.2}, [{"a": 0.2}]),
        rec("mixed-s1", 1, {"1x1": 0.4}, [{"a": 0.4}], lr=1e-3),  # another recipe: not merged
        rec("norm-s0", 0, {"1x1": 0.2}, [{"a": 0.2}]),
        rec("norm-s1", 1, {"1x1": 0.4}, [{"a": 0.4}], normalize_scores=True),  # nor this one
    ]
    del records[2]["model"]["training"]["normalize_scores"]  # me-s2: older than the setting
    records[1]["model"]["training"]["model_args"]["seed"] = 1  # its own meta-token table
    merged = merge_seeds(records)
    names = [r["model"]["name"] for r in merged]
    assert names == ["me (3 seeds)", "other-s0", "mixed-s0", "mixed-s1", "norm-s0", "norm-s1"]
    me = merged[0]
    assert me["model"]["seeds"] == ["me-s0", "me-s1", "me-s2"]
    (row,) = me["budgets"]  # only the budget every seed has
    assert row["label"] == "1x1" and row["main_score"] == pytest.approx((0.40 + 0.44 + 0.42) / 3)
    assert row["seed_sd"] == pytest.approx(0.02)  # sample sd of 0.40, 0.44, 0.42
    assert row["per_query"] == {"a": pytest.approx(0.5)}
    assert row["cost"]["scoring_ms_per_query"] == 2.0  # the median seed's timing
    header, rows = leaderboard(merged)
    assert rows[0][:2] == ["me (3 seeds) @ 1x1", "42.00 ± 2.00"]
    assert records[0]["model"]["name"] == "me-s0"  # the inputs are left as they were
    from harness.reporting.web.page import page_data

    (entry,) = [
        r for r in page_data(merged, reported=False)["rows"] if r["model"] == "me (3 seeds)"
    ]
    assert entry["sd"] == pytest.approx(2.0) and entry["seeds"] == pytest.approx([40.0, 44.0, 42.0])
