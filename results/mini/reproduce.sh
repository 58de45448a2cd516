#!/usr/bin/env bash
# The paper's claims at small scale: MetaEmbed (MMR) vs NoMMR vs single-vector vs naive
# multi-vector, all fine-tuned from all-MiniLM-L6-v2 with the same data (the mini train split),
# steps, batch, learning rates and LoRA settings, then evaluated on the mini test split.
# CPU only, offline. Usage: bash results/mini/reproduce.sh [SEED]
set -euo pipefail
cd "$(dirname "$0")/../.."
seed=${1:-0}
export HF_HUB_OFFLINE=1
runs=results/mini/checkpoints-seed$seed
common=(--data mini --steps 80 --batch-size 16 --warmup 8 --seed "$seed" --no-progress)
minilm="backbone=sentence-transformers/all-MiniLM-L6-v2,max_length=128"

# MetaEmbed with MMR; seed 0 is the bundled metaembed-mini checkpoint.
if [ "$seed" = 0 ]; then mmr=baselines/checkpoints/metaembed-mini; else mmr=$runs/metaembed-mmr; fi
python -m harness train --model metaembed --model-args "$minilm,name=metaembed-mini" --output "$mmr" "${common[@]}"
python -m harness train --model metaembed --model-args "$minilm,name=metaembed-nommr" --objective nommr --output "$runs/metaembed-nommr" "${common[@]}"
python -m harness train --model single-mean --model-args "$minilm,name=single-mean-ft" --output "$runs/single-mean-ft" "${common[@]}"
python -m harness train --model naive-multi --model-args "$minilm,name=naive-multi-ft" --output "$runs/naive-multi-ft" "${common[@]}"

out=results/mini/seed$seed
eval=(--tasks mini --output "$out" --cache-dir "${HARNESS_CACHE_DIR:-$HOME/.cache/harness}" --no-progress)
python -m harness run --model metaembed --model-args "checkpoint=$mmr,max_length=128" "${eval[@]}"
python -m harness run --model metaembed --model-args "checkpoint=$runs/metaembed-nommr,max_length=128" "${eval[@]}"
python -m harness run --model single-mean --model-args "checkpoint=$runs/single-mean-ft,max_length=128" "${eval[@]}"
python -m harness run --model naive-multi --model-args "checkpoint=$runs/naive-multi-ft,max_length=128" "${eval[@]}"
# Reference points without fine-tuning: MiniLM as released (mean pooling, and its token-level
# twin) and MetaEmbed with untrained meta tokens.
python -m harness run --model single-mean,colbert "${eval[@]}"
python -m harness run --model metaembed --model-args "$minilm,name=metaembed-untrained" "${eval[@]}"
