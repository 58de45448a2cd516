"""What every stage of one (model, task) evaluation needs, gathered once."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import distributed
from harness.cache import EmbeddingCache
from harness.config import RunConfig
from harness.index import IndexSpec, parse_index
from harness.protocol import Encoder, ModelCard
from harness.task import TaskSpec


@dataclass
class TaskContext:
    encoder: Encoder
    spec: TaskSpec
    config: RunConfig
    cache: EmbeddingCache
    dist: distributed.Dist = field(default_factory=distributed.Dist)
    card: ModelCard = field(init=False)
    device: str = field(init=False)
    index: IndexSpec = field(init=False)

    def __post_init__(self) -> None:
        self.card = self.encoder.card  # computed once: a card may hash weights
        self.device = self.config.resolved_device()
        self.index = parse_index(self.config.index)

    @property
    def show_progress(self) -> bool:
        return self.config.progress and self.dist.is_main

    @property
    def score_device(self) -> str | None:
        """Where scoring runs: None keeps it on the CPU tensors where the vectors are."""
        return self.device if self.device != "cpu" else None

    @property
    def block_bytes(self) -> int:
        """The similarity block size; under a memory limit, at most a quarter of it."""
        limit = self.config.memory_limit
        return (
            self.config.block_bytes if limit is None else min(self.config.block_bytes, limit // 4)
        )
