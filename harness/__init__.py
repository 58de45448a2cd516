"""Evaluation harness for multimodal late-interaction retrieval: MetaEmbed and its peers.

`import harness` stays light (no torch, no transformers); the API below loads on first use.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
from pathlib import Path
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

# The benchmarks and the encoders are `harness.tasks` and `harness.baselines`. An installed wheel
# holds them inside this package; a source checkout keeps them at its top, beside harness/, and
# this finder imports them from there, so that a checkout (or a worktree of it) always runs its
# own copies rather than those of whichever tree was installed.
SUBPACKAGES = ("tasks", "baselines")
_CHECKOUT = Path(__file__).resolve().parent.parent


class _CheckoutFinder:
    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in SUBPACKAGES:
            return None
        return importlib.machinery.PathFinder.find_spec(fullname, [str(_CHECKOUT)])


if (
    not (Path(__file__).parent / "tasks").is_dir()
    and (_CHECKOUT / "tasks" / "__init__.py").is_file()
):
    sys.meta_path.insert(0, _CheckoutFinder())


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    module, _, attr = _LAZY[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
