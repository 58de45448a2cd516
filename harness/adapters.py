"""Whether encoders merge the LoRA adapters they load into their weights (for inference, the
default: encoding runs at the backbone's speed) or keep them as modules (training goes on
training them). Model factories read `keeping_adapters()`; `harness train` sets it."""

from __future__ import annotations

import contextlib
import contextvars

_KEEP = contextvars.ContextVar("keep_adapters", default=False)


@contextlib.contextmanager
def adapters_kept():
    """Within this block, loaded LoRA adapters stay separate modules."""
    token = _KEEP.set(True)
    try:
        yield
    finally:
        _KEEP.reset(token)


def keeping_adapters() -> bool:
    return _KEEP.get()
