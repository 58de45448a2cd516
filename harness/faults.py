"""Crash points for the fault-injection tests.

`HARNESS_FAULT=<point>:<n>` kills the process with SIGKILL (no cleanup, no exception handler
runs) the n-th time it reaches `<point>`; `HARNESS_FAULT_RANK=<r>` restricts that to the
torch.distributed rank r. Unset, `reach` costs one environment lookup. The points:

encode-batch   after the model encoded a batch, before its shard is complete
shard-write    a cache shard's temporary file is written, not yet renamed into place
shard-saved    a cache shard is in place, the next one not started
score          a budget's scoring starts (earlier budgets are scored, none written)
result-write   half of a result file's temporary copy is on disk, not yet renamed
"""

from __future__ import annotations

import os
import signal

POINTS = ("encode-batch", "shard-write", "shard-saved", "score", "result-write")
_hits: dict[str, int] = {}


def reach(point: str) -> None:
    spec = os.environ.get("HARNESS_FAULT")
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    rank = os.environ.get("HARNESS_FAULT_RANK")
    if rank is not None and os.environ.get("RANK", "0") != rank:
        return
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
