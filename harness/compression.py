"""Candidate vectors stored compressed, as part of a budget (`16x64:int8`).

fp16 / bf16: each value rounded to that type. int8: per-vector scaled, q = round(v / s) with
s = max|v| / 127, stored as D int8 values plus s in float32. binary: the sign of each value,
D bits, scored as sign(v) / sqrt(D) (a unit vector) against full-precision queries: an
asymmetric rule with no rescoring; a rescoring pass over a shortlist is a cascade, e.g.
`16x64:binary>16x64@100`.

Scoring reads the stored form back as float32 (dequantized) and runs the same MaxSim, so
every rule is exact for what is stored; a corpus scored out of core is dequantized block by
block as it is read. Padding stays zero.
"""

from __future__ import annotations

import math

import torch

from harness.multivectors import MultiVectors


def bytes_per_vector(storage: str | None, dim: int, model_bytes: int) -> float:
    """Bytes a stored candidate vector takes (None: the model's own dtype)."""
    if storage is None:
        return dim * model_bytes
    return {
        "fp16": 2.0 * dim,
        "bf16": 2.0 * dim,
        "int8": dim + 4.0,  # the values and one float32 scale
        "binary": math.ceil(dim / 8),
    }[storage]


def stored(mv: MultiVectors, storage: str | None) -> MultiVectors:
    """The vectors as read back from their stored form (float32; padding zero)."""
    if storage is None:
        return mv
    v = mv.vectors.float()
    if storage == "fp16":
        out = v.half().float()
    elif storage == "bf16":
        out = v.bfloat16().float()
    elif storage == "int8":
        scale = v.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / 127.0
        out = (v / scale).round().clamp(-127, 127) * scale
    elif storage == "binary":
        out = torch.where(v > 0, 1.0, -1.0) / math.sqrt(v.shape[-1])
    else:
        raise ValueError(f"unknown vector storage {storage!r}")
    return MultiVectors(out, mv.lengths).zero_padding()
