"""The evaluation loop: encode unique items once, score every budget, write one result per task."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from harness import __version__, distributed, faults
from harness.budgets import Budget, parse_budgets
from harness.cache import (
    EmbeddingCache,
    EncodeStats,
    ShardedVectors,
    check_writable,
    default_cache_dir,
    load_shards,
)
from harness.config import RunConfig
from harness.cost import budget_cost
from harness.errors import HarnessError, UsageError
from harness.index import FaissIndex, parse_index, recall_against_exact
from harness.metrics import (
    DEFAULT_CUTOFFS,
    evaluate_run,
    mean_metrics,
    per_query,
    precision_at_1_official,
    precision_at_1_strict,
)
from harness.multivectors import MultiVectors, check_embeddings
from harness.protocol import Encoder, Item, ModelCard
from harness.registry import get_model, get_tasks, split_names
from harness.results import environment, git_sha, now, read_result, result_path, write_json_atomic
from harness.scoring import PADDING_RULES, score_candidate_lists, score_corpus
from harness.task import TaskData, TaskSpec

log = logging.getLogger(__name__)

LIST_CUTOFFS: tuple[int, ...] = (1, 5, 10)
SCORE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _cutoffs(top_k: int) -> list[int]:
    """Metric cutoffs a run of top_k candidates per query supports (a smaller corpus is fine)."""
    return [c for c in DEFAULT_CUTOFFS if c <= top_k]


def resolve_budgets(
    card: ModelCard, requested: Sequence[Budget] | None, reducible: bool = False
) -> list[Budget]:
    """The budgets to evaluate for one model, checked against what it can provide. `all` on a
    side where the model has a fixed number of vectors is that number (`allx64` is 16x64 for
    16 query vectors), so the same budget is never evaluated twice under two names."""
    budgets = list(card.budgets) if requested is None else list(requested)
    valid = ", ".join(b.label for b in card.budgets)
    fixed = []
    for budget in budgets:
        query, candidate = budget.query, budget.candidate
        query = card.max_vectors("query") if query is None else query
        candidate = card.max_vectors("candidate") if candidate is None else candidate
        same = Budget(query, candidate)
        if same != budget:
            log.info("budget %s is %s for %s", budget.label, same.label, card.name)
        if same not in fixed:
            fixed.append(same)
    budgets = fixed
    for budget in budgets:
        for role in ("query", "candidate"):
            side, most = budget.side(role), card.max_vectors(role)
            if side is not None and most is not None and side > most:
                raise UsageError(
                    f"budget {budget.label} asks for {side} {role} vectors but model {card.name!r} "
                    f"provides {most}; valid budgets for it: {valid}"
                )
        if not card.nested and not reducible and budget not in card.budgets:
            raise UsageError(
                f"model {card.name!r} is not nested, so it can only be evaluated at its own budgets: {valid}"
            )
    return sorted(budgets, key=Budget.sort_key)


def _unique(items: Sequence[Item]) -> tuple[list[Item], torch.Tensor]:
    """Items with distinct content, in first-seen order, and each input's row among them."""
    rows: dict[str, int] = {}
    unique: list[Item] = []
    inverse = []
    for item in items:
        key = item.content_hash
        if key not in rows:
            rows[key] = len(unique)
            unique.append(item)
        inverse.append(rows[key])
    return unique, torch.tensor(inverse, dtype=torch.long)


@dataclass
class _Encoded:
    queries: MultiVectors
    candidates: MultiVectors | ShardedVectors  # ShardedVectors: scored out of core


@dataclass
class _Timing:
    query: EncodeStats = field(default_factory=EncodeStats)
    candidate: EncodeStats = field(default_factory=EncodeStats)


