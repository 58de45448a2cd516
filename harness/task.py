"""Task specs (declarative data) and the loaded data the two evaluator families consume."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import HarnessError
from harness.protocol import Item

log = logging.getLogger(__name__)

Kind = Literal["corpus", "candidates"]
KINDS: tuple[Kind, ...] = ("corpus", "candidates")


@dataclass(frozen=True)
class DatasetRef:
    """A Hugging Face dataset repo at a pinned revision (and config, where it has several)."""

    path: str
    revision: str | None = None
    config: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation task: metadata plus the name of the function that loads it.

    `kind` picks the evaluator: `corpus` (every query against one shared corpus, graded qrels)
    or `candidates` (each query ranked against its own list, the positive at index 0).
    """

    name: str
    benchmark: str
    kind: Kind
    main_metric: str
    dataset: DatasetRef
    loader: str | Callable[..., TaskData]
    category: str | None = None
    split: str | None = None  # IND | OOD | None
    version: int = 1
    description: str = ""
    languages: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ("text",)
    # Published sizes ({"queries": .., "corpus": .., "qrels": ..}) to flag partial downloads.
    counts: Mapping[str, int] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    # What `prefetch` fetches from the repo (None: everything) and which archives it unzips.
    files: tuple[str, ...] | None = None
    archives: tuple[str, ...] = ()
    # The loader reads a hub snapshot of `dataset` (--data-dir, or downloaded): a run finds or
    # fetches it before loading any model, so a missing dataset fails fast.
    hub_snapshot: bool = False
    # The same task in mteb (its TaskMetadata.name), for `report export --format mteb` and the
    # published numbers imported from mteb's results repository; None: mteb has no such task.
    mteb_name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.split not in (None, "IND", "OOD"):
            raise ValueError(
                f"task {self.name!r}: split must be IND, OOD or None, got {self.split!r}"
            )

    def load(
        self, data_dir: str | os.PathLike | None = None, modalities: tuple[str, ...] | None = None
    ) -> TaskData:
        """The task's data. With `modalities` (what the model reads), a loader that takes a
        `modalities` keyword may skip making what no one will read (libdocs renders page images
        only for models that read images). Items are never stripped of an image here: images
        tell items apart (their bytes are part of the cache key), so a text-only model given
        items that differ only in their image is refused by the collapse check rather than
        scored on merged items, and a text backbone may still read an image by OCR."""
        loader = self.loader
        if isinstance(loader, str):
            module, _, attr = loader.partition(":")
            try:
                loader = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise HarnessError(
                    f"task {self.name!r}: its loader {self.loader!r} cannot be imported ({exc}); "
                    "write it as package.module:function"
                ) from exc
        root = Path(data_dir) if data_dir is not None else None
        takes = modalities is not None and "modalities" in inspect.signature(loader).parameters
        try:
            data = loader(self, root, modalities=modalities) if takes else loader(self, root)
        except HarnessError:
            raise
        except Exception as exc:  # a loader of the user's: named, in one line (-v: traceback)
            raise HarnessError(
                f"task {self.name!r}: its loader {self.loader if isinstance(self.loader, str) else loader.__qualname__} "
                f"failed: {type(exc).__name__}: {exc}".splitlines()[0]
            ) from exc
        if not isinstance(data, TaskData):
            raise HarnessError(
                f"task {self.name!r}: its loader returned {type(data).__name__}, not TaskData"
            )
        data.validate(self)
        return data

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "benchmark": self.benchmark,
            "category": self.category,
            "split": self.split,
            "dataset": {
                "path": self.dataset.path,
                "revision": self.dataset.revision,
                "config": self.dataset.config,
            },
            "main_metric": self.main_metric,
            "version": self.version,
        }


