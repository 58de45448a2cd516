"""ViDoRe and MMEB loaders on fixture snapshots in the hub layouts, metrics worked out by hand."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import hub_fixtures as fx
import pytest
import toy_models

import harness
from harness.errors import HarnessError
from harness.hub import prefetch, prefetch_jobs
from harness.registry import get_tasks
from harness.reporting.aggregate import benchmark_tables
from harness.task import DatasetRef, TaskSpec

LOG2_3 = math.log2(3)
# Pages 1 red, 2 green, 3 blue, 4 gray (see toy_models.ColorEncoder for the scores).
PAGES = {1: "red", 2: "green", 3: "blue", 4: "gray"}


def evaluate(tmp_path, tasks, data_dir, encoder=None):
    return harness.evaluate(
        encoder or toy_models.ColorEncoder(),
        tasks,
        output=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(data_dir),
        progress=False,
    )


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "harness-cache"))


def test_vidore_v1_beir_ndcg_by_hand_and_size_flag(tmp_path):
    spec = get_tasks("vidore-v1-arxivqa")[0]
    # q1 "red": page 1 first -> 1.  q2 "yellow" (relevant 2): gray 0.816, then red and green tie
    # at 0.707 and trec_eval puts id "2" before "1" -> rank 2 -> 1/log2(3).
    # q3 "cyan" (blue graded 2, gray 1): gray, then blue/green tie -> "3" first: DCG 1 + 2/log2(3).
    fx.write_beir(
        tmp_path / "data" / spec.dataset.path,
        PAGES,
        [(1, "red"), (2, "yellow"), (3, "cyan")],
        [(1, 1, 1), (2, 2, 1), (3, 3, 2), (3, 4, 1)],
    )
    record = evaluate(tmp_path, [spec], tmp_path / "data")[0]
    ndcg3 = (1 + 2 / LOG2_3) / (2 + 1 / LOG2_3)
    assert record["budgets"][0]["main_score"] == pytest.approx(
        (1 + 1 / LOG2_3 + ndcg3) / 3, abs=1e-6
    )
    assert record["task"]["dataset"]["revision"] == spec.dataset.revision
    check = record["task"]["size_check"]
    assert check["official_size"] is False and check["loaded"] == {
        "queries": 3,
        "corpus": 4,
        "qrels": 4,
    }
    assert any("published" in note for note in record["task"]["notes"])


def test_vidore_v2_languages_pooled_and_english_only(tmp_path):
    spec = get_tasks("vidore-v2-economics")[0]
    fx.write_beir(
        tmp_path / "data" / spec.dataset.path,
        PAGES,
        [
            (1, "red", "english"),
            (2, "yellow", "english"),
            (3, "red", "french"),
            (4, "cyan", "french"),
        ],
        [(1, 1, 1), (2, 2, 1), (3, 2, 1), (4, 3, 1)],
        id_style="_",  # v3-style column names are read too
    )
    row = evaluate(tmp_path, [spec], tmp_path / "data")[0]["budgets"][0]
    # english: 1 and 1/log2(3).  french: "red" (relevant green): red 1, gray 0.577, then green and
    # blue tie at 0 and id "3" goes first -> green 4th -> 1/log2(5); "cyan" -> 1/log2(3).
    english = (1 + 1 / LOG2_3) / 2
    french = (1 / math.log2(5) + 1 / LOG2_3) / 2
    assert row["metrics"]["ndcg_at_5_english"] == pytest.approx(english, abs=1e-6)
    assert row["metrics"]["ndcg_at_5_french"] == pytest.approx(french, abs=1e-6)
    assert row["metrics"]["ndcg_at_5_group_mean"] == pytest.approx((english + french) / 2, abs=1e-6)
    assert row["main_score"] == pytest.approx(
        (english + french) / 2, abs=1e-6
    )  # pooled: 2 + 2 queries
    assert set(row["groups"]) == {"english", "french"}


def test_vidore_v3_mteb_format_language_subsets_by_hand(tmp_path):
    spec = get_tasks("vidore-v3-hr")[0]
    assert spec.dataset.path == "vidore/vidore_v3_hr_mteb_format"
    assert spec.dataset.revision == "bc7d43d64815ed30f664168c8052106484aba7fd"
    assert spec.counts["queries"] == 1908  # mteb's published count: 318 in each of 6 languages
    # One judged query per language (and one unjudged, which mteb drops). By hand (nDCG@10):
    # "red" -> red page first: 1.  "yellow" (relevant green): gray, then red / green tie and
    # trec_eval puts "corpus-test-2" first -> rank 2: 1/log2(3).  "cyan" (blue 2, gray 1):
    # gray, then blue / green tie -> blue first: (1 + 2/log2(3)) / (2 + 1/log2(3)).
    # "red" with blue relevant: red, gray, then blue / green tie at 0 -> blue 3rd: 1/2.
    texts = {
        "english": "red",
        "french": "yellow",
        "spanish": "cyan",
        "german": "red",
        "italian": "yellow",
        "portuguese": "red",
    }
    queries = {lang: [(f"{lang}-1", t), (f"{lang}-unjudged", "red")] for lang, t in texts.items()}
    relevant = {"red": [(1, 1)], "yellow": [(2, 1)], "cyan": [(3, 2), (4, 1)]}
    qrels = [
        (f"{lang}-1", page, gain)
        for lang, t in texts.items()
        for page, gain in (relevant[t] if lang != "portuguese" else [(3, 1)])
    ]
    fx.write_beir_subsets(tmp_path / "data" / spec.dataset.path, PAGES, queries, qrels)
    data = spec.load(tmp_path / "data")
    assert len(data.queries) == 6 and len(data.candidates) == 4 and not data.notes
    assert data.query_groups == {lang: [f"{lang}-1"] for lang in texts}
    row = evaluate(tmp_path, [spec], tmp_path / "data")[0]["budgets"][0]
    cyan = (1 + 2 / LOG2_3) / (2 + 1 / LOG2_3)
    expected = {
        "english": 1.0,
        "french": 1 / LOG2_3,
        "spanish": cyan,
        "german": 1.0,
        "italian": 1 / LOG2_3,
        "portuguese": 0.5,
    }
    for lang, value in expected.items():
        assert row["metrics"][f"ndcg_at_10_{lang}"] == pytest.approx(value, abs=1e-6)
    mean = sum(expected.values()) / 6  # mteb's mean over subsets = the pooled mean here
    assert row["main_score"] == pytest.approx(mean, abs=1e-6)
    assert row["metrics"]["ndcg_at_10_group_mean"] == pytest.approx(mean, abs=1e-6)


def test_vidore_v3_repeated_query_ids_and_differing_corpora_are_named(tmp_path):
    spec = get_tasks("vidore-v3-physics")[0]
    langs = ["english", "french", "spanish", "german", "italian", "portuguese"]
    repo = tmp_path / "data" / spec.dataset.path
    fx.write_beir_subsets(
        repo, PAGES, {lang: [("q1", "red")] for lang in langs}, [("q1", 1, 1)], id_column="_id"
    )
    fx.write_beir_subsets(repo, {**PAGES, 5: "red"}, {"german": [("q1", "red")]}, [("q1", 1, 1)])
    data = spec.load(tmp_path / "data")
    assert sorted(q.id for q in data.queries) == sorted(f"{lang}/q1" for lang in langs)
    assert len(data.candidates) == 5
    assert any("stored as <language>/<id>" in n for n in data.notes)
    assert any("corpora differ" in n for n in data.notes)


def test_vidore_v1_qa_format_follows_vidore_benchmark_rules(tmp_path):
    spec = get_tasks("vidore-v1-qa-docvqa")[0]
    fx.write_qa(
        tmp_path / "data" / spec.dataset.path,
        [
            ("red", "red", "r.png"),
            ("red", "green", "g.png"),
            (None, "blue", "b.png"),
            ("cyan", "blue", "b.png"),
        ],
    )
    data = spec.load(tmp_path / "data")
    assert [q.text for q in data.queries] == ["red", "cyan"]  # deduplicated, None dropped
    assert data.qrels == {"q0": {"g.png": 1}, "q1": {"b.png": 1}}  # the last row's page
    assert sorted(c.id for c in data.candidates) == ["b.png", "g.png", "r.png"]
    # "red": r.png, then g.png / b.png tie at 0 -> "g.png" first -> rank 2.
    # "cyan": g.png / b.png tie at 0.707 -> "g.png" first -> b.png rank 2.
    record = evaluate(tmp_path, [spec], tmp_path / "data")[0]
    assert record["budgets"][0]["main_score"] == pytest.approx(1 / LOG2_3, abs=1e-6)


def test_vidore_v1_qa_floors_scores_at_zero_except_the_first_rows_page(tmp_path):
    """vidore-benchmark's loop, replayed by hand over every row: `results[q][filename] =
    max(results[q].get(filename, 0), score)` after the first passage; then pytrec_eval."""
    import pytrec_eval
    import torch

    from harness.protocol import Item
    from harness.testing import HashEncoder

    spec = get_tasks("vidore-v1-qa-tabfquad")[0]
    colours = list(fx.RGB)
    rows = [
        (f"question {i % 9}" if i % 4 else None, colours[i % 4], f"p{(i * 5) % 7:02d}.png")
        for i in range(24)
    ]
    fx.write_qa(tmp_path / "data" / spec.dataset.path, rows)
    encoder = HashEncoder(query_vectors=1, candidate_vectors=1, dim=8)
    record = evaluate(tmp_path, [spec], tmp_path / "data", encoder=encoder)[0]

    data = spec.load(tmp_path / "data")
    pages = {c.id: c for c in data.candidates}
    fresh = HashEncoder(**encoder.card.args)
    page_vectors = {
        name: fresh.encode([pages[name]], role="candidate").vectors[0, 0] for name in pages
    }
    results, unfloored, qrels = {}, {}, {}
    for query in dict.fromkeys(r[0] for r in rows if r[0] is not None):
        q = fresh.encode([Item("x", query)], role="query").vectors[0, 0]
        qrels[query] = {[r[2] for r in rows if r[0] == query][-1]: 1}
        for _, _, filename in rows:  # every row is a passage, in dataset order
            score = float(torch.dot(q, page_vectors[filename]))
            if query in results:
                results[query][filename] = max(results[query].get(filename, 0), score)
            else:
                results[query] = {filename: score}
            unfloored.setdefault(query, {})[filename] = score
    negatives = sum(s < 0 for r in unfloored.values() for s in r.values())
    assert negatives > 10  # the rule is exercised

    def mean_ndcg(run):
        evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_5"})
        values = [v["ndcg_cut_5"] for v in evaluator.evaluate(run).values()]
        return sum(values) / len(values)

    assert mean_ndcg(results) != pytest.approx(mean_ndcg(unfloored), abs=1e-3)
    assert record["budgets"][0]["main_score"] == pytest.approx(mean_ndcg(results), abs=1e-6)


MMEB_ROWS = [
    # red image: "red" wins.  gray image: a three-way tie, which the official rule counts.
    # blue image against [red, blue]: wrong.  text query "green" against green / red pictures.
    {
        "qry_text": "<|image_1|> Represent the given image for classification",
        "qry_img_path": "ImageNet-1K/a.png",
        "tgt_text": ["red", "green", "blue"],
        "tgt_img_path": ["", "", ""],
    },
    {
        "qry_text": "<|image_1|> Represent the given image for classification",
        "qry_img_path": "ImageNet-1K/gray.png",
        "tgt_text": ["red", "green", "blue"],
        "tgt_img_path": ["", "", ""],
    },
    {
        "qry_text": "<|image_1|> Represent the given image for classification",
        "qry_img_path": "ImageNet-1K/b.png",
        "tgt_text": ["red", "blue"],
        "tgt_img_path": ["", ""],
    },
    {
        "qry_text": "Find the green one",
        "qry_img_path": "",
        "tgt_text": ["", ""],
        "tgt_img_path": ["ImageNet-1K/g.png", "ImageNet-1K/a.png"],
    },
]
MMEB_IMAGES = {
    "ImageNet-1K/a.png": "red",
    "ImageNet-1K/gray.png": "gray",
    "ImageNet-1K/b.png": "blue",
    "ImageNet-1K/g.png": "green",
}


def test_mmeb_subset_precision_rules_lists_and_aggregates(tmp_path):
    spec = get_tasks("mmeb-ImageNet-1K")[0]
    fx.write_mmeb(tmp_path / "data" / spec.dataset.path, "ImageNet-1K", MMEB_ROWS, MMEB_IMAGES)
    data = spec.load(tmp_path / "data")
    assert (
        len(data.candidates) == 5
    )  # (text, path) keys encoded once: red, green, blue, g.png, a.png
    assert [len(v) for v in data.candidate_lists.values()] == [3, 3, 2, 2]
    assert data.queries[0].text.startswith("<|image_1|>")  # left for the encoder to place or strip
    record = evaluate(tmp_path, [spec], tmp_path / "data")[0]
    metrics = record["budgets"][0]["metrics"]
    assert metrics["precision_at_1"] == pytest.approx(3 / 4)
    assert metrics["precision_at_1_strict"] == pytest.approx(2 / 4)
    assert record["task"]["category"] == "classification" and record["task"]["split"] == "IND"
    tables = {title: rows for title, _, rows in benchmark_tables([record])}
    row = tables["MMEB (precision@1)"][0]
    assert (
        row[1] == "75.00 (1/10)"
        and row[5] == "75.00 (1/20)"
        and row[6] == "-"
        and row[7] == "75.00 (1/36)"
    )


def test_missing_image_names_dataset_row_and_path(tmp_path):
    spec = get_tasks("mmeb-ImageNet-1K")[0]
    repo = tmp_path / "data" / spec.dataset.path
    fx.write_mmeb(repo, "ImageNet-1K", MMEB_ROWS, MMEB_IMAGES)
    (repo / "images" / "ImageNet-1K" / "b.png").unlink()
    with pytest.raises(
        HarnessError, match=r"ImageNet-1K row 2: image 'ImageNet-1K/b.png' not found"
    ):
        spec.load(tmp_path / "data")


def test_corrupt_image_fails_at_encoding_and_keeps_finished_tasks(tmp_path):
    good, bad = get_tasks("vidore-v1-docvqa,mmeb-ImageNet-1K")
    fx.write_beir(tmp_path / "data" / good.dataset.path, PAGES, [(1, "red")], [(1, 1, 1)])
    repo = tmp_path / "data" / bad.dataset.path
    fx.write_mmeb(repo, "ImageNet-1K", MMEB_ROWS, MMEB_IMAGES)
    (repo / "images" / "ImageNet-1K" / "g.png").write_bytes(b"not a png")
    with pytest.raises(HarnessError, match=r"g.png.*cannot be decoded"):
        evaluate(tmp_path, [good, bad], tmp_path / "data")
    assert (tmp_path / "out" / "test-color" / "vidore-v1-docvqa.json").exists()


def test_missing_column_names_column_and_file(tmp_path):
    spec = get_tasks("vidore-v1-qa-infovqa")[0]
    repo = tmp_path / "data" / spec.dataset.path
    fx.write_qa(repo, [("red", "red", "r.png")])
    import pyarrow.parquet as pq

    path = repo / "data" / "test-00000-of-00001.parquet"
    pq.write_table(pq.read_table(path).drop(["image_filename"]), path)
    with pytest.raises(HarnessError, match=r"has no column 'image_filename'.*") as info:
        spec.load(tmp_path / "data")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["not parquet at all", "truncated"])
def test_a_damaged_parquet_file_is_named(tmp_path, damage):
    spec = get_tasks("vidore-v1-qa-infovqa")[0]
    repo = tmp_path / "data" / spec.dataset.path
    fx.write_qa(repo, [("red", "red", "r.png"), ("blue", "blue", "b.png")])
    path = repo / "data" / "test-00000-of-00001.parquet"
    data = path.read_bytes()
    path.write_bytes(b"<html>rate limited</html>" if damage == "not parquet at all" else data[:-40])
    with pytest.raises(HarnessError, match="is not a readable parquet file") as info:
        spec.load(tmp_path / "data")
    assert str(path) in str(info.value) and "prefetch" in str(info.value)


def test_no_snapshot_and_no_network_names_dataset_and_prefetch(tmp_path):
    spec = get_tasks("vidore-v2-esg")[0]
    with pytest.raises(HarnessError) as info:
        spec.load(tmp_path / "empty")
    message = str(info.value)
    assert (
        "vidore/esg_reports_v2" in message
        and "python -m harness prefetch --tasks vidore-v2-esg" in message
    )


def test_prefetch_merges_jobs_and_unzips_mmeb_images(tmp_path):
    remote = tmp_path / "remote"
    fx.write_mmeb(
        remote / "TIGER-Lab" / "MMEB-eval", "ImageNet-1K", MMEB_ROWS, MMEB_IMAGES, zipped=True
    )
    specs = get_tasks("mmeb-ImageNet-1K,mmeb-N24News,vidore-v1-arxivqa")
    jobs = prefetch_jobs(specs)
    assert [(j[0].path, j[1], j[2]) for j in jobs] == [
        ("TIGER-Lab/MMEB-eval", ["*/test-*.parquet", "images.zip"], ["images.zip"]),
        ("mteb/arxivqa_test_subsampled_beir", None, []),
    ]

    def copy_snapshot(repo_id, repo_type, revision, local_dir, allow_patterns):
        assert repo_type == "dataset" and revision
        shutil.copytree(remote / repo_id, local_dir, dirs_exist_ok=True)

    prefetch(jobs[:1], tmp_path / "data", download=copy_snapshot)
    data = specs[0].load(tmp_path / "data")
    assert Path(data.queries[0].image).is_file()
    assert (
        tmp_path / "data" / "TIGER-Lab" / "MMEB-eval" / "images" / "ImageNet-1K" / "a.png"
    ).is_file()


def test_every_registered_benchmark_task_is_complete():
    specs = {s.name: s for s in get_tasks("vidore,vidore-v1-qa,mmeb")}
    assert len([s for s in specs.values() if s.benchmark == "mmeb"]) == 36
    assert len(get_tasks("mmeb-ind")) == 20 and len(get_tasks("mmeb-ood")) == 16
    assert [
        len(get_tasks(g))
        for g in ("mmeb-classification", "mmeb-vqa", "mmeb-retrieval", "mmeb-grounding")
    ] == [10, 10, 12, 4]
    assert [len(get_tasks(g)) for g in ("vidore-v1", "vidore-v1-qa", "vidore-v2", "vidore-v3")] == [
        10,
        10,
        4,
        8,
    ]
    for spec in specs.values():
        assert spec.main_metric == (
            "precision_at_1"
            if spec.benchmark == "mmeb"
            else "ndcg_at_10"
            if spec.benchmark == "vidore-v3"
            else "ndcg_at_5"
        )
        if spec.benchmark in ("vidore-v1", "vidore-v2", "vidore-v3", "mmeb"):
            assert spec.dataset.revision and len(spec.dataset.revision) == 40


def test_custom_spec_with_matching_counts_is_official_size(tmp_path):
    spec = TaskSpec(
        name="beir-mine",
        benchmark="mine",
        kind="corpus",
        main_metric="ndcg_at_5",
        dataset=DatasetRef("me/mine", revision="x"),
        loader="harness.tasks.vidore:load_beir",
        counts={"queries": 1, "corpus": 4, "qrels": 1},
    )
    fx.write_beir(tmp_path / "data" / "me" / "mine", PAGES, [(1, "red")], [(1, 1, 1)])
    record = evaluate(tmp_path, [spec], tmp_path / "data")[0]
    assert (
        record["task"]["size_check"]["official_size"] is True
        and record["budgets"][0]["main_score"] == 1.0
    )
