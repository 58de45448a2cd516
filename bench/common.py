"""Helpers shared by the bench scripts: rotated-round timing, device sync, memory readings and
importing a peer library's module without running its package `__init__`."""

from __future__ import annotations

import importlib
import importlib.util
import resource
import statistics
import sys
import time
import types
from collections.abc import Callable, Sequence

import torch


def sync(device: str | torch.device | None) -> None:
    if device is not None and str(device).startswith("cuda"):
        torch.cuda.synchronize()


def rotated_medians(
    variants: dict[str, Callable[[], object]],
    rounds: int,
    device: str | torch.device | None = None,
    warmup: bool = True,
) -> dict[str, float]:
    """Median seconds of each variant over `rounds` rounds; every round calls each variant once,
    starting one place later in the list than the round before (so no variant always runs first
    or right after the same neighbour). One untimed warm-up call each when `warmup`."""
    names = list(variants)
    if warmup:
        for name in names:
            variants[name]()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sync(device)
            began = time.perf_counter()
            variants[name]()
            sync(device)
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(t) for name, t in times.items()}


def rss_bytes() -> int:
    """Current resident set size (Linux /proc; else the peak, the best portable reading)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize()
    except OSError:
        return peak_rss_bytes()


def peak_rss_bytes() -> int:
    """Peak resident set: VmHWM (reset by reset_peak_rss) where Linux has it, else ru_maxrss."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def import_skipping_inits(module: str, packages: Sequence[str]) -> types.ModuleType:
    """Import `module` from the installed files while skipping the `__init__.py` of each of
    `packages` (parents first), for when those import heavy optional dependencies the module
    itself does not need. Each skipped package is registered as a bare namespace holding only
    its search path; packages already imported are kept as they are."""
    for package in packages:
        if package in sys.modules:
            continue
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"{package} is not installed")
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__spec__ = spec
        stub.__package__ = package
        sys.modules[package] = stub
    return importlib.import_module(module)


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"
