"""Cascaded budgets (`first>second@depth`) against a brute-force reference: every candidate
scored at the first budget by a plain loop, the top `depth` re-scored at the second, ranked by
trec_eval's rule; recall against the second budget's exhaustive top-k counted by hand."""

from __future__ import annotations

import json

import pytest
import toy_models
import toy_tasks

import harness
from harness.budgets import Budget, Cascade, parse_budgets
from harness.errors import UsageError
from harness.testing import HashEncoder


def naive_maxsim(q, c, rq, rc):
    return sum(
        max(sum(a * b for a, b in zip(qv, cv, strict=True)) for cv in c[:rc]) for qv in q[:rq]
    )


def vectors(encoder, items, role):
    mv = HashEncoder(**encoder.card.args).encode(items, role=role)
    return {it.id: mv.vectors[i, : mv.lengths[i]].tolist() for i, it in enumerate(items)}


def run(tmp_path, encoder, tasks, budgets):
    return harness.evaluate(
        encoder,
        tasks,
        budgets=budgets,
        output=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "data"),
        progress=False,
        trec_runs=True,
    )


def test_cascade_labels_parse_and_sort_beside_their_second_budget():
    cascade = Budget.parse("1x1>16x64@100")
    assert cascade == Cascade(Budget(1, 1), Budget(16, 64), 100)
    assert cascade.label == "1x1>16x64@100" and (cascade.query, cascade.candidate) == (16, 64)
    order = sorted(parse_budgets("1x1>16x64@100,16x64,1x1,2x4"), key=lambda b: b.sort_key())
    assert [b.label for b in order] == ["1x1", "2x4", "16x64", "1x1>16x64@100"]
    for bad in ("1x1>16x64", "1x1>16x64@0", "1x1>2x2>16x64@3", "1y1>16x64@3"):
        with pytest.raises(UsageError):
            Budget.parse(bad)


@pytest.mark.parametrize("depth", [3, 8, 100])
@pytest.mark.slow
def test_corpus_cascade_equals_brute_force_with_recall_by_hand(tmp_path, depth):
    encoder = HashEncoder()
    record = run(tmp_path, encoder, [toy_tasks.CORPUS], f"1x1>16x64@{depth},16x64")[0]
    data = toy_tasks.CORPUS.load(tmp_path / "data")
    qv, cv = vectors(encoder, data.queries, "query"), vectors(encoder, data.candidates, "candidate")
    ids = sorted((c.id for c in data.candidates), reverse=True)  # trec_eval's tie order
    # Pages with equal content are one distinct row: the depth counts rows, each row keeps all
    # its pages (the toy corpus holds one such pair).
    content = {c: json.dumps(cv[c]) for c in ids}
    assert len(set(content.values())) == len(ids) - 1

    def ranked(qid, pool, rq, rc):  # score descending, then id descending
        scores = {c: naive_maxsim(qv[qid], cv[c], rq, rc) for c in pool}
        return sorted(pool, key=lambda c: (-scores[c], ids.index(c))), scores

    def shortlist(order):  # the pages of the first `depth` distinct contents
        rows = list(dict.fromkeys(content[c] for c in order))[:depth]
        return [c for c in ids if content[c] in rows]

    lines = (tmp_path / "out" / "test-hash" / "runs").glob(f"toy-corpus.1x1>16x64@{depth}.trec")
    trec = {}
    for line in next(lines).read_text().splitlines():
        qid, _, doc, rank, score, _ = line.split()
        trec.setdefault(qid, []).append((doc, float(score)))
    hits = {1: 0.0, 10: 0.0}
    seen = set()  # recall is over distinct queries, as scoring is
    for q in data.queries:
        first, _ = ranked(q.id, ids, 1, 1)
        second, scores = ranked(q.id, shortlist(first), 16, 64)
        second = second[: min(100, len(ids))]
        assert [d for d, _ in trec[q.id]] == second
        assert [s for _, s in trec[q.id]] == pytest.approx([scores[d] for d in second], abs=1e-5)
        exhaustive, _ = ranked(q.id, ids, 16, 64)
        if json.dumps(qv[q.id]) in seen:
            continue
        seen.add(json.dumps(qv[q.id]))
        for c in hits:
            rows = list(dict.fromkeys(content[d] for d in second))[:c]
            exact = list(dict.fromkeys(content[d] for d in exhaustive))[:c]
            hits[c] += len(set(rows) & set(exact)) / min(c, len(exact))
    row = next(b for b in record["budgets"] if b["label"] == f"1x1>16x64@{depth}")
    assert row["index"]["backend"] == "cascade" and row["index"]["depth"] == depth
    for c in hits:
        assert row["index"][f"recall_at_{c}"] == pytest.approx(hits[c] / len(seen))
    exhaustive_row = next(b for b in record["budgets"] if b["label"] == "16x64")
    if depth >= len(set(content.values())):  # every row re-scored: the exhaustive result
        assert row["metrics"] == exhaustive_row["metrics"]
    stages = row["cost"]["stages"]
    assert row["cost"]["index_bytes_per_candidate"] == 32 * 4 * (1 + 64)
    assert row["cost"]["scoring_flops_per_pair"] == pytest.approx(
        2 * 32 + 2 * 16 * 64 * 32 * min(depth, len(ids)) / len(ids)
    )
    assert stages["first"]["vectors_per_candidate"] == 1 and stages["depth"] == depth


