"""MaxSim scoring against a naive per-pair loop, and its invariances."""

from __future__ import annotations

import pytest
import torch

from harness.budgets import Budget
from harness.multivectors import MultiVectors
from harness.scoring import (
    maxsim,
    rank_shortlists,
    score_candidate_lists,
    score_corpus,
    score_shortlists,
)


def ragged(n: int, t: int, d: int, seed: int, min_len: int = 1) -> MultiVectors:
    g = torch.Generator().manual_seed(seed)
    rows = [
        torch.randn(int(torch.randint(min_len, t + 1, (1,), generator=g)), d, generator=g)
        for _ in range(n)
    ]
    return MultiVectors.from_list(rows)


def naive_score(
    q: torch.Tensor, c: torch.Tensor, rq: int | None = None, rc: int | None = None
) -> float:
    """Plain Python: sum over query vectors of the max dot product over candidate vectors."""
    qs = q.tolist()[:rq] if rq else q.tolist()
    cs = c.tolist()[:rc] if rc else c.tolist()
    total = 0.0
    for qv in qs:
        total += max(sum(a * b for a, b in zip(qv, cv, strict=True)) for cv in cs)
    return total


def naive_matrix(queries: MultiVectors, cands: MultiVectors, rq=None, rc=None) -> list[list[float]]:
    return [
        [
            naive_score(
                queries.vectors[i, : queries.lengths[i]],
                cands.vectors[j, : cands.lengths[j]],
                rq,
                rc,
            )
            for j in range(len(cands))
        ]
        for i in range(len(queries))
    ]


def test_maxsim_equals_naive_loop_with_padding_and_negative_similarities():
    q, c = ragged(5, 4, 8, 0), ragged(7, 6, 8, 1)
    # All-negative similarities: a zero pad would win the max if padding were not masked.
    c = MultiVectors(-c.vectors.abs(), c.lengths)
    q = MultiVectors(q.vectors.abs(), q.lengths)
    got = maxsim(q.vectors, q.lengths, c.vectors, c.lengths)
    expected = torch.tensor(naive_matrix(q, c))
    assert (expected < 0).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_maxsim_recomputes_only_the_pairs_a_zero_pad_could_win():
    # Mostly positive similarities, but a few short candidates are negated: for them the zero
    # pad would win an unmasked max, so those pairs alone are recomputed with padding masked.
    g = torch.Generator().manual_seed(7)
    q = MultiVectors(torch.rand(6, 3, 8, generator=g), torch.tensor([3, 3, 2, 3, 1, 3]))
    c = ragged(40, 5, 8, 5)
    c = MultiVectors(c.vectors.abs(), c.lengths)
    flip = torch.tensor([1.0 if i % 13 else -1.0 for i in range(40)])
    c = MultiVectors(c.vectors * flip[:, None, None], c.lengths)
    assert bool((c.lengths[flip < 0] < 5).any())  # a negated short candidate is among them
    got = maxsim(q.vectors, q.lengths, c.vectors, c.lengths)
    expected = torch.tensor(naive_matrix(q, c))
    assert (expected[:, flip < 0] < 0).all() and (expected[:, flip > 0] > 0).all()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_padded_rows_never_win_even_when_not_zero():
    q = MultiVectors(torch.tensor([[[1.0, 0.0]]]), torch.tensor([1]))
    c = MultiVectors(torch.tensor([[[-1.0, 0.0], [5.0, 0.0]]]), torch.tensor([1]))
    assert maxsim(q.vectors, q.lengths, c.vectors, c.lengths).item() == -1.0


def test_single_vector_case_is_a_dot_product():
    g = torch.Generator().manual_seed(3)
    q, c = torch.randn(4, 1, 16, generator=g), torch.randn(9, 1, 16, generator=g)
    got = maxsim(q, torch.ones(4, dtype=torch.long), c, torch.ones(9, dtype=torch.long))
    torch.testing.assert_close(got, q[:, 0] @ c[:, 0].T)


