"""Training objectives on prefix-sliced MaxSim scores (pure functions of embeddings).

Matryoshka Multi-Vector Retrieval (MMR) as the released `ColbertInBatchNegativeLoss` computes
it (colpali_engine/loss/late_interaction_losses.py of github.com/facebookresearch/MetaEmbed,
configured by its scripts/7b_mrl.yaml): one InfoNCE term per group [r_q, r_c, weight], each on
the MaxSim scores of the first r_q query and first r_c candidate vectors, temperature 0.03, no
score normalisation. A query's softmax holds every in-batch positive (gathered across ranks)
and its own hard negative, not the other queries' hard negatives; the total is the weighted sum
of the terms divided by the number of groups. NoMMR keeps only the largest group; a
single-vector model is the (1, 1) case and a naive multi-vector model its own (K_q, K_c).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch

from harness.budgets import METAEMBED_BUDGETS, Budget
from harness.constants import DEFAULT_TEMPERATURE
from harness.errors import UsageError
from harness.scoring import maxsim

Group = tuple[int, int, float]  # (r_q, r_c, weight), the released `mrl_groups` entry
DEFAULT_GROUPS: tuple[Group, ...] = tuple((b.query, b.candidate, 1.0) for b in METAEMBED_BUDGETS)
REDUCTIONS = ("mean", "sum")


def parse_groups(
    text: str | Sequence[Sequence[float]] | None,
    max_query: int | None,
    max_candidate: int | None,
) -> list[Group]:
    """Training groups with their weights: `1x1,2x4` (weight 1 each), `1x1=2,16x64=0.5`, or
    the released config's list `[[1, 1, 1.0], [2, 4, 1.0]]`. Groups must be strictly increasing
    on both sides and fit the model's slot counts; weights must be positive."""
    if text is None:
        groups = list(DEFAULT_GROUPS)
    elif isinstance(text, str) and text.strip().startswith("["):
        try:
            groups = [_group(entry) for entry in json.loads(text)]
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"--groups {text!r} is not a list of [r_q, r_c, weight] entries: {exc}"
            ) from None
    elif isinstance(text, str):
        groups = []
        for part in text.split(","):
            counts, _, weight = part.strip().partition("=")
            budget = Budget.parse(counts)
            if budget.query is None or budget.candidate is None:
                raise UsageError(f"training group {part!r} needs explicit counts, e.g. 16x64")
            try:
                value = float(weight) if weight else 1.0
            except ValueError:
                raise UsageError(
                    f"training group {part!r}: weight {weight!r} is not a number"
                ) from None
            groups.append((budget.query, budget.candidate, value))
    else:
        groups = [_group(g) for g in text]
    if not groups:
        raise UsageError("no training groups given")
    for q, c, w in groups:
        if not (w > 0 and w != float("inf")):
            raise UsageError(f"training group {q}x{c} has weight {w}; weights must be positive")
    for (q0, c0, _), (q1, c1, _) in zip(groups, groups[1:], strict=False):
        if not (q1 > q0 and c1 > c0):
            raise UsageError(
                f"training groups must be strictly increasing on both sides: {q0}x{c0} then {q1}x{c1}"
            )
    q, c, _ = groups[-1]
    if (max_query is not None and q > max_query) or (
        max_candidate is not None and c > max_candidate
    ):
        raise UsageError(
            f"training group {q}x{c} exceeds the model's {max_query} query / {max_candidate} candidate vectors"
        )
    return groups


def _group(entry: Sequence[float]) -> Group:
    """One [r_q, r_c] or [r_q, r_c, weight] entry."""
    if not isinstance(entry, list | tuple) or len(entry) not in (2, 3):
        raise UsageError(f"training group {entry!r} must be [r_q, r_c] or [r_q, r_c, weight]")
    q, c = entry[0], entry[1]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (q, c)):
        raise UsageError(f"training group {list(entry)!r} needs positive whole counts")
    weight = entry[2] if len(entry) == 3 else 1.0
    if not isinstance(weight, int | float) or isinstance(weight, bool):
        raise UsageError(f"training group {list(entry)!r}: weight is not a number")
    return (int(q), int(c), float(weight))


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
    groups: Sequence[Sequence[float]] = DEFAULT_GROUPS,
    temperature: float = DEFAULT_TEMPERATURE,
    exclude: torch.Tensor | None = None,
    reduction: str = "mean",
    normalize: bool = False,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Weighted sum over groups of InfoNCE on MaxSim of the prefixes, divided by the number of
    groups (`reduction="mean"`, the released loss) or not (`"sum"`); also each group's term.
    `normalize` divides each query's scores by the number of its vectors in the group (the
    released class's `normalize_scores`, which its MetaEmbed config turns off): a temperature
    per group, r_q times the base one, so that no group's logits are sharper for summing more
    query vectors.

    queries [B, n, D]; candidates [M, s, D] (positives, hard negatives, other ranks' items);
    targets [B]: the column of each query's positive; groups: (r_q, r_c[, weight]);
    exclude [B, M]: columns left out of that row's softmax (other queries' hard negatives,
    under the released loss).
    """
    if reduction not in REDUCTIONS:
        raise UsageError(
            f"group reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}"
        )
    weights = [float(g[2]) if len(g) > 2 else 1.0 for g in groups]
    terms = []
    for group in groups:
        rq, rc = int(group[0]), int(group[1])
        used = q_lengths.clamp(max=rq)
        scores = maxsim(q_vectors[:, :rq], used, c_vectors[:, :rc], c_lengths.clamp(max=rc))
        if normalize:
            scores = scores / used.clamp(min=1).to(scores.dtype)[:, None]
        if exclude is not None:
            scores = scores.masked_fill(exclude, float("-inf"))
        terms.append(info_nce(scores, targets, temperature))
    total = sum(w * t for w, t in zip(weights, terms, strict=True))
    if reduction == "mean":
        total = total / len(groups)
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
