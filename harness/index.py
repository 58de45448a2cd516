"""Optional approximate search backends behind one small interface.

Exact blocked MaxSim (`harness.scoring.score_corpus`) is always the reference. A backend named
by `--index` serves the budgets it can (FAISS: one vector per query and per candidate, inner
product), and the evaluation also runs exact search on the same embeddings to write the
backend's recall@k against it into the result, so an approximate number never stands alone.

`--index` values:
    exact                         blocked exact MaxSim (default)
    faiss                         FAISS HNSW32 graph over the candidates (faiss-cpu or faiss-gpu)
    faiss:FACTORY[|PARAMS]        any faiss.index_factory string with inner-product metric, and
                                  optional search parameters, e.g. faiss:IVF64,Flat|nprobe=8
                                  or faiss:HNSW32|efSearch=256
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from harness.errors import UsageError

DEFAULT_FAISS_FACTORY = "HNSW32"


@dataclass(frozen=True)
class IndexSpec:
    backend: str  # "exact" | "faiss"
    factory: str | None = None
    params: str | None = None

    @property
    def label(self) -> str:
        if self.backend == "exact":
            return "exact"
        return f"faiss:{self.factory}" + (f"|{self.params}" if self.params else "")


def parse_index(text: str | None) -> IndexSpec:
    text = (text or "exact").strip()
    if text == "exact":
        return IndexSpec("exact")
    if text == "faiss" or text.startswith("faiss:"):
        rest = text[len("faiss:") :] if text.startswith("faiss:") else ""
        factory, _, params = rest.partition("|")
        spec = IndexSpec("faiss", factory.strip() or DEFAULT_FAISS_FACTORY, params.strip() or None)
        _check_faiss(spec)  # before any encoding: the package, the factory, the parameters
        return spec
    raise UsageError(
        f"unknown --index {text!r}; use exact, faiss or faiss:FACTORY[|PARAMS] (e.g. faiss:IVF64,Flat|nprobe=8)"
    )


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UsageError(
            "--index faiss needs the faiss package: pip install faiss-cpu (or the project's "
            "[faiss] extra), or use --index exact"
        ) from None
    return faiss


def _faiss_reason(exc: Exception) -> str:
    """faiss's message without its C++ location prefix."""
    return re.split(r"\.cpp:\d+:\s*", str(exc).strip().splitlines()[-1])[-1]


PROBE_DIMS = (3840, 4096, 768, 384, 128)  # divisible by the usual PQ / OPQ sub-vector counts


def _check_faiss(spec: IndexSpec) -> None:
    """Build the factory on empty probe indexes (no training) and set the search parameters, so
    a factory or parameter faiss cannot parse stops the run before the model loads. A factory
    that only some dimensions allow is still built at scoring time with the model's own."""
    faiss = _faiss()
    hnsw = re.search(r"HNSW(\d+)", spec.factory)
    if hnsw and int(hnsw.group(1)) < 2:  # faiss aborts the process (an assertion) on search
        raise UsageError(
            f"faiss index {spec.factory!r}: HNSW needs at least 2 neighbours per node (HNSW32 is usual)"
        )
    errors = []
    for dim in PROBE_DIMS:
        try:
            index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            errors.append(_faiss_reason(exc))
            continue
        if spec.params:
            try:
                faiss.ParameterSpace().set_index_parameters(index, spec.params)
            except RuntimeError as exc:
                raise UsageError(
                    f"faiss rejects search parameters {spec.params!r} for {spec.factory!r}: "
                    f"{_faiss_reason(exc)}"
                ) from None
        return
    raise UsageError(f"faiss cannot build index {spec.factory!r}: {errors[-1]}")


class FaissIndex:
    """Single-vector inner-product search through faiss.index_factory."""

    def __init__(self, spec: IndexSpec, candidates: torch.Tensor) -> None:
        faiss = _faiss()
        self.spec = spec
        data = candidates.float().contiguous().numpy()
        try:
            self.index = faiss.index_factory(
                data.shape[1], spec.factory, faiss.METRIC_INNER_PRODUCT
            )
        except RuntimeError as exc:
            raise UsageError(
                f"faiss cannot build index {spec.factory!r}: {str(exc).strip().splitlines()[-1]}"
            ) from None
        if not self.index.is_trained:
            self.index.train(data)
        self.index.add(data)
        if spec.params:
            try:
                faiss.ParameterSpace().set_index_parameters(self.index, spec.params)
            except RuntimeError as exc:
                raise UsageError(
                    f"faiss rejects search parameters {spec.params!r} for {spec.factory!r}: "
                    f"{str(exc).strip().splitlines()[-1]}"
                ) from None

    def search(self, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, indices) [Nq, k], best first; index -1 where the index found fewer than k."""
        scores, indices = self.index.search(queries.float().contiguous().numpy(), k)
        return torch.from_numpy(scores).float(), torch.from_numpy(indices).long()


def recall_against_exact(
    approx: torch.Tensor, exact: torch.Tensor, cutoffs: tuple[int, ...]
) -> dict[str, float]:
    """Mean over queries of |approx top-c ∩ exact top-c| / c for each cutoff c (rows best first)."""
    out = {}
    for c in cutoffs:
        c_eff = min(c, exact.shape[1])
        if c_eff == 0 or exact.shape[0] == 0:
            continue
        hits = 0
        for a, e in zip(approx[:, :c_eff].tolist(), exact[:, :c_eff].tolist(), strict=True):
            hits += len(set(a) & set(e))
        out[f"recall_at_{c}"] = hits / (c_eff * exact.shape[0])
    return out
