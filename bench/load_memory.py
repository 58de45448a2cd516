"""Peak memory of loading embeddings for scoring: cache shards on disk -> one in-memory set,
checked (finite, not collapsed), as the encode stage does for a corpus held in memory.

Side by side, each in a fresh subprocess: `harness` (cache.load_shards, which fills one
preallocated tensor shard by shard, then multivectors.check_embeddings, block by block) and
`concatenate` (every shard loaded, torch.cat, then one float32 copy of the whole set for the
checks: how loading worked before). Reported: the peak resident set above the process's
resident set before loading, as a multiple of the embeddings' own size.

    python bench/load_memory.py [--items 2000] [--dim 1024] [--dtype bfloat16|float32]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from common import mib, peak_rss_bytes, reset_peak_rss, rss_bytes

from harness.cache import Shard, load_shards
from harness.multivectors import MultiVectors, check_embeddings

SHARD = 512
VECTORS = 64
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def write_shards(folder: Path, items: int, dim: int, dtype: torch.dtype) -> list[Shard]:
    from safetensors.torch import save_file

    shards = []
    g = torch.Generator().manual_seed(0)
    for start in range(0, items, SHARD):
        stop = min(items, start + SHARD)
        vectors = torch.randn(stop - start, VECTORS, dim, generator=g).to(dtype)
        path = folder / f"{start:09d}-{stop:09d}.safetensors"
        save_file({"vectors": vectors, "lengths": torch.full((stop - start,), VECTORS)}, str(path))
        shards.append(Shard(start, stop, path))
    return shards


def measure(variant: str, folder: str, items: int) -> dict:
    paths = sorted(Path(folder).glob("*.safetensors"))
    shards = []
    for path in paths:
        start, stop = (int(x) for x in path.stem.split("-"))
        shards.append(Shard(start, stop, path))
    ids = [str(i) for i in range(items)]
    before = rss_bytes()
    reset_peak_rss()
    if variant == "harness":
        mv = load_shards(shards, 0)
        check_embeddings(mv, ids, model="bench", role="candidate")
    else:
        mv = MultiVectors.cat([s.load() for s in shards])
        flat = mv.vectors.reshape(len(mv), -1).float()
        assert bool(torch.isfinite(flat).all()) and not bool((flat == flat[0]).all())
        del flat
    size = mv.vectors.numel() * mv.vectors.element_size()
    return {"variant": variant, "peak_above": peak_rss_bytes() - before, "embeddings": size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--dtype", default="bfloat16", choices=list(DTYPES))
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.items)))
        return
    with tempfile.TemporaryDirectory() as folder:
        write_shards(Path(folder), args.items, args.dim, DTYPES[args.dtype])
        print(f"{args.items} items x {VECTORS} x {args.dim} {args.dtype}, shards of {SHARD}")
        print("| variant | embeddings | peak above start | x embeddings |\n|---|---|---|---|")
        for variant in ("concatenate", "harness"):
            out = subprocess.run(
                [sys.executable, __file__, "--items", str(args.items), "--child", variant, folder],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            ratio = row["peak_above"] / row["embeddings"]
            print(
                f"| {variant} | {mib(row['embeddings'])} | {mib(row['peak_above'])} | {ratio:.2f} |"
            )


if __name__ == "__main__":
    main()
