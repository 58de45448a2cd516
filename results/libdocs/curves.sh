#!/usr/bin/env bash
# Learning curves on libdocs-dev, to choose one step count for every model of the study
# (no test-set number is looked at to choose anything).
#
#   bash results/libdocs/curves.sh [OUT] [MODEL ...]
#
# MODELs, in the default order: metaembed single-mean single-cls metaembed-1x1 (the levers
# metaembed-init-cls, metaembed-init-mask, metaembed-norm, metaembed-fixed-slots and
# metaembed-own-lr run only when named). Each trains on
# seed 0 over the full train split (3053 queries, 191 steps of 16 per epoch) for 3 epochs at a
# constant learning rate after 20 warm-up steps, and is evaluated on libdocs-dev before training
# and every 25 steps (OUT/NAME/dev_scores.jsonl and dev_curve.png). Everything else is the
# study's recipe: LoRA r = alpha = 32 at lr 2e-4, the encoder's own weights at lr 1e-3,
# temperature 0.03, dropout off, 512 text tokens, the released MMR loss (each query's own hard
# negative, group terms averaged) and, for MetaEmbed on MiniLM, the paper's attention. Every
# run saves its state every 5 steps; rerunning the same command continues where it stopped.
# THREADS (default 1) sets torch's threads per run, so that two runs can share two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-results/libdocs/curves}
shift || true
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(metaembed single-mean single-cls metaembed-1x1)
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
py=${PYTHON:-python}
minilm=sentence-transformers/all-MiniLM-L6-v2
. results/libdocs/lib.sh

recipe=(--data libdocs --epochs 3 --batch-size 16 --warmup 20 --schedule constant --lr 2e-4
        --own-lr 1e-3 --lora-r 32 --lora-alpha 32 --temperature 0.03 --no-dropout --seed 0
        --save-every 5 --eval-every 25 --eval-tasks libdocs-dev --no-progress)

curve() {
  local family=$1 name=$2
  shift 2
  echo "== $name ($(date -u +%H:%M:%S))"
  "$py" -m harness train --model "$family" --model-args "backbone=$minilm,max_length=512,name=$name$*" \
    --output "$out/$name" "${recipe[@]}" ${extra:+"${extra[@]}"}
}

for model in "${models[@]}"; do
  extra=()
  case $model in
    metaembed) curve metaembed metaembed-mmr-minilm ;;
    single-mean) curve single-mean single-mean-ft-minilm ;;
    single-cls) curve single-cls single-cls-ft-minilm ;;
    # one query and one candidate slot, trained on the single group 1x1: MetaEmbed's readout at
    # its smallest size, the analogue of the paper's last-token single vector
    metaembed-1x1) extra=(--groups 1x1); curve metaembed metaembed-1x1-minilm ",query_tokens=1,candidate_tokens=1" ;;
    # levers tried on dev because MetaEmbed trails once flat (the study plan, step 2), one
    # change each to MetaEmbed's recipe (lib.sh says what each changes); the [MASK] start
    # was ruled out before training (it reads worse than random)
    metaembed-init-mask) curve metaembed metaembed-mmr-minilm-init-mask ",meta_init=mask" ;;
    metaembed-init-cls | metaembed-norm | metaembed-fixed-slots | metaembed-own-lr)
      lever_recipe "${model#metaembed-}"
      extra=(${lever_flags[@]+"${lever_flags[@]}"})
      curve metaembed "metaembed-mmr-minilm-${model#metaembed-}" "$lever_arg" ;;
    *) echo "unknown model $model; use metaembed single-mean single-cls metaembed-1x1 metaembed-init-cls metaembed-init-mask metaembed-norm metaembed-fixed-slots metaembed-own-lr" >&2; exit 2 ;;
  esac
done
