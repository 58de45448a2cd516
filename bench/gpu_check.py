"""End-to-end checks of the CUDA paths (run by hand on a GPU machine; not a test, CI has no GPU).

1. `test-hash` on the toy tasks, scored on CUDA against the same run on the CPU.
2. A tiny random Qwen2-VL MetaEmbed (the test suite's fixture, built offline) encoding and
   scoring on CUDA in bfloat16 against float32 on the CPU.
3. Out-of-core scoring on CUDA (a 1000-byte memory limit) against in-memory scoring.

Prints one line per check with the metrics' largest difference. Usage:
`python bench/gpu_check.py [--workdir DIR]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

import harness  # noqa: E402


def metrics(records):
    return {(r["task"]["name"], b["label"]): b["metrics"] for r in records for b in r["budgets"]}


def largest_gap(a, b):
    gap = 0.0
    for key, row in a.items():
        for name, value in row.items():
            if isinstance(value, float) and name in b[key]:
                gap = max(gap, abs(value - b[key][name]))
    return gap


def check(name, fn):
    began = time.perf_counter()
    try:
        detail = fn()
        print(f"[ok]   {name}: {detail} ({time.perf_counter() - began:.1f} s)", flush=True)
    except Exception:
        print(f"[FAIL] {name}", flush=True)
        traceback.print_exc()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=None)
    parser.add_argument(
        "--backbone", default=None, help="a tiny Qwen2-VL folder (built here when not given)"
    )
    parser.add_argument(
        "--device", default="cuda", help="cpu: a dry run of this script on a machine with no GPU"
    )
    args = parser.parse_args()
    device = args.device
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu-check-"))
    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}", flush=True)
    if torch.cuda.is_available():
        print(f"device {torch.cuda.get_device_name(0)}", flush=True)
    import transformers

    print(f"transformers {transformers.__version__}", flush=True)
    from toy_tasks import CORPUS, TASKS

    def run(model, tasks, out, **options):
        return harness.evaluate(
            model,
            tasks,
            output=str(work / out),
            cache_dir=str(work / "cache"),
            data_dir=str(work / "data"),
            progress=False,
            **options,
        )

    def hash_cuda():
        cpu = run("test-hash", TASKS, "hash-cpu", device="cpu")
        gpu = run("test-hash", TASKS, "hash-cuda", device=device)
        assert gpu[0]["encode"]["device"] == device
        return f"largest metric gap CUDA vs CPU {largest_gap(metrics(cpu), metrics(gpu)):.2e}"

    def tiny_vlm_bf16():
        if args.backbone:
            backbone = args.backbone
        else:
            from model_fixtures import tiny_qwen2_vl

            backbone = str(tiny_qwen2_vl(work / "qwen2_vl"))
        base = {"backbone": backbone, "query_tokens": 16, "candidate_tokens": 64}
        cpu = run(
            "metaembed",
            TASKS,
            "vlm-cpu",
            device="cpu",
            model_args={**base, "dtype": "float32"},
            budgets="1x1,4x8,16x64",
        )
        gpu = run(
            "metaembed",
            TASKS,
            "vlm-cuda-bf16",
            device=device,
            model_args={**base, "dtype": "bfloat16"},
            budgets="1x1,4x8,16x64",
        )
        peak = gpu[0]["encode"]["peak_memory_bytes"]
        return (
            f"dtype {gpu[0]['encode']['dtype']}, largest metric gap bf16 CUDA vs fp32 CPU "
            f"{largest_gap(metrics(cpu), metrics(gpu)):.3f}, peak CUDA memory {peak / 2**20:.0f} MiB"
        )

    def out_of_core_cuda():
        dense = run("test-hash", [CORPUS], "ooc-dense", device=device, shard_size=5)
        sharded = run(
            "test-hash", [CORPUS], "ooc-disk", device=device, shard_size=5, memory_limit=1000
        )
        assert all(b["cost"]["candidates_out_of_core"] for b in sharded[0]["budgets"])
        return f"largest metric gap out-of-core vs in-memory {largest_gap(metrics(dense), metrics(sharded)):.2e}"

    check("test-hash scored on CUDA", hash_cuda)
    check("tiny Qwen2-VL MetaEmbed, bf16 on CUDA", tiny_vlm_bf16)
    check("out-of-core scoring on CUDA", out_of_core_cuda)


if __name__ == "__main__":
    main()
