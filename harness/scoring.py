"""Masked, blocked late-interaction scoring (MaxSim) under a token budget.

s(q, c) = sum over the first r_q query vectors of the max over the first r_c candidate vectors
of the dot product: a plain sum with no length normalisation, as in the MetaEmbed paper.
Padded candidate vectors can never win the max: they count as -inf (zero would win whenever
every real similarity is negative); padded query vectors add nothing. `padding="zero"`
reproduces colpali-engine, pylate, vidore-benchmark and mteb instead, which pad candidates with
zero vectors and so score a padded position as 0. Here a candidate counts as padded when it has
fewer vectors than the longest candidate within the budget; the two rules differ only for such a
candidate whose every real similarity to some query vector is negative.
Single-vector models are the T = 1 case of the same code.

Memory is bounded by `block_bytes`, the size of one similarity block [B * n, M * s]; no
[Nq, Nc, n, s] tensor is ever built. Ties are broken by candidate index (lower first), the
same whatever the block sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from harness.budgets import Budget
from harness.constants import DEFAULT_BLOCK_BYTES
from harness.multivectors import MultiVectors

if TYPE_CHECKING:
    from harness.cache import ShardedVectors

DEFAULT_QUERY_BLOCK = 256
PADDING_RULES = ("exact", "zero")
# --score-dtype: the dtype of the MaxSim GEMM
SCORE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def maxsim(
    q_vectors: torch.Tensor,
    q_lengths: torch.Tensor,
    c_vectors: torch.Tensor,
    c_lengths: torch.Tensor,
    compute_dtype: torch.dtype = torch.float32,
    *,
    candidates_zero_padded: bool = False,
    padding: str = "exact",
    pad_width: int | None = None,
) -> torch.Tensor:
    """Dense MaxSim of B queries [B, n, D] against M candidates [M, s, D] -> float32 [B, M].

    Padded candidate vectors are zeroed (skipped when the caller guarantees it), so a padded
    position scores exactly 0 and can change a max only where every real similarity is <= 0;
    just those (query vector, candidate) pairs are recomputed with padding at -inf. That gives
    the masked result without a masking pass over the whole similarity block. With
    `padding="zero"` every candidate shorter than `pad_width` (default: the block's width)
    scores as if zero-padded to it: its max over vectors is taken with 0 included.

    A query of two vectors against a candidate with one real vector and one pad: each query
    vector takes its best real match (the pad never wins, even against -1), and they add up.

    >>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> c = torch.tensor([[[-1.0, 0.0], [0.0, 0.0]]])
    >>> maxsim(q, torch.tensor([2]), c, torch.tensor([1]))
    tensor([[-1.]])
    >>> maxsim(q, torch.tensor([2]), c, torch.tensor([1]), padding="zero")
    tensor([[0.]])
    """
    if padding not in PADDING_RULES:
        raise ValueError(f"padding must be one of {PADDING_RULES}, got {padding!r}")
    b, n, d = q_vectors.shape
    m, s, _ = c_vectors.shape
    ragged = bool((c_lengths < s).any())
    if ragged and not candidates_zero_padded:
        c_mask = torch.arange(s, device=c_lengths.device)[None, :] < c_lengths[:, None]
        c_vectors = c_vectors * c_mask.unsqueeze(-1).to(c_vectors.dtype)
    sim = (
        q_vectors.reshape(b * n, d).to(compute_dtype)
        @ c_vectors.reshape(m * s, d).to(compute_dtype).T
    )
    if s == 1 and not ragged and padding == "exact" and n == 1 and not bool((q_lengths < 1).any()):
        return sim.float()  # one vector a side: the similarity is the score (no reductions)
    sim = sim.view(b * n, m, s)
    best = sim.amax(dim=2)
    if padding == "zero":
        short = c_lengths < (s if pad_width is None else pad_width)
        if bool(short.any()):  # zero pads already in the block give the same; others are added
            best = torch.where(short.unsqueeze(0), best.clamp(min=0), best)
    elif ragged:
        short = c_lengths < s
        suspect = (best <= 0) & short.unsqueeze(0)
        count = int(suspect.sum())
        if count > best.numel() // 16:  # many non-positive similarities: mask everything
            c_mask = torch.arange(s, device=c_lengths.device)[None, :] < c_lengths[:, None]
            best = sim.masked_fill_(~c_mask.unsqueeze(0), float("-inf")).amax(dim=2)
        elif count:
            rows, cols = suspect.nonzero(as_tuple=True)
            keep = torch.arange(s, device=c_lengths.device)[None, :] < c_lengths[cols][:, None]
            fixed = sim[rows, cols].masked_fill(~keep, float("-inf")).amax(dim=1)
            best = best.index_put((rows, cols), fixed)  # out of place: training backpropagates
    best = best.view(b, n, m)
    if bool((q_lengths < n).any()):
        q_mask = torch.arange(n, device=q_lengths.device)[None, :] < q_lengths[:, None]
        best = best.masked_fill(~q_mask.unsqueeze(-1), 0.0)
    return best.float().sum(dim=1)


def _zero_padded_maxsim(
    q_vec: torch.Tensor,
    q_len: torch.Tensor,
    c_vec: torch.Tensor,
    c_len: torch.Tensor,
    compute_dtype: torch.dtype,
    padding: str,
    rc: int,
) -> torch.Tensor:
    """`maxsim` of a block whose candidates are zero-padded (stored or gathered), with the
    zero rule's pad width at the budget's `rc`."""
    return maxsim(
        q_vec,
        q_len,
        c_vec,
        c_len,
        compute_dtype,
        candidates_zero_padded=True,
        padding=padding,
        pad_width=rc,
    )


def _sides(
    queries: MultiVectors, candidates: MultiVectors | ShardedVectors, budget: Budget | None
) -> tuple[int, int]:
    rq = (
        queries.max_len
        if budget is None or budget.query is None
        else min(budget.query, queries.max_len)
    )
    rc = (
        candidates.max_len
        if budget is None or budget.candidate is None
        else min(budget.candidate, candidates.max_len)
    )
    return rq, rc


# Bytes per (query, candidate) pair beyond the similarities: the running top-k merge's score,
# index and order buffers.
MERGE_BYTES_PER_PAIR = 32


def _block_sizes(
    n_queries: int,
    n_candidates: int,
    rq: int,
    rc: int,
    query_block: int,
    block_bytes: int,
    *,
    copy_bytes: int = 0,
    compute_bytes: int = 4,
) -> tuple[int, int]:
    """(queries, candidates) per block so that one block's scoring memory fits block_bytes.

    Counted: the [B*n, M*s] similarity block at the compute dtype's size plus 4 bytes an
    element (measured on the CPU: its GEMM holds a second, float32 buffer of the block's size
    at the peak), the merge buffers per pair, and `copy_bytes` per candidate for the copies of
    its vectors that scoring makes (see `_copy_bytes`), which dominate when few queries share
    a block. On a GPU the measured peak is about half of what this counts.
    """
    pair = rq * rc * (compute_bytes + 4) + MERGE_BYTES_PER_PAIR
    per_candidate = copy_bytes
    b = max(1, min(n_queries, query_block, block_bytes // max(1, pair + per_candidate)))
    m = max(1, min(n_candidates, block_bytes // (b * pair + per_candidate)))
    return b, m


def _copy_bytes(
    rc: int,
    dim: int,
    storage: torch.dtype,
    compute: torch.dtype,
    *,
    sliced: bool,
) -> int:
    """Bytes per candidate of the copies one block makes: a contiguous copy in the storage
    dtype when the block is a prefix of the stored vectors, read from disk, gathered or moved to
    another device (`sliced`), and a cast copy when the compute dtype differs."""
    element = torch.empty(0, dtype=storage).element_size()
    copies = (element if sliced else 0) + (
        torch.empty(0, dtype=compute).element_size() if compute != storage else 0
    )
    return rc * dim * copies


def _block(mv: MultiVectors, start: int, stop: int, r: int, device: torch.device | None):
    vectors = mv.vectors[start:stop, :r]
    lengths = mv.lengths[start:stop].clamp(max=r)
    if device is not None:
        vectors, lengths = vectors.to(device), lengths.to(device)
    return vectors, lengths


def score_corpus(
    queries: MultiVectors,
    corpus: MultiVectors | ShardedVectors,
    budget: Budget | None = None,
    *,
    k: int = 100,
    query_block: int = DEFAULT_QUERY_BLOCK,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: torch.device | str | None = None,
    compute_dtype: torch.dtype = torch.float32,
    padding: str = "exact",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k candidates of a shared corpus for every query.

    Returns (scores, indices), each [Nq, min(k, Nc)], best first; ties go to the lower
    candidate index. The corpus's padded vectors must be zero (the MultiVectors invariant,
    which the embedding cache enforces). Candidate blocks stream past a running top-k per
    query, so the corpus may also be a `ShardedVectors` left on disk and read block by block
    (out-of-core scoring); the result is the same.

    >>> queries = MultiVectors(torch.tensor([[[1.0, 0.0]]]), torch.tensor([1]))
    >>> corpus = MultiVectors(torch.tensor([[[0.5, 0.0]], [[0.9, 0.0]], [[0.9, 0.0]]]),
    ...                       torch.tensor([1, 1, 1]))
    >>> score_corpus(queries, corpus, k=2)
    (tensor([[0.9000, 0.9000]]), tensor([[1, 2]]))
    """
    device = torch.device(device) if device is not None else None
    nq, nc = len(queries), len(corpus)
    k = min(k, nc)
    rq, rc = _sides(queries, corpus, budget)
    sliced = (
        rc < corpus.max_len
        or not isinstance(corpus, MultiVectors)
        or (device is not None and device != corpus.vectors.device)
    )
    b, m = _block_sizes(
        nq,
        nc,
        rq,
        rc,
        query_block,
        block_bytes,
        copy_bytes=_copy_bytes(rc, queries.dim, corpus.dtype, compute_dtype, sliced=sliced),
        compute_bytes=torch.empty(0, dtype=compute_dtype).element_size(),
    )
    # The running top-k lives where the scores are computed (no per-block copies to the host).
    where = device if device is not None else queries.vectors.device
    top_scores = torch.empty(nq, k, device=where)
    top_index = torch.empty(nq, k, dtype=torch.long, device=where)
    if k == 0 or nq == 0:
        return top_scores.cpu(), top_index.cpu()
    filled = False
    for c0, chunk in corpus.chunks(m, rc):
        c1 = c0 + len(chunk)
        c_vec, c_len = _block(chunk, 0, len(chunk), chunk.max_len, device)
        c_vec = c_vec.to(compute_dtype)  # cast once per candidate block, not per query block
        block_index = torch.arange(c0, c1, device=where)
        for q0 in range(0, nq, b):
            q1 = min(nq, q0 + b)
            q_vec, q_len = _block(queries, q0, q1, rq, device)
            scores = _zero_padded_maxsim(q_vec, q_len, c_vec, c_len, compute_dtype, padding, rc)
            _merge(top_scores[q0:q1], top_index[q0:q1], scores, block_index, filled)
        filled = True
    return top_scores.cpu(), top_index.cpu()


def _merge(
    top_scores: torch.Tensor,
    top_index: torch.Tensor,
    scores: torch.Tensor,
    block_index: torch.Tensor,
    filled: bool,
) -> None:
    """Merge one block's scores into the running top-k of its queries (views, updated in place).

    The block's own k best come first (exact, in (score desc, index asc) order); the running
    entries all come from earlier blocks (lower indices) and are in that order too, so a
    stable sort of the two short lists keeps the tie rule exact, and nothing the size of the
    block is copied.
    """
    k = top_scores.shape[1]
    scores, index = _best_columns(scores, block_index.expand(scores.shape[0], -1), k)
    if filled:
        # Padding entries (-inf, index -1; the same count in every row, left while fewer than
        # k candidates have been seen) go after the block, so a real candidate scoring -inf
        # (one with no vectors) still ranks above them.
        real = int((top_index[0] >= 0).sum())
        scores = torch.cat([top_scores[:, :real], scores, top_scores[:, real:]], dim=1)
        index = torch.cat([top_index[:, :real], index, top_index[:, real:]], dim=1)
        scores, index = _best_columns(scores, index, k)
    width = scores.shape[1]  # the first block may hold fewer than k candidates
    top_scores[:, :width] = scores
    top_index[:, :width] = index
    if width < k:
        top_scores[:, width:] = float("-inf")
        top_index[:, width:] = -1


def _best_columns(
    scores: torch.Tensor, index: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's k best columns, in the order a stable descending sort gives (score, then
    column), as (scores, index) [rows, min(k, width)].

    topk takes each row's k + 1 best, sorted. Where no two of them share a score (the usual
    case with float scores) that is already the answer; a row with a tie among them has every
    column at or above its k-th score compacted, in column order, and stably sorted. Exact,
    and much cheaper than sorting every column.
    """
    width = scores.shape[1]
    kk = min(k, width)
    values, cols = scores.topk(min(kk + 1, width), dim=1)
    tied = (values[:, 1:] == values[:, :-1]).any(dim=1)
    values, cols = values[:, :kk], cols[:, :kk]
    chosen = index.gather(1, cols)
    if bool(tied.any()):
        rows = tied.nonzero(as_tuple=True)[0]
        values[rows], chosen[rows] = _best_columns_tied(scores[rows], index[rows], kk)
    return values, chosen


def _best_columns_tied(
    scores: torch.Tensor, index: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`_best_columns` for rows whose k-th score is tied: every column at or above it,
    compacted in column order, then sorted."""
    rows, width = scores.shape
    kth = scores.topk(k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)
    keep = scores >= kth
    wide = int(keep.sum(dim=1).max())
    slot = keep.long().cumsum(dim=1) - 1
    row = torch.arange(rows, device=scores.device)[:, None].expand(-1, width)
    packed = torch.full((rows, wide), float("-inf"), device=scores.device)
    packed_index = torch.full((rows, wide), -1, dtype=torch.long, device=scores.device)
    packed[row[keep], slot[keep]] = scores[keep]
    packed_index[row[keep], slot[keep]] = index[keep]
    order = torch.sort(packed, dim=1, descending=True, stable=True).indices[:, :k]
    return packed.gather(1, order), packed_index.gather(1, order)


