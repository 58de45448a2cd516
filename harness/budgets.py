"""Token budgets (r_q, r_c): how many query and candidate vectors take part in MaxSim."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import UsageError

_SIDE = r"(all|[0-9]+)"
# How candidate vectors are stored (None: as the model made them); see harness/compression.py.
STORAGES = ("fp16", "bf16", "int8", "binary")
_PATTERN = re.compile(rf"^{_SIDE}x{_SIDE}(?::([a-z0-9]+))?$")


@dataclass(frozen=True, order=False)
class Budget:
    """`query` / `candidate` vector counts; None means every vector the model produced."""

    query: int | None
    candidate: int | None
    storage: str | None = None  # candidate vectors compressed: fp16, bf16, int8 or binary

    def __post_init__(self) -> None:
        for side, value in (("query", self.query), ("candidate", self.candidate)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(
                    f"budget {side} side must be a positive integer or 'all', got {value!r}"
                )
        if self.storage is not None and self.storage not in STORAGES:
            raise UsageError(
                f"unknown vector storage {self.storage!r}; use one of {', '.join(STORAGES)}, "
                f"e.g. 16x64:int8"
            )

    @classmethod
    def parse(cls, text: str | Budget | Cascade) -> Budget | Cascade:
        """Parse `16x64`, `1x1`, `16xall`, `allxall`, `all` (= `allxall`), or a cascade
        `1x1>16x64@100` (see `Cascade`)."""
        if isinstance(text, Budget | Cascade):
            return text
        if ">" in str(text):
            return Cascade.parse(str(text))
        raw = str(text).strip().lower()
        if raw == "all":
            return cls(None, None)
        match = _PATTERN.match(raw)
        if not match:
            raise UsageError(
                f"malformed budget {text!r}: write QxC with positive integers or 'all', e.g. 1x1, "
                f"16x64, allxall, optionally :STORAGE (16x64:int8)"
            )
        q, c = (None if side == "all" else int(side) for side in match.groups()[:2])
        if q == 0 or c == 0:
            raise UsageError(f"malformed budget {text!r}: vector counts start at 1 (e.g. 1x1)")
        return cls(q, c, match.group(3))

    @property
    def label(self) -> str:
        side = lambda v: "all" if v is None else str(v)  # noqa: E731
        stored = f":{self.storage}" if self.storage else ""
        return f"{side(self.query)}x{side(self.candidate)}{stored}"

    @property
    def sides(self) -> Budget:
        """The same vector counts, vectors as the model made them."""
        return Budget(self.query, self.candidate)

    def side(self, role: str) -> int | None:
        return self.query if role == "query" else self.candidate

    def sort_key(self) -> tuple[float, ...]:
        inf = float("inf")
        return (
            inf if self.query is None else self.query,
            inf if self.candidate is None else self.candidate,
            # compressed forms after the plain one, smallest storage last
            0 if self.storage is None else 1 + STORAGES.index(self.storage),
        )

    def __str__(self) -> str:
        return self.label


_CASCADE = re.compile(r"^([^>@]+)>([^>@]+)@([0-9]+)$")


@dataclass(frozen=True)
class Cascade:
    """Two stages, `first>second@depth`: the first budget ranks the whole corpus (or each
    query's list), the second re-scores each query's top `depth`; what a deployment does that
    indexes a cheap budget and re-ranks a shortlist with a rich one. Its row sits beside the
    second budget's, whose `query` / `candidate` it reports."""

    first: Budget
    second: Budget
    depth: int

    @classmethod
    def parse(cls, text: str) -> Cascade:
        match = _CASCADE.match(text.strip().lower())
        if not match:
            raise UsageError(
                f"malformed cascade {text!r}: write FIRST>SECOND@DEPTH, e.g. 1x1>16x64@100"
            )
        first, second = (Budget.parse(match.group(i)) for i in (1, 2))
        if isinstance(first, Cascade) or isinstance(second, Cascade):
            raise UsageError(f"malformed cascade {text!r}: a cascade has two stages")
        depth = int(match.group(3))
        if depth < 1:
            raise UsageError(f"cascade {text!r}: the depth re-scored must be at least 1")
        return cls(first, second, depth)

    @property
    def query(self) -> int | None:
        return self.second.query

    @property
    def candidate(self) -> int | None:
        return self.second.candidate

    @property
    def label(self) -> str:
        return f"{self.first.label}>{self.second.label}@{self.depth}"

    def side(self, role: str) -> int | None:
        return self.second.side(role)

    def sort_key(self) -> tuple[float, ...]:
        """After its second budget (and that budget's stored forms), then by first budget and
        depth."""
        q, c, _ = self.second.sort_key()
        return (q, c, len(STORAGES) + 1, *self.first.sort_key(), self.depth)

    def __str__(self) -> str:
        return self.label


# The paper's nested groups (r_q, r_c), smallest first.
METAEMBED_BUDGETS: tuple[Budget, ...] = tuple(
    Budget(q, c) for q, c in ((1, 1), (2, 4), (4, 8), (8, 16), (16, 64))
)


def parse_budgets(spec: str | Iterable[str | Budget] | None) -> list[Budget | Cascade] | None:
    """A comma list of budgets; None (or the keyword `all`) means each model's default budgets."""
    if spec is None:
        return None
    parts = [p for p in spec.split(",") if p.strip()] if isinstance(spec, str) else list(spec)
    if not parts:
        raise UsageError("empty --budgets: give e.g. 1x1,16x64, or 'all' for each model's defaults")
    if len(parts) == 1 and isinstance(parts[0], str) and parts[0].strip().lower() == "all":
        return None
    budgets: list[Budget | Cascade] = []
    for part in parts:
        budget = Budget.parse(part)
        if budget not in budgets:
            budgets.append(budget)
    return budgets
