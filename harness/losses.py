"""Training objectives on prefix-sliced MaxSim scores (pure functions of embeddings).

Matryoshka Multi-Vector Retrieval (MMR): one InfoNCE term per nested group (r_q, r_c), each on
the MaxSim scores of the first r_q query and first r_c candidate vectors, temperature 0.03,
in-batch negatives (every other query's positive, gathered across ranks) plus each query's own
hard negative, equal weights. NoMMR keeps only the largest group; a single-vector model is the
(1, 1) case and a naive multi-vector model its own (K_q, K_c).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from harness.budgets import METAEMBED_BUDGETS, Budget
from harness.config import DEFAULT_TEMPERATURE
from harness.errors import UsageError
from harness.scoring import maxsim

DEFAULT_GROUPS: tuple[tuple[int, int], ...] = tuple(
    (b.query, b.candidate) for b in METAEMBED_BUDGETS
)


def parse_groups(
    text: str | Sequence[tuple[int, int]] | None, max_query: int | None, max_candidate: int | None
) -> list[tuple[int, int]]:
    """Groups must be strictly increasing on both sides and fit the model's slot counts."""
    if text is None:
        groups = list(DEFAULT_GROUPS)
    elif isinstance(text, str):
        groups = []
        for part in text.split(","):
            budget = Budget.parse(part)
            if budget.query is None or budget.candidate is None:
                raise UsageError(f"training group {part!r} needs explicit counts, e.g. 16x64")
            groups.append((budget.query, budget.candidate))
    else:
        groups = [tuple(g) for g in text]
    if not groups:
        raise UsageError("no training groups given")
    for (q0, c0), (q1, c1) in zip(groups, groups[1:], strict=False):
        if not (q1 > q0 and c1 > c0):
            raise UsageError(
                f"training groups must be strictly increasing on both sides: {q0}x{c0} then {q1}x{c1}"
            )
    q, c = groups[-1]
    if (max_query is not None and q > max_query) or (
        max_candidate is not None and c > max_candidate
    ):
        raise UsageError(
            f"training group {q}x{c} exceeds the model's {max_query} query / {max_candidate} candidate vectors"
        )
    return groups


def info_nce(
    scores: torch.Tensor, targets: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE
) -> torch.Tensor:
    """Cross-entropy of each query's row of scores / temperature against its positive's column."""
    return torch.nn.functional.cross_entropy(scores.float() / temperature, targets)


def mmr_loss(
    q_vectors: torch.Tensor,
    q_lengths: torch.Tensor,
    c_vectors: torch.Tensor,
    c_lengths: torch.Tensor,
    targets: torch.Tensor,
    groups: Sequence[tuple[int, int]] = DEFAULT_GROUPS,
    temperature: float = DEFAULT_TEMPERATURE,
    weights: Sequence[float] | None = None,
    exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Sum over groups of weight x InfoNCE on MaxSim of the prefixes; also each group's term.

    queries [B, n, D]; candidates [M, s, D] (positives, hard negatives, other ranks' items);
    targets [B]: the column of each query's positive; exclude [B, M]: columns that are not
    negatives for that row (another copy of its positive), left out of the softmax.
    """
    weights = [1.0] * len(groups) if weights is None else list(weights)
    terms = []
    for rq, rc in groups:
        scores = maxsim(
            q_vectors[:, :rq], q_lengths.clamp(max=rq), c_vectors[:, :rc], c_lengths.clamp(max=rc)
        )
        if exclude is not None:
            scores = scores.masked_fill(exclude, float("-inf"))
        terms.append(info_nce(scores, targets, temperature))
    total = sum(w * t for w, t in zip(weights, terms, strict=True))
    return total, terms


def gather_candidates(
    vectors: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Concatenate every rank's candidates (gradients flow through this rank's own part).

    Returns the gathered vectors and lengths and the offset of this rank's block.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return vectors, lengths, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    sizes = [torch.zeros(1, dtype=torch.long, device=vectors.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([vectors.shape[0]], device=vectors.device))
    most = int(max(s.item() for s in sizes))
    widths = [torch.zeros(1, dtype=torch.long, device=vectors.device) for _ in range(world)]
    dist.all_gather(widths, torch.tensor([vectors.shape[1]], device=vectors.device))
    wide = int(max(w.item() for w in widths))
    padded = torch.nn.functional.pad(
        vectors, (0, 0, 0, wide - vectors.shape[1], 0, most - vectors.shape[0])
    )
    padded_len = torch.nn.functional.pad(lengths, (0, most - lengths.shape[0]))
    all_vec = [torch.zeros_like(padded) for _ in range(world)]
    all_len = [torch.zeros_like(padded_len) for _ in range(world)]
    dist.all_gather(all_vec, padded.contiguous())
    dist.all_gather(all_len, padded_len.contiguous())
    all_vec[rank] = padded  # keep the autograd graph for this rank's part
    keep = [int(s.item()) for s in sizes]
    vec = torch.cat([v[:k] for v, k in zip(all_vec, keep, strict=True)])
    lens = torch.cat([v[:k] for v, k in zip(all_len, keep, strict=True)])
    return vec, lens, sum(keep[:rank])