@dataclass
class TaskData:
    """Queries, candidates and judgements of one task.

    corpus kind: `qrels` {qid: {cid: gain}} over the shared `candidates`.
    candidates kind: `candidate_lists` {qid: [cid, ...]} with the positive first; `qrels`
    then holds {qid: {positive cid: 1}}.
    """

    queries: list[Item]
    candidates: list[Item]
    qrels: dict[str, dict[str, int]]
    candidate_lists: dict[str, list[str]] | None = None
    notes: list[str] = field(default_factory=list)
    # Named subsets of the queries scored separately as well (e.g. ViDoRe v2 languages).
    query_groups: dict[str, list[str]] | None = None
    limited: bool = False
    # vidore-benchmark's QA rule: every candidate's score below 0 counts as 0 except this
    # candidate's (the page of the dataset's first row), whose score is kept as it is.
    floor_scores_except: str | None = None

    def counts(self) -> dict[str, int]:
        return {
            "queries": len(self.queries),
            "corpus": len(self.candidates),
            "qrels": sum(len(v) for v in self.qrels.values()),
        }

    def validate(self, spec: TaskSpec) -> None:
        """Refuse data no score can be computed from, naming the task and the first bad item."""
        where = f"task {spec.name!r}"
        if not self.queries:
            raise HarnessError(f"{where} has no queries; check its data (or --data-dir snapshot)")
        if not self.candidates:
            raise HarnessError(f"{where} has no candidates (an empty corpus); check its data")
        qids = [q.id for q in self.queries]
        if len(set(qids)) != len(qids):
            raise HarnessError(f"{where}: duplicate query ids; each query row needs its own id")
        cids = {c.id for c in self.candidates}
        if len(cids) != len(self.candidates):
            raise HarnessError(f"{where}: duplicate candidate ids")
        self._check_items(where)
        self._check_gains_and_groups(where, set(qids))
        if spec.kind == "candidates":
            self._check_lists(where, qids, cids)
        self._check_judged(where, qids, cids)

    def _check_items(self, where: str) -> None:
        for role, items in (("query", self.queries), ("candidate", self.candidates)):
            empty = next((it.id for it in items if not it.text and it.image is None), None)
            if empty is not None:
                raise HarnessError(f"{where}: {role} {empty!r} has neither text nor image")
            for it in items:  # ids and texts are written to files and hashed as UTF-8
                for part in ("id", "text", "instruction"):
                    value = getattr(it, part)
                    if isinstance(value, str) and not _utf8(value):
                        raise HarnessError(
                            f"{where}: {role} {it.id.encode('utf-8', 'replace').decode()!r} has "
                            f"a {part} that is not valid Unicode (a lone surrogate); fix its data"
                        )

    def _check_gains_and_groups(self, where: str, qids: set[str]) -> None:
        for qid, gains in self.qrels.items():
            if not isinstance(gains, dict):
                raise HarnessError(f"{where}: the judgements of query {qid!r} are not a mapping")
            for cid, gain in gains.items():
                if isinstance(gain, bool) or not isinstance(gain, int):
                    raise HarnessError(
                        f"{where}: query {qid!r} judges {cid!r} with gain {gain!r}; "
                        "relevance gains are whole numbers, as trec_eval reads them"
                    )
        for group, members in (self.query_groups or {}).items():
            strangers = [q for q in members if q not in qids]
            if not group or strangers:
                raise HarnessError(
                    f"{where}: query group {group!r} "
                    + (f"names unknown query {strangers[0]!r}" if strangers else "has no name")
                )

    def _check_lists(self, where: str, qids: list[str], cids: set[str]) -> None:
        if self.candidate_lists is None:
            raise HarnessError(f"{where}: a candidates task needs candidate_lists")
        missing = [q for q in qids if not self.candidate_lists.get(q)]
        if missing:
            raise HarnessError(f"{where}: query {missing[0]!r} has no candidate list")
        for qid in qids:
            # A candidate may be listed twice (MMEB lists repeat identical entries); it scores
            # once, as the same item.
            listed = self.candidate_lists[qid]
            unknown = [c for c in listed if c not in cids]
            if unknown:
                raise HarnessError(f"{where}: query {qid!r} lists unknown candidate {unknown[0]!r}")
            positives = {c for c, g in self.qrels.get(qid, {}).items() if g > 0}
            if positives and listed[0] not in positives:
                # MMEB's precision@1 reads the list's first entry as the positive
                raise HarnessError(
                    f"{where}: query {qid!r} lists {listed[0]!r} first but judges "
                    f"{sorted(positives)[0]!r} relevant; the positive goes first in a "
                    "candidate list (MMEB's precision@1 reads it there)"
                )

    def _check_judged(self, where: str, qids: list[str], cids: set[str]) -> None:
        judged = {q: gains for q, gains in self.qrels.items() if any(g > 0 for g in gains.values())}
        if not judged or not set(judged) & set(qids):
            raise HarnessError(
                f"{where} has no relevance judgements for its queries (empty qrels), so nothing "
                "can be scored; check its data"
            )
        unknown = [
            (q, c)
            for q, gains in judged.items()
            for c, g in gains.items()
            if g > 0 and c not in cids
        ]
        positives = sum(1 for gains in judged.values() for g in gains.values() if g > 0)
        if unknown and len(unknown) == positives:
            q, c = unknown[0]
            raise HarnessError(
                f"{where}: none of its judgements names one of its candidates (e.g. query {q!r} "
                f"judges {c!r}); the ids of qrels and corpus do not match"
            )
        if unknown:
            log.info(
                "%s: %d of %d relevance judgements name candidates that are not in the corpus; "
                "they count as relevant and never retrieved, as in trec_eval",
                where,
                len(unknown),
                positives,
            )

    def limit(self, n: int | None) -> TaskData:
        """The first n queries (the corpus is kept whole, so scores stay comparable)."""
        if n is None or n >= len(self.queries):
            return self
        queries = self.queries[:n]
        keep = {q.id for q in queries}
        lists = None
        candidates = self.candidates
        if self.candidate_lists is not None:
            lists = {q: v for q, v in self.candidate_lists.items() if q in keep}
            used = {c for v in lists.values() for c in v}
            candidates = [c for c in self.candidates if c.id in used]
        groups = None
        if self.query_groups is not None:
            groups = {g: [q for q in ids if q in keep] for g, ids in self.query_groups.items()}
            groups = {g: ids for g, ids in groups.items() if ids}
        return TaskData(
            queries=queries,
            candidates=candidates,
            qrels={q: v for q, v in self.qrels.items() if q in keep},
            candidate_lists=lists,
            notes=[*self.notes, f"limited to the first {n} queries"],
            query_groups=groups,
            limited=True,
            floor_scores_except=self.floor_scores_except,
        )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
