"""Compressed candidate vectors (`16x64:int8`, `:binary`, `:fp16`): scores equal MaxSim over
vectors dequantized by hand, and index bytes count the stored form."""

from __future__ import annotations

import math

import pytest
import toy_tasks

import harness
from harness.budgets import Budget
from harness.errors import UsageError
from harness.testing import HashEncoder


def by_hand(vector: list[float], storage: str) -> list[float]:
    if storage == "int8":
        scale = max(abs(x) for x in vector) / 127.0
        return [max(-127, min(127, round(x / scale))) * scale for x in vector]
    if storage == "binary":
        return [(1.0 if x > 0 else -1.0) / math.sqrt(len(vector)) for x in vector]
    if storage == "fp16":
        import struct

        return [struct.unpack("e", struct.pack("e", x))[0] for x in vector]
    raise ValueError(storage)


def maxsim(q, c):
    return sum(max(sum(a * b for a, b in zip(qv, cv, strict=True)) for cv in c) for qv in q)


@pytest.mark.parametrize("storage", ["int8", "binary", "fp16"])
def test_stored_candidates_score_as_their_dequantized_vectors(tmp_path, storage):
    encoder = HashEncoder()
    label = f"4x8:{storage}"
    record = harness.evaluate(
        encoder,
        [toy_tasks.CORPUS],
        budgets=label,
        output=str(tmp_path / "out"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "data"),
        progress=False,
        trec_runs=True,
    )[0]
    data = toy_tasks.CORPUS.load(tmp_path / "data")
    fresh = HashEncoder(**encoder.card.args)
    qmv = fresh.encode(data.queries, role="query")
    cmv = fresh.encode(data.candidates, role="candidate")
    q = {it.id: qmv.vectors[i, :4].tolist() for i, it in enumerate(data.queries)}
    c = {
        it.id: [by_hand(v, storage) for v in cmv.vectors[i, :8].tolist()]
        for i, it in enumerate(data.candidates)
    }
    run = (tmp_path / "out" / "test-hash" / "runs" / f"toy-corpus.{label}.trec").read_text()
    checked = 0
    for line in run.splitlines():
        qid, _, doc, _, score, _ = line.split()
        assert float(score) == pytest.approx(maxsim(q[qid], c[doc]), abs=2e-6)
        checked += 1
    assert checked > 100
    (row,) = record["budgets"]
    per_vector = {"int8": 32 + 4, "binary": 4, "fp16": 64}[storage]
    assert row["cost"]["index_bytes_per_candidate"] == 8 * per_vector


def test_storage_labels_parse_and_unknown_ones_are_refused():
    assert Budget.parse("16x64:int8") == Budget(16, 64, "int8")
    assert Budget.parse("1x1:binary>16x64@100").first.storage == "binary"
    with pytest.raises(UsageError, match="unknown vector storage 'int4'"):
        Budget.parse("16x64:int4")
