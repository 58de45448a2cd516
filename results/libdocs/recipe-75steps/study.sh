#!/usr/bin/env bash
# The paper's claims on the libdocs suite, at two model sizes, on a CPU and offline.
#
#   bash results/libdocs/recipe-75steps/study.sh [OUT] [STAGE ...]
#
# OUT (default results/runs/libdocs-study) receives checkpoints/, zero-shot/ and seed0/ seed1/ seed2/
# result folders; the bundled baselines/checkpoints/metaembed-mini is never written. STAGES, in
# the default order: minilm-s0 zero-shot minilm-s1 minilm-s2 mpnet compare. Every step resumes:
# `harness train` continues from its last saved state (every 5 steps) and `harness run` skips
# finished result files, so rerunning the same command after an interruption picks up where it
# stopped. `compare` says whether OUT's scores match the committed ones in results/libdocs/recipe-75steps.
#
# One recipe for every trained model (MetaEmbed with MMR, MetaEmbed without nesting, mean-pooled
# single vector, the naive chunked multi-vector baseline; MiniLM and mpnet): one epoch over the
# first 1200 training queries in the split's stable order (75 steps of 16 queries, each with its
# page and a sibling page of the same module as hard negative), AdamW, 5 warm-up steps then
# linear decay, LoRA r = alpha = 32 on every attention and MLP projection at lr 2e-4, the
# encoder's own weights (meta tokens) at lr 1e-3, temperature 0.03, dropout off, 512 text tokens
# (no page is cut). The train split is cut to 1200 of its 3053 queries so that the whole study
# fits in about 8 hours of 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:-results/runs/libdocs-study}
shift || true
stages=("$@")
all_stages="minilm-s0 minilm-s1 minilm-s2 zero-shot mpnet compare"
case " $all_stages " in
  *" $out "*) echo "the first argument is the output folder, then the stages: study.sh OUT $out" >&2; exit 2 ;;
esac
[ ${#stages[@]} -gt 0 ] || stages=(minilm-s0 zero-shot minilm-s1 minilm-s2 mpnet compare)
export HF_HUB_OFFLINE=1
py=${PYTHON:-python}
cache=${HARNESS_CACHE_DIR:-$HOME/.cache/harness}

# the loss as it was then (every hard negative of the batch, group terms summed, other copies of a
# positive left out), and MetaEmbed on MiniLM with full attention; the later defaults (the
# released loss, the paper's attention) are the second recipe's
recipe=(--data libdocs:1200 --epochs 1 --batch-size 16 --warmup 5 --lr 2e-4 --own-lr 1e-3
        --lora-r 32 --lora-alpha 32 --temperature 0.03 --no-dropout --save-every 5 --no-progress
        --negatives batch --group-reduction sum --skip-copies)
tasks=(--tasks libdocs --cache-dir "$cache" --no-progress)

# train FAMILY NAME BACKBONE SEED [extra train flags...], then evaluate the checkpoint
train_and_run() {
  local family=$1 name=$2 backbone=$3 seed=$4
  shift 4
  local ckpt=$out/checkpoints/$name
  if [ -f "$out/seed$seed/$name/libdocs-corpus.json" ] && [ -f "$out/seed$seed/$name/libdocs-lists.json" ]; then
    echo "$name: trained and evaluated already, skipped"  # also in a fresh clone, without its weights
    return
  fi
  local flow=""
  [ "$family" = metaembed ] && flow=",attention=full"
  "$py" -m harness train --model "$family" --model-args "backbone=$backbone,max_length=512,name=$name$flow" \
    --seed "$seed" --output "$ckpt" "${recipe[@]}" "$@"
  "$py" -m harness run --model "$family" --model-args "checkpoint=$ckpt,max_length=512" \
    --output "$out/seed$seed" "${tasks[@]}"
}

minilm=sentence-transformers/all-MiniLM-L6-v2
trained_minilm() {
  local s=$1
  train_and_run metaembed "metaembed-mmr-minilm-s$s" "$minilm" "$s"
  train_and_run metaembed "metaembed-nommr-minilm-s$s" "$minilm" "$s" --objective nommr
  train_and_run single-mean "single-mean-ft-minilm-s$s" "$minilm" "$s"
  train_and_run naive-multi "naive-multi-ft-minilm-s$s" "$minilm" "$s"
}

zero_shot() {
  # The backbones as released (mean pooling; the paper's naive chunked multi-vector reading;
  # the token-level ColBERT-style twin with token-pooling budgets) and MetaEmbed with
  # untrained meta tokens.
  local zs=(--output "$out/zero-shot" "${tasks[@]}")
  "$py" -m harness run --model single-mean --model-args "backbone=$minilm,max_length=512,name=single-mean-minilm" "${zs[@]}"
  "$py" -m harness run --model naive-multi --model-args "backbone=$minilm,max_length=512,name=naive-multi-minilm" "${zs[@]}"
  "$py" -m harness run --model colbert --model-args "backbone=$minilm,max_length=512,name=colbert-minilm" "${zs[@]}"
  "$py" -m harness run --model metaembed --model-args "backbone=$minilm,max_length=512,name=metaembed-untrained-minilm" "${zs[@]}"
  "$py" -m harness run --model single-mean --model-args "backbone=mpnet,max_length=512,name=single-mean-mpnet" "${zs[@]}"
}

for stage in "${stages[@]}"; do
  case $stage in
    minilm-s0 | minilm-s1 | minilm-s2 | zero-shot | mpnet | compare) ;;
    *) echo "unknown stage $stage; use minilm-s0 minilm-s1 minilm-s2 zero-shot mpnet compare" >&2; exit 2 ;;
  esac
done

for stage in "${stages[@]}"; do
  echo "== $stage ($(date -u +%H:%M:%S))"
  case $stage in
    minilm-s0) trained_minilm 0 ;;
    minilm-s1) trained_minilm 1 ;;
    minilm-s2) trained_minilm 2 ;;
    zero-shot) zero_shot ;;
    mpnet)
      train_and_run metaembed metaembed-mmr-mpnet-s0 mpnet 0
      train_and_run single-mean single-mean-ft-mpnet-s0 mpnet 0
      ;;
    compare)
      if [ "$(realpath "$out")" = "$(realpath results/libdocs/recipe-75steps)" ]; then
        echo "compare: $out is the committed study itself; nothing to compare"
      else
        "$py" -m harness report match results/libdocs/recipe-75steps --results "$out"
      fi
      ;;
  esac
done
