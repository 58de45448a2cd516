"""The harness's defaults and where it keeps its files: a leaf module that imports nothing of
the project, so that any module (scoring, caching, losses, the encoders) can read a default
without loading the CLI's settings."""

from __future__ import annotations

import os
from pathlib import Path

# What `python -m harness run` evaluates when given no models or tasks.
DEFAULT_MODELS: tuple[str, ...] = ("metaembed-mini", "single-mean", "colbert")
DEFAULT_TASKS: tuple[str, ...] = ("libdocs-quick",)
DEFAULT_OUTPUT = "results/runs"
# Size of one float32 similarity block in scoring; bounds scoring memory.
DEFAULT_BLOCK_BYTES = 256 * 2**20
DEFAULT_SHARD_SIZE = 512  # items per embedding-cache shard

# Training.
DEFAULT_TEMPERATURE = 0.03  # InfoNCE temperature, the MetaEmbed recipe's
OBJECTIVES = ("mmr", "nommr")
NEGATIVES = ("own", "batch")
GROUP_REDUCTIONS = ("mean", "sum")
TUNES = ("lora", "full", "frozen")
SCHEDULES = ("linear", "cosine", "constant")
STATE_DIR = "state"  # in a checkpoint folder: what resuming needs
LOG_FILE = "train_log.jsonl"


def harness_home() -> Path:
    """Where the harness keeps what it makes: embeddings, downloaded snapshots, OCR text,
    reassembled models ($HARNESS_CACHE_DIR, default ~/.cache/harness)."""
    return Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "harness"))


def resolve_device(device: str | None) -> str:
    """`auto` (or None): cuda when torch sees a GPU, else cpu; anything else as given. A run
    resolves its device once, here, and hands the result to the encoders and the trainer."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
