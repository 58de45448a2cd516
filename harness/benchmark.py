"""What a benchmark module declares besides its task specs, as data the core reads.

A module of a benchmark package (`tasks/`, listed in its `MODULES`) may export:

- `TASKS`: its `TaskSpec`s;
- `GROUPS`: `Group`s, names that `--tasks` accepts for several tasks at once;
- `TABLES`: `AggregateTable`s, the benchmark's own summary tables in `report table` (MMEB's
  meta-tasks and IND/OOD, the ViDoRe v2 columns of the MetaEmbed paper, per-task averages);
- `TRAIN_SOURCES`: `TrainSource`s, names that `harness train --data` accepts.

The registry collects them; nothing in the core names a benchmark. Likewise an encoder package
(`baselines/`) lists its models as `ModelEntry`s in `MODELS`, so the core names no model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.task import TaskSpec


@dataclass(frozen=True)
class Group:
    name: str
    description: str
    member: Callable[[TaskSpec], bool]


@dataclass(frozen=True)
class Column:
    """One column of an aggregate table: the unweighted mean of `metric` (None: each task's
    main score) over `tasks`; a mean over fewer of them carries its coverage."""

    label: str
    tasks: tuple[str, ...]
    metric: str | None = None


@dataclass(frozen=True)
class AggregateTable:
    title: str
    benchmark: str
    columns: tuple[Column, ...]
    average: bool = True  # a last column "Avg": the mean of the other columns
    reported: str | None = None  # section of results/reported/*.json shown beside the rows
    order: int = 100  # position among the tables of `report table`


def per_task_table(title: str, specs: Sequence[TaskSpec], order: int) -> AggregateTable:
    """Each task's main score (named without the benchmark prefix) and their average."""
    benchmark = specs[0].benchmark
    columns = tuple(Column(s.name.removeprefix(f"{benchmark}-"), (s.name,)) for s in specs)
    return AggregateTable(title, benchmark, columns, order=order)


@dataclass(frozen=True)
class TrainSource:
    """`--data NAME` or `--data NAME:ARG`; `load(arg or None, data_dir)` returns the examples
    (`harness.training.data.Example`)."""

    name: str
    usage: str  # how the help and errors show it, e.g. `libdocs[:N]`
    load: Callable[[str | None, str | Path | None], list[Any]]

    def matches(self, text: str) -> bool:
        return text == self.name or text.startswith(f"{self.name}:")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    target: str  # "module:factory"; the factory takes model args as keywords
    family: str
    backbone: str
    modalities: tuple[str, ...]
    budgets: str  # as listed to users, e.g. "1x1,2x4,4x8,8x16,16x64"
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    # Settings of the default backbone, dropped when the user names a backbone or checkpoint.
    backbone_defaults: dict[str, Any] = field(default_factory=dict)
