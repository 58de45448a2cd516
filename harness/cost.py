"""Cost of a budget: vectors kept, index bytes, scoring FLOPs (measured time is added by the loop)."""

from __future__ import annotations

import torch

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


def dtype_bytes(dtype: str | torch.dtype) -> int:
    name = str(dtype).replace("torch.", "")
    if name not in DTYPE_BYTES:
        raise ValueError(f"unknown storage dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[name]


def kept_vectors(lengths: torch.Tensor, r: int | None) -> float:
    """Mean number of vectors per item that take part under a budget side r (None: all)."""
    if len(lengths) == 0:
        return 0.0
    kept = lengths if r is None else lengths.clamp(max=r)
    return float(kept.double().mean())


def budget_cost(
    query_lengths: torch.Tensor,
    candidate_lengths: torch.Tensor,
    r_query: int | None,
    r_candidate: int | None,
    dim: int,
    dtype: str | torch.dtype,
) -> dict[str, float]:
    """vectors per query / candidate, index bytes per candidate (r_c * D * bytes), FLOPs per pair (2 r_q r_c D)."""
    vq = kept_vectors(query_lengths, r_query)
    vc = kept_vectors(candidate_lengths, r_candidate)
    return {
        "vectors_per_query": vq,
        "vectors_per_candidate": vc,
        "index_bytes_per_candidate": vc * dim * dtype_bytes(dtype),
        "scoring_flops_per_pair": 2.0 * vq * vc * dim,
    }