@pytest.mark.parametrize("block_bytes", [64, 4096, 1 << 20])
def test_corpus_topk_matches_naive_ranking_for_any_block_size(block_bytes):
    q, c = ragged(9, 5, 12, 2), ragged(53, 7, 12, 3)
    scores, index = score_corpus(q, c, k=10, block_bytes=block_bytes, query_block=4)
    full = naive_matrix(q, c)
    for i, row in enumerate(full):
        expected = sorted(range(len(row)), key=lambda j: (-row[j], j))[:10]
        assert index[i].tolist() == expected
        torch.testing.assert_close(
            scores[i], torch.tensor([row[j] for j in expected]), rtol=1e-5, atol=1e-5
        )


def test_budget_equals_scoring_pre_sliced_inputs():
    q, c = ragged(6, 16, 8, 4, min_len=16), ragged(20, 64, 8, 5)
    budget = Budget(4, 8)
    s1, i1 = score_corpus(q, c, budget, k=20)
    s2, i2 = score_corpus(q.prefix(4), c.prefix(8), None, k=20)
    assert torch.equal(i1, i2)
    torch.testing.assert_close(s1, s2)
    expected = torch.tensor(naive_matrix(q, c, 4, 8))
    torch.testing.assert_close(
        s1, expected.sort(dim=1, descending=True).values, rtol=1e-5, atol=1e-5
    )


def test_scores_do_not_depend_on_batch_composition():
    q, c = ragged(10, 4, 8, 6), ragged(30, 5, 8, 7)
    alone = [score_corpus(q.slice(i, i + 1), c, k=30)[0] for i in range(len(q))]
    together = score_corpus(q, c, k=30)[0]
    torch.testing.assert_close(torch.cat(alone), together, rtol=1e-6, atol=1e-6)
    shuffled = torch.randperm(len(c), generator=torch.Generator().manual_seed(0))
    s, idx = score_corpus(q, c.select(shuffled), k=30)
    torch.testing.assert_close(s, together, rtol=1e-6, atol=1e-6)


def test_ties_go_to_the_lower_index_whatever_the_block_size():
    base = ragged(3, 2, 4, 8)
    c = MultiVectors.cat([base, base, base])  # every candidate has two exact twins
    q = ragged(2, 2, 4, 9)
    runs = [score_corpus(q, c, k=9, block_bytes=bb, query_block=1)[1] for bb in (16, 48, 1 << 20)]
    for idx in runs[1:]:
        assert torch.equal(idx, runs[0])
    for row in runs[0].tolist():
        for a, b in zip(row[0::3], row[1::3], strict=True):
            assert a % 3 == b % 3 and a < b  # twins adjacent, lower index first


def test_k_larger_than_corpus_returns_every_candidate():
    q, c = ragged(2, 3, 4, 10), ragged(3, 3, 4, 11)
    scores, index = score_corpus(q, c, k=10, block_bytes=16)
    assert index.shape == (2, 3)
    assert sorted(index[0].tolist()) == [0, 1, 2]