def test_list_cascade_keeps_the_first_stage_top_and_rescores_it(tmp_path):
    encoder = HashEncoder()
    record = run(tmp_path, encoder, [toy_tasks.LISTS], "1x1>16x64@2")[0]
    data = toy_tasks.LISTS.load(tmp_path / "data")
    qv, cv = vectors(encoder, data.queries, "query"), vectors(encoder, data.candidates, "candidate")
    correct = 0
    for q in data.queries:
        items = data.candidate_lists[q.id]
        first = [naive_maxsim(qv[q.id], cv[c], 1, 1) for c in items]
        kept = sorted(range(len(items)), key=lambda p: (-first[p], p))[:2]
        row = [
            naive_maxsim(qv[q.id], cv[items[p]], 16, 64) if p in kept else float("-inf")
            for p in range(len(items))
        ]
        best = max(range(len(row)), key=lambda p: (row[p], -p))
        correct += best == 0
    (budget,) = record["budgets"]
    assert budget["main_score"] == pytest.approx(correct / len(data.queries))


def test_a_reducing_model_cascades_from_its_reduced_vectors(tmp_path):
    record = run(
        tmp_path, toy_models.ReducingEncoder(), [toy_tasks.CORPUS], "1x8>allxall@100,allxall"
    )[0]
    rows = {b["label"]: b for b in record["budgets"]}  # `all` is 16 and 64 for this model
    # every page re-scored at the full budget: the exhaustive ranking
    assert rows["1x8>16x64@100"]["metrics"] == rows["16x64"]["metrics"]
    assert rows["1x8>16x64@100"]["index"]["recall_at_10"] == 1.0


def test_a_model_that_cannot_serve_both_stages_is_refused(tmp_path):
    with pytest.raises(UsageError, match="neither nested nor able to reduce"):
        run(tmp_path, HashEncoder(nested=False), [toy_tasks.CORPUS], "1x1>16x64@10")


@pytest.mark.slow
def test_out_of_core_cascade_equals_the_in_memory_one(tmp_path):
    in_memory = run(tmp_path / "a", HashEncoder(), [toy_tasks.CORPUS], "1x1>16x64@4")[0]
    on_disk = harness.evaluate(
        HashEncoder(),
        [toy_tasks.CORPUS],
        budgets="1x1>16x64@4",
        output=str(tmp_path / "b" / "out"),
        cache_dir=str(tmp_path / "b" / "cache"),
        data_dir=str(tmp_path / "a" / "data"),
        progress=False,
        shard_size=7,
        memory_limit=1000,  # every corpus is "too large": scored from the shards
    )[0]
    a, b = in_memory["budgets"][0], on_disk["budgets"][0]
    assert b["cost"]["candidates_out_of_core"] and not a["cost"]["candidates_out_of_core"]
    assert a["metrics"] == b["metrics"] and a["per_query"] == b["per_query"]


@pytest.mark.slow
def test_a_cascade_under_torchrun_equals_the_single_process_run(tmp_path):
    from test_scale import cli_args, read, torchrun

    single = run(tmp_path / "one", HashEncoder(), [toy_tasks.CORPUS], "1x1>16x64@5")[0]
    done = torchrun(
        2,
        "--model",
        "test-hash",
        "--tasks",
        "toy_tasks:CORPUS",
        *cli_args(tmp_path / "two", "--shard-size", "7", "--budgets", "1x1>16x64@5"),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = read(tmp_path / "two", "toy-corpus")["budgets"]
    assert read(tmp_path / "two", "toy-corpus")["encode"]["world_size"] == 2
    assert row["label"] == "1x1>16x64@5"
    assert row["metrics"] == single["budgets"][0]["metrics"]
    assert row["per_query"] == single["budgets"][0]["per_query"]
