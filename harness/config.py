"""The run configuration: one dataclass, echoed in full into every result file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

# What `python -m harness run` evaluates when given no models or tasks.
DEFAULT_MODELS: tuple[str, ...] = ("metaembed-mini", "single-mean", "colbert")
DEFAULT_TASKS: tuple[str, ...] = ("libdocs-quick",)
DEFAULT_OUTPUT = "results/runs"
# Size of one float32 similarity block in scoring; bounds scoring memory.
DEFAULT_BLOCK_BYTES = 256 * 2**20


def _env_data_dir() -> str | None:
    return os.environ.get("HARNESS_DATA_DIR") or None


@dataclass
class RunConfig:
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASKS))
    budgets: list[str] | None = None  # None: each model's default budgets
    model_args: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = field(default_factory=_env_data_dir)
    output: str = DEFAULT_OUTPUT
    cache_dir: str | None = None  # None: HARNESS_CACHE_DIR or ~/.cache/harness
    no_cache: bool = False
    shard_size: int = 512  # items per cache shard
    limit: int | None = None
    batch_size: int = 32
    device: str = "auto"
    overwrite: bool = False
    top_k: int = 100
    block_bytes: int = DEFAULT_BLOCK_BYTES
    progress: bool = True
    trec_runs: bool = False  # also write TREC run files per (model, task, budget)
    # Shared-corpus candidate embeddings larger than this many bytes are scored from the cache
    # on disk, shard by shard (exact); None keeps them in memory.
    memory_limit: int | None = None
    # dtype of the MaxSim GEMM: float32 (default, exact ranking of stored vectors) or bfloat16 /
    # float16 (faster on GPUs; similarities are rounded, so near-ties may reorder)
    score_dtype: str = "float32"
    # How a candidate's padded vectors (fewer vectors than the budget) score in MaxSim: "exact"
    # (never win the max) or "zero" (score 0, as colpali-engine, pylate and mteb do)
    candidate_padding: str = "exact"
    index: str = "exact"  # exact | faiss | faiss:FACTORY[|PARAMS] (harness.index)

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["device"] = self.resolved_device()
        return out