@pytest.mark.parametrize("block_bytes", [32, 2048, 1 << 20])
def test_candidate_lists_match_naive_loop(block_bytes):
    q, c = ragged(8, 4, 6, 12), ragged(25, 5, 6, 13)
    g = torch.Generator().manual_seed(14)
    lists = [
        torch.randperm(25, generator=g)[: int(torch.randint(1, 12, (1,), generator=g))].tolist()
        for _ in range(8)
    ]
    lists[3] = [5, 5, 2]  # a repeated candidate within one list
    got = score_candidate_lists(q, c, lists, Budget(2, 3), block_bytes=block_bytes, query_block=3)
    full = naive_matrix(q, c, 2, 3)
    for i, lst in enumerate(lists):
        torch.testing.assert_close(
            got[i], torch.tensor([full[i][j] for j in lst]), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("block_bytes", [2000, 1 << 20])
def test_ties_at_the_kth_score_go_to_the_lowest_indices(block_bytes):
    # Entries in {-1, 0, 1}: integer scores, so many candidates tie, also at the k-th place.
    g = torch.Generator().manual_seed(11)
    q = MultiVectors(torch.randint(-1, 2, (6, 2, 3), generator=g).float(), torch.full((6,), 2))
    c = MultiVectors(torch.randint(-1, 2, (60, 2, 3), generator=g).float(), torch.full((60,), 2))
    full = naive_matrix(q, c)
    assert any(sorted(row, reverse=True)[2] == sorted(row, reverse=True)[3] for row in full)
    scores, index = score_corpus(q, c, k=3, block_bytes=block_bytes)
    for i, row in enumerate(full):
        assert index[i].tolist() == sorted(range(60), key=lambda j: (-row[j], j))[:3]
        assert scores[i].tolist() == [row[j] for j in index[i].tolist()]


def naive_zero_padded(queries: MultiVectors, cands: MultiVectors, rc: int) -> list[list[float]]:
    """colpali-engine's rule by hand: candidates padded with zero vectors to the longest one
    (within the budget rc), then a plain max over every position, padding included."""
    width = min(rc, int(cands.lengths.max()))
    out = []
    for i in range(len(queries)):
        row = []
        for j in range(len(cands)):
            real = cands.vectors[j, : min(int(cands.lengths[j]), width)].tolist()
            padded = real + [[0.0] * cands.dim] * (width - len(real))
            total = 0.0
            for qv in queries.vectors[i, : queries.lengths[i]].tolist():
                total += max(sum(a * b for a, b in zip(qv, cv, strict=True)) for cv in padded)
            row.append(total)
        out.append(row)
    return out


@pytest.mark.parametrize("block_bytes", [64, 4096, 1 << 20])
def test_zero_padding_rule_matches_zero_padded_naive_loop(block_bytes):
    q, c = ragged(6, 3, 5, 21), ragged(30, 6, 5, 22)
    # Negative candidates: the zero pad wins wherever a short candidate is scored.
    c = MultiVectors(-c.vectors.abs(), c.lengths)
    q = MultiVectors(q.vectors.abs(), q.lengths)
    for rc in (6, 3):
        expected = naive_zero_padded(q, c, rc)
        exact = naive_matrix(q, c, None, rc)
        assert expected != exact
        scores, index = score_corpus(
            q, c, Budget(None, rc), k=30, block_bytes=block_bytes, query_block=2, padding="zero"
        )
        for i, row in enumerate(expected):
            assert index[i].tolist() == sorted(range(30), key=lambda j: (-row[j], j))
            torch.testing.assert_close(
                scores[i], torch.tensor([row[j] for j in index[i].tolist()]), atol=1e-5, rtol=1e-5
            )
        lists = [[j, (j + 7) % 30, (j + 11) % 30] for j in range(6)]
        got = score_candidate_lists(
            q, c, lists, Budget(None, rc), block_bytes=block_bytes, padding="zero"
        )
        for i, lst in enumerate(lists):
            torch.testing.assert_close(
                got[i], torch.tensor([expected[i][j] for j in lst]), atol=1e-5, rtol=1e-5
            )


def test_unknown_padding_rule_is_refused():
    q = MultiVectors(torch.ones(1, 1, 2), torch.tensor([1]))
    with pytest.raises(ValueError, match="padding must be one of"):
        maxsim(q.vectors, q.lengths, q.vectors, q.lengths, padding="ones")


@pytest.mark.parametrize("tied", [False, True])
def test_best_columns_equal_a_stable_full_sort_with_and_without_ties(tied):
    """The k best columns of each row in (score desc, column asc) order, against Python's
    stable sort of every column: untied rows (topk's own columns, the fast path) and rows with
    ties across the k-th score (the exact fallback)."""
    from harness.scoring import _best_columns

    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(7, 300, generator=gen)
    if tied:
        scores = torch.round(scores * 2) / 2  # few distinct values: ties everywhere
    index = torch.arange(1000, 1300).expand(7, -1)
    got_scores, got_index = _best_columns(scores, index, 10)
    for row in range(7):
        expected = sorted(range(300), key=lambda c: (-scores[row, c].item(), c))[:10]
        assert got_index[row].tolist() == [1000 + c for c in expected]
        assert got_scores[row].tolist() == [scores[row, c].item() for c in expected]


def test_a_candidate_without_vectors_ranks_above_padding_whatever_the_block_size():
    """A candidate with no vectors scores -inf; with k = every candidate it must still come back
    (lower index first among equal scores), never the padding of a short first block."""
    q = MultiVectors(torch.tensor([[[1.0]]]), torch.tensor([1]))
    c = MultiVectors(
        torch.tensor([[[4.0]], [[0.0]], [[0.0]], [[-1.0]]]), torch.tensor([1, 0, 0, 1])
    )
    for block_bytes in (1, 100, 1 << 20):
        scores, index = score_corpus(q, c, k=4, block_bytes=block_bytes)
        assert index.tolist() == [[0, 3, 1, 2]], block_bytes
        assert scores[0, :2].tolist() == [4.0, -1.0] and scores[0, 2:].isinf().all()


def shortlists_of(nq: int, nc: int, depth: int, seed: int) -> torch.Tensor:
    """Each query's own rows, repeats across queries and one repeat within a list."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.stack([torch.randperm(nc, generator=g)[:depth] for _ in range(nq)])
    rows[0, -1] = rows[0, 0]
    return rows


@pytest.fixture(params=["gathered", "dense"])
def shortlist_path(request, monkeypatch):
    """Both ways `score_shortlists` goes: gathering each query's candidates, or the dense scan
    with the listed candidates picked (chosen by the shortlist's share of the corpus)."""
    import harness.scoring

    monkeypatch.setattr(
        harness.scoring, "DENSE_SHORTLIST_FRACTION", 2.0 if request.param == "gathered" else 0.0
    )
    return request.param


@pytest.mark.parametrize("block_bytes", [64, 4096, 1 << 20])
def test_shortlist_scores_match_the_naive_loop_for_both_padding_rules(block_bytes, shortlist_path):
    q, c = ragged(7, 4, 5, 31), ragged(40, 6, 5, 32)
    c = MultiVectors(-c.vectors.abs(), c.lengths)  # negative: padding must never win
    lists = shortlists_of(7, 40, 9, 33)
    for budget in (None, Budget(2, 3)):
        rq = None if budget is None else 2
        rc = None if budget is None else 3
        exact = naive_matrix(q, c, rq, rc)
        got = score_shortlists(q, c, lists, budget, block_bytes=block_bytes)
        for i, row in enumerate(lists.tolist()):
            assert got[i].tolist() == pytest.approx([exact[i][j] for j in row], abs=1e-5)
    zero = naive_zero_padded(q, c, 6)
    got = score_shortlists(q, c, lists, padding="zero", block_bytes=block_bytes)
    for i, row in enumerate(lists.tolist()):
        assert got[i].tolist() == pytest.approx([zero[i][j] for j in row], abs=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_shortlists_gathered_from_shards_equal_those_in_memory(tmp_path, dtype, shortlist_path):
    from safetensors.torch import save_file

    from harness.cache import Shard, ShardedVectors

    q, c = ragged(5, 3, 4, 41), ragged(23, 5, 4, 42)
    c = MultiVectors(c.vectors.to(dtype), c.lengths)
    shards = []
    for start in range(0, 23, 6):
        stop = min(23, start + 6)
        path = tmp_path / f"{start:09d}-{stop:09d}-x.safetensors"
        part = c.slice(start, stop)
        # the last shard narrower than the others, as a shard of short items is written
        width = int(part.lengths.max())
        save_file({"vectors": part.vectors[:, :width].contiguous(), "lengths": part.lengths}, path)
        shards.append(Shard(start, stop, path))
    on_disk = ShardedVectors(shards)
    rows = torch.tensor([22, 0, 7, 7, 13, 5])
    for r in (None, 2):
        gathered = on_disk.gather(rows, r)
        width = c.max_len if r is None else r
        assert torch.equal(gathered.vectors, c.vectors[rows, :width])
        assert torch.equal(gathered.lengths, c.lengths[rows].clamp(max=width))
    lists = shortlists_of(5, 23, 6, 43)
    assert torch.equal(
        score_shortlists(q, on_disk, lists, Budget(2, 4)),
        score_shortlists(q, c, lists, Budget(2, 4)),
    )
    with pytest.raises(IndexError):
        on_disk.gather(torch.tensor([23]))


def test_ranked_shortlists_order_by_score_then_lower_row():
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [0.2, 0.2, 0.2, 0.3]])
    rows = torch.tensor([[8, 3, 2, 9], [5, 1, 7, 0]])
    ranked_scores, ranked_rows = rank_shortlists(scores, rows)
    for i in range(2):
        by_hand = sorted(
            zip(scores[i].tolist(), rows[i].tolist(), strict=True), key=lambda x: (-x[0], x[1])
        )
        assert ranked_rows[i].tolist() == [r for _, r in by_hand]
        assert ranked_scores[i].tolist() == [s for s, _ in by_hand]
