"""torch.distributed plumbing for evaluation and training: one code path at any world size.

Launch with `torchrun --nproc_per_node=N -m harness run ...` (or `train`). torchrun sets RANK,
WORLD_SIZE, LOCAL_RANK and the rendezvous address; `init` joins the process group (nccl when
the run is on CUDA, gloo on CPU) and pins each rank to GPU LOCAL_RANK. Without those variables
everything below degenerates to a single process with no collectives.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 1800


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Dist:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (a one-element list at world size 1)."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def current() -> Dist:
    """The job as torchrun describes it in the environment (world size 1 without torchrun)."""
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Dist()
    return Dist(_env_int("RANK", 0), world, _env_int("LOCAL_RANK", 0))


def init(device: str = "cpu") -> tuple[Dist, bool]:
    """Join the process group when launched by torchrun; returns (dist, whether this call joined).

    The collective timeout is HARNESS_DIST_TIMEOUT seconds (default 1800): a rank that dies
    leaves the others waiting at most that long before they fail too.
    """
    info = current()
    if not info.enabled:
        return info, False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return info, False
    on_cuda = str(device).startswith("cuda")
    if on_cuda:
        count = torch.cuda.device_count()
        if info.local_rank >= count:
            from harness.errors import UsageError

            raise UsageError(
                f"rank {info.rank} has LOCAL_RANK {info.local_rank} but this node has {count} GPU(s); "
                f"launch at most {count} processes per node (torchrun --nproc_per_node={count}) "
                f"or run on the CPU with --device cpu"
            )
        torch.cuda.set_device(info.local_rank)
    unset = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if unset:
        from harness.errors import UsageError

        raise UsageError(
            f"WORLD_SIZE={info.world_size} asks for {info.world_size} processes but "
            f"{' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set; launch with "
            "torchrun (which sets them) or unset WORLD_SIZE for one process"
        )
    timeout = datetime.timedelta(seconds=_env_int("HARNESS_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    dist.init_process_group("nccl" if on_cuda else "gloo", timeout=timeout)
    return info, True


def finish(joined: bool) -> None:
    """Leave the process group if `init` joined it."""
    if joined:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
