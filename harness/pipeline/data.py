"""Stage 2, data: load a task (rank 0 first under torch.distributed), check its size against the
published one, and lay it out for scoring: each distinct item once, candidates in the order
that makes index order trec_eval's tie order."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from harness import distributed
from harness.errors import HarnessError
from harness.protocol import Item
from harness.task import TaskData, TaskSpec

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A task laid out for encoding and scoring."""

    queries: list[Item]
    candidates: list[Item]  # ordered by id descending, so index order is trec_eval's tie order
    qrels: dict[str, dict[str, int]]
    notes: list[str]
    unique_queries: list[Item]
    unique_candidates: list[Item]  # first-seen order: row order follows the lowest member index
    query_groups: dict[str, list[str]] | None
    query_rows: torch.Tensor  # row of each query among unique_queries
    candidate_rows: torch.Tensor  # row of each candidate among unique_candidates
    members: list[list[int]]  # candidate indices of each unique candidate row, ascending
    list_rows: list[list[int]] | None = None  # candidates tasks: each list as unique rows
    list_ids: list[list[str]] | None = None
    floor_scores_except: str | None = None  # see TaskData


def load(
    spec: TaskSpec, data_dir: Any, dist: distributed.Dist, modalities: tuple[str, ...] | None = None
) -> TaskData:
    """Load the task as a model reading `modalities` sees it (`TaskSpec.load`); under
    torch.distributed rank 0 goes first (it may download), and a failure there stops every
    rank at once."""
    if not dist.enabled:
        return spec.load(data_dir, modalities)
    failure = None
    if dist.is_main:
        try:
            full = spec.load(data_dir, modalities)
        except HarnessError as exc:
            failure = exc
    failure = dist.broadcast(failure)
    if failure is not None:
        raise failure
    return full if dist.is_main else spec.load(data_dir, modalities)


def size_check(spec: TaskSpec, data: TaskData) -> dict[str, Any]:
    """Loaded sizes against the published ones; a mismatch is logged loudly and kept in the result."""
    loaded = data.counts()
    expected = dict(spec.counts)
    differs = {k: (v, loaded[k]) for k, v in expected.items() if k in loaded and loaded[k] != v}
    if differs:
        detail = ", ".join(f"{k} {got} (published {want})" for k, (want, got) in differs.items())
        log.warning(
            "task %s: loaded %s; the snapshot differs from the published dataset (other revision or "
            "partial download?) and its scores are not comparable with official-size runs",
            spec.name,
            detail,
        )
        data.notes.append(f"size differs from the published dataset: {detail}")
    return {
        "expected": expected,
        "loaded": loaded,
        "official_size": (not differs) if expected else None,
    }


def unique(items: Sequence[Item]) -> tuple[list[Item], torch.Tensor]:
    """Items with distinct content, in first-seen order, and each input's row among them."""
    rows: dict[str, int] = {}
    distinct: list[Item] = []
    inverse = []
    for item in items:
        key = item.content_hash
        if key not in rows:
            rows[key] = len(distinct)
            distinct.append(item)
        inverse.append(rows[key])
    return distinct, torch.tensor(inverse, dtype=torch.long)


def prepare(spec: TaskSpec, data: TaskData) -> Prepared:
    candidates = sorted(data.candidates, key=lambda c: c.id, reverse=True)
    unique_q, q_rows = unique(data.queries)
    unique_c, c_rows = unique(candidates)
    members: list[list[int]] = [[] for _ in unique_c]
    for index, row in enumerate(c_rows.tolist()):
        members[row].append(index)
    prepared = Prepared(
        queries=data.queries,
        candidates=candidates,
        qrels=data.qrels,
        notes=data.notes,
        query_groups=data.query_groups,
        floor_scores_except=data.floor_scores_except,
        unique_queries=unique_q,
        unique_candidates=unique_c,
        query_rows=q_rows,
        candidate_rows=c_rows,
        members=members,
    )
    if spec.kind == "candidates":
        position = {c.id: row for c, row in zip(candidates, c_rows.tolist(), strict=True)}
        prepared.list_ids = [list(data.candidate_lists[q.id]) for q in data.queries]
        prepared.list_rows = [[position[c] for c in ids] for ids in prepared.list_ids]
    return prepared