def score_candidate_lists(
    queries: MultiVectors,
    candidates: MultiVectors,
    lists: Sequence[Sequence[int] | torch.Tensor],
    budget: Budget | None = None,
    *,
    query_block: int = DEFAULT_QUERY_BLOCK,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: torch.device | str | None = None,
    compute_dtype: torch.dtype = torch.float32,
    padding: str = "exact",
) -> list[torch.Tensor]:
    """Score each query only against its own candidate list (indices into `candidates`).

    A block of queries is scored densely against the union of its lists, then each query's
    scores are gathered in list order; lists may differ in length and share candidates.
    """
    device = torch.device(device) if device is not None else None
    if len(lists) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(lists)} candidate lists")
    rq, rc = _sides(queries, candidates, budget)
    cap_b, cap_m = _block_sizes(
        len(queries),
        max(1, len(candidates)),
        rq,
        rc,
        query_block,
        block_bytes,
        copy_bytes=_copy_bytes(
            rc,
            queries.dim,
            candidates.dtype,
            compute_dtype,
            sliced=True,  # index_select copies
        ),
        compute_bytes=torch.empty(0, dtype=compute_dtype).element_size(),
    )
    tensors = [torch.as_tensor(lst, dtype=torch.long) for lst in lists]
    out: list[torch.Tensor] = [torch.empty(0)] * len(queries)
    i = 0
    while i < len(queries):
        j, members = _list_block(tensors, i, cap_b, cap_m)
        q_vec, q_len = _block(queries, i, j, rq, device)
        # A single huge list is scored in candidate chunks that respect the block budget.
        chunk = max(1, (cap_b * cap_m) // (j - i))
        parts = [
            _dense(
                q_vec,
                q_len,
                candidates,
                members[c0 : c0 + chunk],
                rc,
                device,
                compute_dtype,
                padding,
            )
            for c0 in range(0, len(members), chunk)
        ]
        dense = torch.cat(parts, dim=1) if parts else torch.empty(j - i, 0)
        position = torch.searchsorted(members, torch.cat([tensors[x] for x in range(i, j)]))
        start = 0
        for row, x in enumerate(range(i, j)):
            size = len(tensors[x])
            out[x] = dense[row, position[start : start + size]]
            start += size
        i = j
    return out


def _dense(
    q_vec: torch.Tensor,
    q_len: torch.Tensor,
    candidates: MultiVectors,
    sel: torch.Tensor,
    rc: int,
    device: torch.device | None,
    compute_dtype: torch.dtype,
    padding: str,
) -> torch.Tensor:
    """MaxSim of a block of queries against the selected candidates, on the CPU."""
    c_vec = candidates.vectors.index_select(0, sel)[:, :rc]
    c_len = candidates.lengths.index_select(0, sel).clamp(max=rc)
    if device is not None:
        c_vec, c_len = c_vec.to(device), c_len.to(device)
    scores = _zero_padded_maxsim(q_vec, q_len, c_vec, c_len, compute_dtype, padding, rc)
    return scores.cpu()


def score_shortlists(
    queries: MultiVectors,
    candidates: MultiVectors | ShardedVectors,
    shortlists: torch.Tensor,
    budget: Budget | None = None,
    *,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    device: torch.device | str | None = None,
    compute_dtype: torch.dtype = torch.float32,
    padding: str = "exact",
) -> torch.Tensor:
    """Each query against its own `d` candidates: `shortlists` [Nq, d] holds rows of
    `candidates`; returns float32 [Nq, d] in the same positions.

    A cascade's second stage, by the padding rules of `maxsim`. A block of queries gathers
    the candidates it names (from memory, or only those rows from the shards on disk) and
    scores them in one batched product: Nq * d pairs whatever the lists' overlap. A shortlist
    of DENSE_SHORTLIST_FRACTION of the corpus or more goes through the dense scan instead,
    which is then cheaper (`_dense_then_pick`)."""
    device = torch.device(device) if device is not None else None
    shortlists = torch.as_tensor(shortlists, dtype=torch.long)
    if shortlists.dim() != 2 or shortlists.shape[0] != len(queries):
        raise ValueError(
            f"shortlists must be [{len(queries)}, depth], got {tuple(shortlists.shape)}"
        )
    nq, depth = shortlists.shape
    rq, rc = _sides(queries, candidates, budget)
    out = torch.empty(nq, depth)
    if nq == 0 or depth == 0:
        return out
    compute = torch.empty(0, dtype=compute_dtype).element_size()
    pair = rq * rc * (compute + 4)  # the similarity block, as in `_block_sizes`
    if depth >= DENSE_SHORTLIST_FRACTION * len(candidates):
        return _dense_then_pick(
            queries, candidates, shortlists, rq, rc, block_bytes, device, compute_dtype, padding,
        )  # fmt: skip
    per_query = depth * (
        pair + _copy_bytes(rc, queries.dim, candidates.dtype, compute_dtype, sliced=True)
    )
    b = max(1, min(nq, DEFAULT_QUERY_BLOCK, block_bytes // max(1, per_query)))
    for q0 in range(0, nq, b):
        q1 = min(nq, q0 + b)
        gathered = gather_rows(candidates, shortlists[q0:q1].reshape(-1), rc)
        q_vec, q_len = _block(queries, q0, q1, rq, device)
        c_vec, c_len = gathered.vectors, gathered.lengths
        if device is not None:
            c_vec, c_len = c_vec.to(device), c_len.to(device)
        width = c_vec.shape[1]
        out[q0:q1] = maxsim_grouped(
            q_vec.unsqueeze(1),
            q_len.unsqueeze(1),
            c_vec.view(q1 - q0, depth, width, -1),
            c_len.view(q1 - q0, depth),
            compute_dtype,
            padding=padding,
            pad_width=rc,
        )[:, 0].cpu()
    return out


# From this fraction of the corpus on, a shortlist is re-scored through the dense scan (every
# candidate, then the listed ones picked): gathering each query's candidates moves Nq * d
# candidates through memory, where the dense scan reads each candidate once per block of
# queries at GEMM speed; measured on libdocs-corpus (2 cores), gathering cost 1.7x the dense
# scan at d/N = 20% and a tenth of it at 2%.
DENSE_SHORTLIST_FRACTION = 0.125


def _dense_then_pick(
    queries: MultiVectors,
    candidates: MultiVectors | ShardedVectors,
    shortlists: torch.Tensor,
    rq: int,
    rc: int,
    block_bytes: int,
    device: torch.device | None,
    compute_dtype: torch.dtype,
    padding: str,
) -> torch.Tensor:
    """`score_shortlists` for deep shortlists: each block of queries scored against the whole
    corpus, as `score_corpus` blocks it, and the listed candidates' scores picked."""
    nq, depth = shortlists.shape
    n = len(candidates)
    b = max(1, min(nq, DEFAULT_QUERY_BLOCK, (block_bytes // 2) // max(1, 4 * n)))
    _, m = _block_sizes(
        b,
        n,
        rq,
        rc,
        b,
        block_bytes // 2,
        copy_bytes=_copy_bytes(rc, queries.dim, candidates.dtype, compute_dtype, sliced=True),
        compute_bytes=torch.empty(0, dtype=compute_dtype).element_size(),
    )
    out = torch.empty(nq, depth)
    for q0 in range(0, nq, b):
        q1 = min(nq, q0 + b)
        q_vec, q_len = _block(queries, q0, q1, rq, device)
        dense = torch.empty(q1 - q0, n)
        for c0, chunk in candidates.chunks(m, rc):
            c_vec, c_len = _block(chunk, 0, len(chunk), chunk.max_len, device)
            dense[:, c0 : c0 + len(chunk)] = _zero_padded_maxsim(
                q_vec, q_len, c_vec, c_len, compute_dtype, padding, rc
            ).cpu()
        out[q0:q1] = dense.gather(1, shortlists[q0:q1])
    return out


def gather_rows(
    candidates: MultiVectors | ShardedVectors, rows: torch.Tensor, r: int
) -> MultiVectors:
    """The given rows' first `r` vectors, in that order (repeats allowed), zero-padded."""
    if isinstance(candidates, MultiVectors):
        return MultiVectors(candidates.vectors[rows, :r], candidates.lengths[rows].clamp(max=r))
    return candidates.gather(rows, r)


def maxsim_grouped(
    q_vectors: torch.Tensor,
    q_lengths: torch.Tensor,
    c_vectors: torch.Tensor,
    c_lengths: torch.Tensor,
    compute_dtype: torch.dtype = torch.float32,
    *,
    padding: str = "exact",
    pad_width: int | None = None,
) -> torch.Tensor:
    """MaxSim within each of G groups: its k queries [G, k, n, D] against its d candidates
    [G, d, s, D] (zero-padded past `q_lengths` [G, k] and `c_lengths` [G, d]) -> float32
    [G, k, d], in one batched product, by the rules of `maxsim`: padded candidate positions at
    -inf (`padding="exact"`) or a candidate shorter than `pad_width` scored as if zero-padded to
    it (`"zero"`); padded query vectors add nothing."""
    if padding not in PADDING_RULES:
        raise ValueError(f"padding must be one of {PADDING_RULES}, got {padding!r}")
    g, k, n, dim = q_vectors.shape
    _, d, s, _ = c_vectors.shape
    sim = torch.bmm(
        q_vectors.reshape(g, k * n, dim).to(compute_dtype),
        c_vectors.reshape(g, d * s, dim).to(compute_dtype).mT,
    ).view(g, k, n, d, s)
    if padding == "exact" and bool((c_lengths < s).any()):
        real = torch.arange(s, device=c_lengths.device) < c_lengths.unsqueeze(-1)  # [G, d, s]
        sim = sim.masked_fill(~real[:, None, None], float("-inf"))
    best = sim.amax(dim=4)  # [G, k, n, d]
    if padding == "zero":
        short = c_lengths < (s if pad_width is None else pad_width)
        if bool(short.any()):
            best = torch.where(short[:, None, None], best.clamp(min=0), best)
    if bool((q_lengths < n).any()):
        q_mask = torch.arange(n, device=q_lengths.device) < q_lengths.unsqueeze(-1)  # [G, k, n]
        best = best.masked_fill(~q_mask.unsqueeze(-1), 0.0)
    return best.float().sum(dim=2)


def rank_shortlists(
    scores: torch.Tensor, shortlists: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's shortlist by score descending, ties to the lower row: ([Nq, d], [Nq, d]).

    >>> rank_shortlists(torch.tensor([[0.2, 0.9, 0.2]]), torch.tensor([[7, 4, 3]]))
    (tensor([[0.9000, 0.2000, 0.2000]]), tensor([[4, 3, 7]]))
    """
    rows, by_row = torch.sort(shortlists, dim=1, stable=True)
    scores = scores.gather(1, by_row)
    scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
    return scores, rows.gather(1, order)


def _list_block(
    tensors: list[torch.Tensor], i: int, cap_b: int, cap_m: int
) -> tuple[int, torch.Tensor]:
    """(end, sorted union of their candidates) of the block of queries starting at i: grown
    while it fits memory and dense scoring of the union does at most twice the pairs the lists
    need (lists that barely overlap go to separate blocks)."""
    union: set[int] = set(tensors[i].tolist())
    needed = len(tensors[i])
    j = i + 1
    while j < len(tensors) and j - i < cap_b:
        grown = union.union(tensors[j].tolist())
        pairs = len(grown) * (j + 1 - i)
        if pairs > cap_b * cap_m or pairs > 2 * (needed + len(tensors[j])):
            break
        union, needed, j = grown, needed + len(tensors[j]), j + 1
    return j, torch.tensor(sorted(union), dtype=torch.long)
