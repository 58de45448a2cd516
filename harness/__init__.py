"""Evaluation harness for multimodal late-interaction retrieval: MetaEmbed and its peers.

`import harness` stays light (no torch, no transformers); the API below loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "evaluate": "harness.evaluation:evaluate",
    "run": "harness.evaluation:run",
    "RunConfig": "harness.config:RunConfig",
    "get_model": "harness.registry:get_model",
    "get_tasks": "harness.registry:get_tasks",
    "Budget": "harness.budgets:Budget",
    "Item": "harness.protocol:Item",
    "ModelCard": "harness.protocol:ModelCard",
    "Encoder": "harness.protocol:Encoder",
    "MultiVectors": "harness.multivectors:MultiVectors",
    "TaskSpec": "harness.task:TaskSpec",
    "TaskData": "harness.task:TaskData",
    "DatasetRef": "harness.task:DatasetRef",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    module, _, attr = _LAZY[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
