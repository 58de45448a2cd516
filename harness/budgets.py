"""Token budgets (r_q, r_c): how many query and candidate vectors take part in MaxSim."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.errors import UsageError

_SIDE = r"(all|[0-9]+)"
_PATTERN = re.compile(rf"^{_SIDE}x{_SIDE}$")


@dataclass(frozen=True, order=False)
class Budget:
    """`query` / `candidate` vector counts; None means every vector the model produced."""

    query: int | None
    candidate: int | None

    def __post_init__(self) -> None:
        for side, value in (("query", self.query), ("candidate", self.candidate)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(
                    f"budget {side} side must be a positive integer or 'all', got {value!r}"
                )

    @classmethod
    def parse(cls, text: str | Budget) -> Budget:
        """Parse `16x64`, `1x1`, `16xall`, `allxall`, or `all` (= `allxall`)."""
        if isinstance(text, Budget):
            return text
        raw = str(text).strip().lower()
        if raw == "all":
            return cls(None, None)
        match = _PATTERN.match(raw)
        if not match:
            raise UsageError(
                f"malformed budget {text!r}: write QxC with positive integers or 'all', e.g. 1x1, 16x64, allxall"
            )
        q, c = (None if side == "all" else int(side) for side in match.groups())
        if q == 0 or c == 0:
            raise UsageError(f"malformed budget {text!r}: vector counts start at 1 (e.g. 1x1)")
        return cls(q, c)

    @property
    def label(self) -> str:
        side = lambda v: "all" if v is None else str(v)  # noqa: E731
        return f"{side(self.query)}x{side(self.candidate)}"

    def side(self, role: str) -> int | None:
        return self.query if role == "query" else self.candidate

    def sort_key(self) -> tuple[float, float]:
        inf = float("inf")
        return (
            inf if self.query is None else self.query,
            inf if self.candidate is None else self.candidate,
        )

    def __str__(self) -> str:
        return self.label


# The paper's nested groups (r_q, r_c), smallest first.
METAEMBED_BUDGETS: tuple[Budget, ...] = tuple(
    Budget(q, c) for q, c in ((1, 1), (2, 4), (4, 8), (8, 16), (16, 64))
)


def parse_budgets(spec: str | Iterable[str | Budget] | None) -> list[Budget] | None:
    """A comma list of budgets; None (or the keyword `all`) means each model's default budgets."""
    if spec is None:
        return None
    parts = [p for p in spec.split(",") if p.strip()] if isinstance(spec, str) else list(spec)
    if not parts:
        raise UsageError("empty --budgets: give e.g. 1x1,16x64, or 'all' for each model's defaults")
    if len(parts) == 1 and isinstance(parts[0], str) and parts[0].strip().lower() == "all":
        return None
    budgets: list[Budget] = []
    for part in parts:
        budget = Budget.parse(part)
        if budget not in budgets:
            budgets.append(budget)
    return budgets
