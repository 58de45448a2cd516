"""`report html`: one self-contained page. The data it embeds is checked against the result
files; in headless Chromium (skipped, with the reason, where it is not installed) the table
must sort and filter, the chart must draw one point per shown row, and a screenshot is taken."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.reporting.web.page import render_page
from harness.results import iter_results

TESTS = Path(__file__).parent
EXAMPLES = TESTS / "data" / "example_results"
CHROMIUM = next(
    (c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None
)
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium here (Debian: apt-get install chromium)"
)


def records():
    return [r for _, r in iter_results(EXAMPLES)]


def embedded(page: str) -> dict:
    match = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_the_page_embeds_every_result_row_and_needs_no_network():
    recs = records()
    page = render_page(recs, "Example")
    rows = embedded(page)["rows"]
    assert len(rows) == sum(len(r["budgets"]) for r in recs)
    by_key = {(r["model"], r["task"], r["budget"]): r for r in rows}
    for record in recs:
        for budget in record["budgets"]:
            row = by_key[(record["model"]["name"], record["task"]["name"], budget["label"])]
            assert row["score"] == pytest.approx(100 * budget["main_score"])
            assert row["bytes"] == budget["cost"]["index_bytes_per_candidate"]
            assert row["low"] <= row["score"] <= row["high"]
    # nothing fetched: no src/href attributes, no URL but the SVG namespace
    assert not re.search(r"\b(src|href)=", page)
    assert set(re.findall(r"https?://[^\s\"'`]+", page)) <= {"http://www.w3.org/2000/svg"}


def test_the_cli_writes_the_page_beside_the_results(tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "results")
    out = subprocess.run(
        [sys.executable, "-m", "harness", "report", "html", "--results", str(tmp_path / "results")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "results" / "leaderboard.html").read_text().startswith("<!doctype html>")


def dom(page: Path, fragment: str = "") -> str:
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            f"{page.as_uri()}#{fragment}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def first_cells(html: str) -> list[str]:
    return re.findall(r'<tr class="entry[^"]*"[^>]*><td>([^<]*)</td>', html)


@needs_browser
def test_in_a_browser_the_table_sorts_filters_and_the_chart_has_a_point_per_row(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(render_page(records(), "Example"))
    shown = dom(page)
    rows = first_cells(shown)
    entries = {(r["model"], r["budget"]) for r in embedded(page.read_text())["rows"]}
    assert len(rows) == len(entries) > 3
    svg = shown[shown.index('<svg id="plot"') : shown.index("</svg>")]  # drawn, not the script
    assert len(re.findall(r'<circle class="point"', svg)) == len(entries)
    assert 'class="frontier"' in svg
    # sorted by name, ascending then descending
    up = first_cells(dom(page, "sort=key&desc=0"))
    assert up == sorted(up) and first_cells(dom(page, "sort=key&desc=1")) == sorted(
        up, reverse=True
    )
    # filtered to one task and one model family's budgets
    one = first_cells(dom(page, "task=toy-lists&sort=key&desc=0"))
    assert len(one) == len(rows) and all("@" in r for r in one)
    flat = first_cells(dom(page, "kind=single-vector"))
    assert flat and all(r.endswith("@ 1x1") for r in flat)


@needs_browser
def test_a_screenshot_of_the_page(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(render_page(records(), "Example"))
    shot = tmp_path / "shot.png"
    out = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1200,1300",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and shot.stat().st_size > 20_000, out.stderr[-2000:]


@needs_browser
def test_a_mean_over_fewer_tasks_is_drawn_hollow_and_kept_off_the_frontier(tmp_path):
    recs = records()
    model, task = recs[0]["model"]["name"], recs[0]["task"]["name"]
    kept = [r for r in recs if not (r["model"]["name"] == model and r["task"]["name"] != task)]
    assert {r["task"]["name"] for r in kept} != {task}  # other models still cover more tasks
    page = tmp_path / "page.html"
    page.write_text(render_page(kept, "Example", reported=False))
    shown = dom(page)
    svg = shown[shown.index('<svg id="plot"') : shown.index("</svg>")]
    budgets = {row["label"] for r in kept if r["model"]["name"] == model for row in r["budgets"]}
    hollow = re.findall(r'<circle class="point incomplete"[^>]*>\s*<title>([^<]*)', svg)
    assert len(hollow) == len(budgets) and all(t.startswith(f"{model} @") for t in hollow)
    frontier = re.search(r'class="frontier"[^>]*points="([^"]*)"', svg).group(1).split()
    hollow_xy = set(re.findall(r'<circle class="point incomplete" cx="([^"]*)" cy="([^"]*)"', svg))
    assert frontier and not {tuple(p.split(",")) for p in frontier} & hollow_xy
    assert "fewer tasks than shown" in shown


@needs_browser
def test_a_row_opens_its_per_task_drill_down(tmp_path):
    recs = records()
    page = tmp_path / "page.html"
    page.write_text(render_page(recs, "Example"))
    model = recs[0]["model"]["name"]
    label = recs[0]["budgets"][0]["label"]
    key = f"{model} @ {label}"
    from urllib.parse import quote

    shown = dom(page, "open=" + quote(key))
    drill = re.search(r'<tr class="drill">(.*?)</table>', shown, re.S).group(1)
    tasks = re.findall(r"<tr><td>([^<†]*?)(?: †)?</td><td>", drill)
    expected = sorted(
        r["task"]["name"]
        for r in recs
        if r["model"]["name"] == model and any(b["label"] == label for b in r["budgets"])
    )
    assert tasks == expected
    for record in recs:
        if record["model"]["name"] == model and record["task"]["name"] in tasks:
            row = next(b for b in record["budgets"] if b["label"] == label)
            assert f"{100 * row['main_score']:.2f}" in drill
    assert '<tr class="drill">' not in dom(page)


@needs_browser
def test_the_budget_axis_places_budgets_in_cost_order(tmp_path):
    from harness.budgets import Budget

    recs = records()
    page = tmp_path / "page.html"
    page.write_text(render_page(recs, "Example", reported=False))
    shown = dom(page, "axis=budget")
    svg = shown[shown.index('<svg id="plot"') : shown.index("</svg>")]
    ticks = re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', svg)
    labels = {row["label"] for r in recs for row in r["budgets"]}
    assert ticks == sorted(labels, key=lambda b: Budget.parse(b).sort_key())
    entries = {(r["model"]["name"], row["label"]) for r in recs for row in r["budgets"]}
    assert len(re.findall(r'<circle class="point', svg)) == len(entries)


@needs_browser
def test_hovering_a_latency_shows_its_median_runs_and_range(tmp_path):
    recs = records()
    row = recs[0]["budgets"][0]
    row["cost"]["scoring_ms_per_query"] = 0.2
    row["cost"]["scoring_ms_per_query_runs"] = [0.3, 0.1, 0.2, 0.25, 0.15]
    key = f"{recs[0]['model']['name']} @ {row['label']}"
    page = tmp_path / "page.html"
    page.write_text(render_page(recs, "Example"))
    from urllib.parse import quote

    shown = dom(page, "open=" + quote(key) + "&axis=latency")
    drill = re.search(r'<tr class="drill">(.*?)</table>', shown, re.S).group(1)
    want = "median 0.200 ms of 5 runs after a warm-up, range 0.100\u20130.300 ms"
    assert f'title="{want}"' in drill  # the task's own cell
    assert want in shown[shown.index('<svg id="plot"') : shown.index("</svg>")]