class TaskRun:
    """One (model, task) evaluation: load, encode through the cache, score, write."""

    def __init__(
        self,
        encoder: Encoder,
        spec: TaskSpec,
        config: RunConfig,
        cache: EmbeddingCache,
        dist: distributed.Dist | None = None,
    ):
        self.encoder, self.spec, self.config, self.cache = encoder, spec, config, cache
        self.card = encoder.card
        self.dist = dist or distributed.Dist()
        self.device = config.resolved_device()
        self.show = config.progress and self.dist.is_main
        self.timing = _Timing()
        self.index = parse_index(config.index)

    # ------------------------------------------------------------ encoding
    def _encode(
        self, items: list[Item], role: str, num_vectors: int | None
    ) -> MultiVectors | ShardedVectors | None:
        """Embeddings through the cache; None on ranks other than 0, which only encode.

        Shared-corpus candidates stay on disk (ShardedVectors) when they exceed the memory
        limit; everything else is loaded.
        """
        stats = self.timing.query if role == "query" else self.timing.candidate
        limit = self.config.memory_limit
        # Only shared-corpus candidates may be scored from disk; those are not kept in memory.
        may_spill = (
            role == "candidate"
            and self.spec.kind == "corpus"
            and limit is not None
            and self.cache.root is not None
        )
        plural = {"query": "queries", "candidate": "candidates"}.get(role, role)
        label = f"{self.card.name} | {self.spec.name} | encode {plural}" + (
            f" @{num_vectors}" if num_vectors else ""
        )
        with tqdm(total=len(items), desc=label, disable=not self.show, leave=False) as bar:
            try:
                shards = self.cache.fill(
                    self.encoder,
                    items,
                    role=role,
                    batch_size=self.config.batch_size,
                    num_vectors=num_vectors,
                    progress=bar,
                    stats=stats,
                    dist=self.dist,
                    keep=not may_spill,
                )
            except HarnessError as exc:
                raise HarnessError(f"task {self.spec.name}: {exc}") from exc
        if not self.dist.is_main:
            return None
        ids = [i.id for i in items]
        if may_spill and shards:
            stored = ShardedVectors(shards)
            if stored.nbytes > limit:
                for offset, block in stored.chunks(stored.shard_items()):
                    check_embeddings(
                        block, ids[offset : offset + len(block)], model=self.card.name, role=role
                    )
                return stored
        mv = load_shards(shards, self.card.dim)
        check_embeddings(mv, ids, model=self.card.name, role=role)
        return mv

    def _encoded(self, data: _Prepared, budget: Budget | None) -> _Encoded:
        """Embeddings of the unique items for one encoding pass.

        `budget` is None for nested models, where one pass serves every budget.
        """
        nq = None if budget is None else budget.query
        nc = None if budget is None else budget.candidate
        return _Encoded(
            self._encode(data.unique_queries, "query", nq),
            self._encode(data.unique_candidates, "candidate", nc),
        )

    # ------------------------------------------------------------ scoring
    def _score_budget(
        self, data: _Prepared, enc: _Encoded, budget: Budget, slice_budget: Budget | None
    ) -> dict[str, Any]:
        # Scoring runs on unique items, so items with equal content get bit-identical scores
        # and their tie order is exactly the documented one.
        faults.reach("score")
        spec, cfg = self.spec, self.config
        device = self.device if self.device != "cpu" else None
        index_info: dict[str, Any] | None = None
        if spec.kind == "corpus":
            k = min(cfg.top_k, len(data.candidates))
            exact_search = lambda: score_corpus(  # noqa: E731
                enc.queries,
                enc.candidates,
                slice_budget,
                k=min(k, len(enc.candidates)),
                block_bytes=self._block_bytes(),
                device=device,
                compute_dtype=SCORE_DTYPES[cfg.score_dtype],
                padding=cfg.candidate_padding,
            )
            single = self._single_vectors(enc, slice_budget)
            if self.index.backend == "faiss" and single is not None:
                built = time.perf_counter()
                index = FaissIndex(self.index, single[1])
                began = time.perf_counter()
                (scores, rows), elapsed, timing_runs = _timed(
                    lambda: index.search(single[0], min(k, len(enc.candidates)))
                )
                exact_began = time.perf_counter()
                _, exact_rows = exact_search()
                index_info = {
                    "backend": self.index.label,
                    "build_seconds": began - built,
                    "exact_scoring_ms_per_query": 1000.0
                    * (time.perf_counter() - exact_began)
                    / max(1, len(enc.queries)),
                    **recall_against_exact(rows, exact_rows, (1, 10, cfg.top_k)),
                }
            else:
                (scores, rows), elapsed, timing_runs = _timed(exact_search)
                index_info = {"backend": "exact"}
                if self.index.backend != "exact":
                    index_info["note"] = (
                        f"{self.index.label} serves one vector per side; this budget was scored exactly"
                    )
            ranked = [
                _expand(s, r, data.members, k)
                for s, r in zip(scores.tolist(), rows.tolist(), strict=True)
            ]
            cids = [c.id for c in data.candidates]
            run = {
                q.id: {cids[c]: score for score, c in ranked[u]}
                for q, u in zip(data.queries, data.query_rows.tolist(), strict=True)
            }
            if data.floor_scores_except is not None:
                run = self._floor_at_zero(run, enc, data, slice_budget, device)
            rows_by_query = per_query(run, data.qrels, _cutoffs(cfg.top_k))
            metrics = mean_metrics(rows_by_query)
            per_query_main = {
                q: m[spec.main_metric] for q, m in rows_by_query.items() if spec.main_metric in m
            }
            scored = float(len(data.candidates))
        else:
            lists, elapsed, timing_runs = _timed(
                lambda: score_candidate_lists(
                    enc.queries.select(data.query_rows),
                    enc.candidates,
                    data.list_rows,
                    slice_budget,
                    block_bytes=self._block_bytes(),
                    device=device,
                    compute_dtype=SCORE_DTYPES[cfg.score_dtype],
                    padding=cfg.candidate_padding,
                )
            )
            rows = [row.tolist() for row in lists]
            run = {}
            for q, row, cids in zip(data.queries, rows, data.list_ids, strict=True):
                entry: dict[str, float] = {}
                for cid, score in zip(cids, row, strict=True):
                    entry[cid] = max(score, entry.get(cid, float("-inf")))
                run[q.id] = entry
            rows_by_query = per_query(run, data.qrels, LIST_CUTOFFS)
            metrics = mean_metrics(rows_by_query)
            official = {
                q.id: precision_at_1_official(r) for q, r in zip(data.queries, rows, strict=True)
            }
            strict = {
                q.id: precision_at_1_strict(r) for q, r in zip(data.queries, rows, strict=True)
            }
            metrics["precision_at_1"] = sum(official.values()) / len(rows)
            metrics["precision_at_1_strict"] = sum(strict.values()) / len(rows)
            per_query_main = (
                official
                if spec.main_metric == "precision_at_1"
                else {
                    q: m[spec.main_metric]
                    for q, m in rows_by_query.items()
                    if spec.main_metric in m
                }
            )
            scored = sum(len(r) for r in rows) / len(rows)
        groups = self._group_metrics(
            data, run, metrics, _cutoffs(cfg.top_k) if spec.kind == "corpus" else LIST_CUTOFFS
        )
        if spec.main_metric not in metrics:
            raise HarnessError(
                f"task {spec.name!r} names main metric {spec.main_metric!r}, which its evaluator does not compute "
                f"(it computes {', '.join(sorted(metrics))})"
            )
        cost = budget_cost(
            enc.queries.lengths[data.query_rows],
            enc.candidates.lengths[data.candidate_rows],
            None if slice_budget is None else slice_budget.query,
            None if slice_budget is None else slice_budget.candidate,
            enc.queries.dim,
            self.card.dtype,
        )
        cost["scoring_ms_per_query"] = 1000.0 * elapsed / max(1, len(data.queries))
        cost["scoring_timing_runs"] = timing_runs
        cost["n_candidates_scored"] = scored
        cost["candidates_out_of_core"] = isinstance(enc.candidates, ShardedVectors)
        row = {
            "label": budget.label,
            "query": budget.query,
            "candidate": budget.candidate,
            "main_score": metrics[spec.main_metric],
            "metrics": dict(sorted(metrics.items())),
            "cost": cost,
        }
        if groups:
            row["groups"] = groups
        if index_info is not None:
            row["index"] = index_info
        # Per-query main scores, for confidence intervals and paired tests in reports.
        row["per_query"] = per_query_main
        if cfg.trec_runs:
            self._write_trec(run, budget)
        return row

    def _block_bytes(self) -> int:
        """The similarity block size; under a memory limit, at most a quarter of it."""
        limit = self.config.memory_limit
        return (
            self.config.block_bytes if limit is None else min(self.config.block_bytes, limit // 4)
        )

    @staticmethod
    def _single_vectors(
        enc: _Encoded, budget: Budget | None
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """([Nq, D], [Nc, D]) when this budget leaves exactly one vector per item, else None."""
        for mv, side in ((enc.queries, "query"), (enc.candidates, "candidate")):
            r = None if budget is None else budget.side(side)
            if not bool((mv.lengths.clamp(max=r or mv.max_len) == 1).all()):
                return None
        corpus = (
            torch.cat([mv.vectors[:, 0] for _, mv in enc.candidates.chunks(1 << 14, 1)])
            if len(enc.candidates)
            else torch.zeros(0, enc.queries.dim)
        )
        return enc.queries.vectors[:, 0], corpus

    def _write_trec(self, run: dict[str, dict[str, float]], budget: Budget) -> None:
        """`qid Q0 docid rank score tag`, ranked as trec_eval ranks them."""
        from harness.metrics import trec_order
        from harness.results import safe_name

        path = (
            Path(self.config.output)
            / safe_name(self.card.name)
            / "runs"
            / f"{safe_name(self.spec.name)}.{budget.label}.trec"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tag = safe_name(f"{self.card.name}_{budget.label}")
        lines = []
        for qid in sorted(run):
            for rank, doc in enumerate(trec_order(run[qid]), 1):
                score = run[qid][doc]
                lines.append(
                    f"{qid} Q0 {doc} {rank} {score if score != float('-inf') else -1e30:.6f} {tag}\n"
                )
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        os.replace(tmp, path)

    def _floor_at_zero(
        self,
        run: dict[str, dict[str, float]],
        enc: Any,
        data: _Prepared,
        budget: Budget,
        device: Any,
    ) -> dict[str, dict[str, float]]:
        """vidore-benchmark's QA rule on a top-k run: a score below 0 counts as 0 for every page
        but one (the first row's). Where a query's k-th score is <= 0, every page it did not
        retrieve scores <= 0 as well, so it enters the run at 0 (ties then follow trec_eval's
        id order over the whole corpus, as in the official evaluation of every page), and the
        kept page at its own score."""
        keep = data.floor_scores_except
        cids = [c.id for c in data.candidates]
        row = data.candidate_rows[cids.index(keep)].item()
        kept = score_candidate_lists(
            enc.queries.select(data.query_rows),
            enc.candidates,
            [[row]] * len(data.queries),
            budget,
            block_bytes=self._block_bytes(),
            device=device,
            compute_dtype=SCORE_DTYPES[self.config.score_dtype],
            padding=self.config.candidate_padding,
        )
        out = {}
        for q, own in zip(data.queries, kept, strict=True):
            entry = run[q.id]
            floored = {c: (s if c == keep else max(s, 0.0)) for c, s in entry.items()}
            if len(entry) < len(cids) and (not entry or min(entry.values()) <= 0):
                for c in cids:
                    floored.setdefault(c, 0.0)
            if keep in floored and keep not in entry:
                floored[keep] = float(own[0])
            out[q.id] = floored
        return out

    def _group_metrics(
        self,
        data: _Prepared,
        run: dict[str, dict[str, float]],
        metrics: dict[str, float],
        cutoffs: Sequence[int],
    ) -> dict[str, dict[str, float]]:
        """Metrics of each query group (e.g. language), plus `<main>_<group>` and `<main>_group_mean`."""
        if not data.query_groups:
            return {}
        main = self.spec.main_metric
        out = {}
        for group, ids in sorted(data.query_groups.items()):
            out[group] = evaluate_run({q: run[q] for q in ids if q in run}, data.qrels, cutoffs)
            if main in out[group]:
                metrics[f"{main}_{group}"] = out[group][main]
        scored = [m[main] for m in out.values() if main in m]
        if scored:
            metrics[f"{main}_group_mean"] = sum(scored) / len(scored)
        return out

    def _load(self) -> TaskData:
        """Load the task; under torch.distributed rank 0 goes first (it may download), and a
        failure there stops every rank at once."""
        if not self.dist.enabled:
            return self.spec.load(self.config.data_dir)
        failure = None
        if self.dist.is_main:
            try:
                full = self.spec.load(self.config.data_dir)
            except HarnessError as exc:
                failure = exc
        failure = self.dist.broadcast(failure)
        if failure is not None:
            raise failure
        return full if self.dist.is_main else self.spec.load(self.config.data_dir)

    def run(self, budgets: list[Budget]) -> list[dict[str, Any]]:
        """Budget rows on rank 0; other ranks take their share of the encoding and return []."""
        full = self._load()
        self.size_check = size_check(self.spec, full)
        data = _prepare(self.spec, full.limit(self.config.limit))
        self.data = data
        out: list[dict[str, Any]] = []
        if not self.card.nested and hasattr(self.encoder, "reduce"):
            # Smaller budgets derive from the full encoding (e.g. token pooling): encode once.
            whole = self._encoded(data, None)
            if not self.dist.is_main:
                return out
            for budget in tqdm(
                budgets,
                desc=f"{self.card.name} | {self.spec.name} | score",
                disable=not self.show,
                leave=False,
            ):
                enc = _Encoded(
                    self.encoder.reduce(whole.queries, "query", budget.query),
                    self._reduce_candidates(whole.candidates, budget.candidate),
                )
                out.append(self._score_budget(data, enc, budget, None))
        elif self.card.nested:
            enc = self._encoded(data, None)
            if not self.dist.is_main:
                return out
            for budget in tqdm(
                budgets,
                desc=f"{self.card.name} | {self.spec.name} | score",
                disable=not self.show,
                leave=False,
            ):
                out.append(self._score_budget(data, enc, budget, budget))
        else:
            for budget in tqdm(
                budgets,
                desc=f"{self.card.name} | {self.spec.name} | encode+score",
                disable=not self.show,
                leave=False,
            ):
                enc = self._encoded(data, budget)
                if self.dist.is_main:
                    out.append(self._score_budget(data, enc, budget, None))
        return out

    def _reduce_candidates(
        self, candidates: MultiVectors | ShardedVectors, count: int | None
    ) -> MultiVectors | ShardedVectors:
        if isinstance(candidates, ShardedVectors):
            return ShardedVectors(
                candidates.shards,
                transform=lambda mv: self.encoder.reduce(mv, "candidate", count).zero_padding(),
            )
        return self.encoder.reduce(candidates, "candidate", count).zero_padding()

    def record(self, budget_rows: list[dict[str, Any]]) -> dict[str, Any]:
        card, data, t = self.card, self.data, self.timing
        encoded = t.query.encoded + t.candidate.encoded
        seconds = t.query.seconds + t.candidate.seconds
        task = self.spec.metadata()
        version = task.pop("version")
        task.update(n_queries=len(data.queries), n_candidates=len(data.candidates), version=version)
        task["notes"] = list(data.notes)
        task["size_check"] = self.size_check
        return {
            "schema_version": 1,
            "harness_version": __version__,
            "git_sha": git_sha(),
            "created_at": now(),
            "model": {
                "name": card.name,
                "family": card.family,
                "backbone": card.backbone,
                "revision": card.revision,
                "n_params": card.n_params,
                "dim": card.dim,
                "args": card.args,
                "backbone_params": card.backbone_params,
                "training": card.training,
            },
            "task": task,
            "budgets": budget_rows,
            "encode": {
                "queries_seconds": t.query.seconds,
                "candidates_seconds": t.candidate.seconds,
                "items_per_second": encoded / seconds if encoded and seconds > 0 else None,
                "device": self.device,
                "dtype": card.dtype,
                "batch_size": self.config.batch_size,
                "world_size": self.dist.world_size,
                "items_encoded": encoded,
                "items_from_cache": t.query.cached + t.candidate.cached,
                "items_encoded_per_rank": [
                    a + b
                    for a, b in zip(
                        t.query.per_rank or [0] * self.dist.world_size,
                        t.candidate.per_rank or [0] * self.dist.world_size,
                        strict=True,
                    )
                ],
                "peak_memory_bytes": peak_memory_bytes(self.device),
            },
            "environment": environment(),
            "config": self.config.to_dict(),
        }


@dataclass
class _Prepared:
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


def _expand(
    scores: list[float], rows: list[int], members: list[list[int]], k: int
) -> list[tuple[float, int]]:
    """Top unique rows -> top-k candidates, ties by candidate index.

    The k best rows always hold the k best candidates: every row ranked ahead of a candidate's
    own row contributes a candidate ranked ahead of it.
    """
    expanded = [(score, c) for score, row in zip(scores, rows, strict=True) for c in members[row]]
    expanded.sort(key=lambda x: (-x[0], x[1]))
    return expanded[:k]


def _prepare(spec: TaskSpec, data: TaskData) -> _Prepared:
    candidates = sorted(data.candidates, key=lambda c: c.id, reverse=True)
    unique_q, q_rows = _unique(data.queries)
    unique_c, c_rows = _unique(candidates)
    members: list[list[int]] = [[] for _ in unique_c]
    for index, row in enumerate(c_rows.tolist()):
        members[row].append(index)
    prepared = _Prepared(
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


def peak_memory_bytes(device: str) -> int | None:
    """Peak memory so far: GPU memory allocated by torch on CUDA, else the process's peak
    resident set (Linux reports ru_maxrss in KiB, macOS in bytes)."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.max_memory_allocated())
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)
    except (ImportError, OSError):
        return None


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


def _remove_empty_folders(root: Path) -> None:
    """Remove `root` and its subfolders when no file at all is under them."""
    if not root.is_dir() or any(p.is_file() for p in root.rglob("*")):
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        folder.rmdir()
    root.rmdir()


def _read_stored(path: Path) -> dict[str, Any] | None:
    """A finished result to build on, or None (recomputed) when the file is unreadable or
    truncated: such a file is named and replaced, never loaded."""
    try:
        stored = read_result(path)
    except (OSError, ValueError) as exc:
        log.warning("%s is not a readable result file (%s); recomputing it", path, exc)
        return None
    if not isinstance(stored, dict) or not isinstance(stored.get("budgets"), list):
        log.warning("%s is not a result file of this harness; recomputing it", path)
        return None
    return stored


def _compatible(
    stored: dict[str, Any], record_model_args: dict[str, Any], spec: TaskSpec, config: RunConfig
) -> str | None:
    """Why a stored result cannot be extended by this run, or None when it can."""
    if stored.get("model", {}).get("args") != record_model_args:
        return f"model args {stored.get('model', {}).get('args')} differ from {record_model_args}"
    if stored.get("task", {}).get("dataset") != spec.metadata()["dataset"]:
        return "the dataset revision differs"
    settings = stored.get("config", {})
    if settings.get("limit") != config.limit:
        return f"--limit {settings.get('limit')} differs from {config.limit}"
    # Files written before these settings were recorded used the defaults.
    if settings.get("score_dtype", "float32") != config.score_dtype:
        return f"--score-dtype {settings.get('score_dtype', 'float32')} differs from {config.score_dtype}"
    if settings.get("candidate_padding", "exact") != config.candidate_padding:
        return (
            f"--candidate-padding {settings.get('candidate_padding', 'exact')} differs from "
            f"{config.candidate_padding}"
        )
    return None


def _jsonable(value: Any) -> Any:
    return (
        value
        if value is None or isinstance(value, str | int | float | bool | list | dict)
        else str(value)
    )


def run(
    config: RunConfig,
    models: Sequence[str | Encoder] | None = None,
    tasks: Sequence[str | TaskSpec] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every model on every task; returns the result records (also written to disk)."""
    models = list(models) if models is not None else split_names(config.models)
    specs = get_tasks(tasks if tasks is not None else config.tasks)
    requested = parse_budgets(config.budgets)
    if config.limit is not None and config.limit < 1:
        raise UsageError(f"--limit must be a positive number of queries, got {config.limit}")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be positive, got {config.batch_size}")
    if config.device not in ("auto", "cpu", "cuda") and not str(config.device).startswith("cuda:"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {config.device!r}")
    if config.resolved_device().startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda was asked for but torch sees no GPU; use --device cpu or auto"
        )
    if config.shard_size < 1:
        raise UsageError(f"--shard-size must be positive, got {config.shard_size}")
    if config.memory_limit is not None and config.memory_limit < 1:
        raise UsageError(f"--memory-limit must be a positive size, got {config.memory_limit}")
    if config.memory_limit is not None and config.no_cache:
        raise UsageError("--memory-limit scores candidates from the cache on disk; drop --no-cache")
    parse_index(config.index)
    if config.candidate_padding not in PADDING_RULES:
        raise UsageError(
            f"--candidate-padding must be one of {', '.join(PADDING_RULES)}, "
            f"got {config.candidate_padding!r}"
        )
    if config.score_dtype not in SCORE_DTYPES:
        raise UsageError(
            f"--score-dtype must be one of {', '.join(SCORE_DTYPES)}, got {config.score_dtype!r}"
        )
    if distributed.current().enabled and config.no_cache:
        raise UsageError(
            "a distributed run exchanges embeddings through the cache; drop --no-cache "
            "(and give every rank the same --cache-dir on a shared filesystem)"
        )
    fresh_output = not Path(config.output).exists()
    output = check_writable(config.output, "output")
    cache_root = (
        None
        if config.no_cache
        else check_writable(config.cache_dir or default_cache_dir(), "cache dir")
    )
    cache = EmbeddingCache(cache_root, shard_size=config.shard_size, refresh=config.overwrite)
    config.models = [m if isinstance(m, str) else m.card.name for m in models]
    config.tasks = [s.name for s in specs]
    config.model_args = {k: _jsonable(v) for k, v in config.model_args.items()}

    dist, joined = distributed.init(config.resolved_device())
    records = []
    try:
        _find_datasets(specs, config, dist)
        for model in models:
            encoder = (
                model
                if not isinstance(model, str)
                else get_model(model, config.model_args, device=config.resolved_device())
            )
            budgets = resolve_budgets(encoder.card, requested, reducible=hasattr(encoder, "reduce"))
            for spec in specs:
                record = _run_task(encoder, spec, budgets, config, cache, output, dist)
                if record is not None:
                    records.append(record)
        dist.barrier()
    except BaseException:
        if fresh_output and dist.is_main:
            _remove_empty_folders(output)  # a failed run leaves no empty output behind
        raise
    finally:
        distributed.finish(joined)
    return records


# Scoring that takes less than this is timed again: the first run warms caches and threads,
# and the best of the repeats is kept (quick scorings swing most under a shared machine's load).
QUICK_SCORING_SECONDS = 1.0
TIMING_REPEATS = 3


def _timed(score: Any) -> tuple[Any, float, int]:
    """(result, seconds, runs): one run, or for a quick one the best of TIMING_REPEATS more."""
    began = time.perf_counter()
    result = score()
    best = time.perf_counter() - began
    if best >= QUICK_SCORING_SECONDS:
        return result, best, 1
    for _ in range(TIMING_REPEATS):
        began = time.perf_counter()
        score()
        best = min(best, time.perf_counter() - began)
    return result, best, 1 + TIMING_REPEATS


def _find_datasets(specs: Sequence[TaskSpec], config: RunConfig, dist: distributed.Dist) -> None:
    """Find (or, online without --data-dir, fetch) every hub dataset before any model loads;
    under torch.distributed rank 0 does it and a failure stops every rank."""
    from harness.hub import dataset_root

    failure = None
    if dist.is_main:
        try:
            for spec in specs:
                if spec.hub_snapshot:
                    dataset_root(spec, config.data_dir)
        except HarnessError as exc:
            failure = exc
    if dist.enabled:
        failure = dist.broadcast(failure)
    if failure is not None:
        raise failure


def _run_task(
    encoder: Encoder,
    spec: TaskSpec,
    budgets: list[Budget],
    config: RunConfig,
    cache: EmbeddingCache,
    output: Path,
    dist: distributed.Dist | None = None,
) -> dict[str, Any] | None:
    """Evaluate one task (the budgets its stored result lacks); None on ranks other than 0."""
    dist = dist or distributed.Dist()
    card = encoder.card
    path = result_path(output, card.name, spec.name)
    stored = None
    plan: list[str] | UsageError | None = None
    if dist.is_main:
        # Rank 0 reads the stored result and tells the others which budgets remain.
        plan = [b.label for b in budgets]
        if path.exists() and not config.overwrite:
            stored = _read_stored(path)
        if stored is not None:
            why = _compatible(stored, card.args, spec, config)
            if why is not None:
                plan = UsageError(
                    f"{path} holds a result from another setting ({why}); pass --overwrite to "
                    f"replace it or --output to write elsewhere"
                )
            else:
                done = {b["label"] for b in stored["budgets"]}
                plan = [b.label for b in budgets if b.label not in done]
    plan = dist.broadcast(plan)
    if isinstance(plan, UsageError):
        raise plan
    if not plan:
        log.info("%s: finished result found, skipped (use --overwrite to recompute)", path)
        return stored
    budgets = [b for b in budgets if b.label in plan]
    task_run = TaskRun(encoder, spec, config, cache, dist)
    rows = task_run.run(budgets)
    if not dist.is_main:
        return None
    record = task_run.record(rows)
    if stored is not None:
        kept = [b for b in stored["budgets"] if b["label"] not in {r["label"] for r in rows}]
        merged = kept + rows
        record["budgets"] = sorted(
            merged, key=lambda b: Budget(b["query"], b["candidate"]).sort_key()
        )
    write_json_atomic(path, record)
    log.info("wrote %s", path)
    return record


def evaluate(
    model: str | Encoder | Sequence[str | Encoder],
    tasks: str | TaskSpec | Sequence[str | TaskSpec],
    budgets: str | Sequence[str | Budget] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Python API: `harness.evaluate("test-hash", "libdocs", budgets="1x1,16x64", output="out")`."""
    models = [model] if isinstance(model, str) or not isinstance(model, Sequence) else list(model)
    task_list = [tasks] if isinstance(tasks, str | TaskSpec) else list(tasks)
    if budgets is not None and not isinstance(budgets, str):
        budgets = [b.label if isinstance(b, Budget) else str(b) for b in budgets]
    elif isinstance(budgets, str):
        budgets = [b.strip() for b in budgets.split(",") if b.strip()]
    config = RunConfig(models=[], tasks=[], budgets=budgets, **options)
    return run(config, models=models, tasks=task_list)
