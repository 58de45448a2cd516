#!/usr/bin/env bash
# The libdocs study at the second recipe ("3 epochs"), chosen on libdocs-dev by the learning
# curves (results/libdocs/curves/README.md): every model trains 3 epochs over the full train
# split (573 steps of 16 queries) at a constant learning rate after 20 warm-up steps, the rest
# of the recipe as the curves' (curves.sh: LoRA r = alpha = 32 at lr 2e-4, the encoder's own
# weights at lr 1e-3, temperature 0.03, dropout off, 512 text tokens, the released MMR loss and,
# for MetaEmbed on MiniLM, the paper's attention).
#
#   bash results/libdocs/study-3epochs.sh [OUT] [STAGE ...]
#
# Seed 0 of every model is its learning-curve run (CURVES, default results/libdocs/curves, must
# hold the curve checkpoints' weights); the stages train the other seeds into OUT/checkpoints/
# and evaluate on the libdocs test tasks into OUT/seed0 seed1 seed2 (result files NAME-sS, read as
# one model by `report --seeds mean`); claims-3epochs.toml holds the claims read from OUT. STAGES, in the default order:
#
#   s0       evaluate the curve runs (MetaEmbed, single-mean, single-cls, the 1-slot MetaEmbed)
#   zero-shot  MiniLM as released: mean pooling and the naive chunked multi-vector reading,
#            for the unflattering claims
#   s1 s2    train and evaluate MetaEmbed (MMR) and single-mean with seeds 1 and 2
#            (mmr-s1 mmr-s2 single-s1 single-s2: one model of them, to run two side by side)
#   nommr    MetaEmbed without nesting (--objective nommr), seed 0
#   cls-1x1  single-cls and the 1-slot MetaEmbed with seeds 1 and 2
#
# The default stages are what about 10 hours of 2 CPU cores allow (results/libdocs/curves/
# README.md gives the timings); nommr and cls-1x1 run when named. LEVER names the MetaEmbed
# recipe chosen on dev by the curves: none (the default: random meta tokens, the recipe above),
# init-cls (meta_init=cls), norm (--normalize-scores), fixed-slots (slot_positions=fixed) or
# own-lr (--own-lr 1e-2), as in curves.sh; MetaEmbed's seed 0 is then that lever's curve run
# and its other seeds (and nommr) train with it. Every stage resumes: training
# continues from its last saved state (every 5 steps) and finished result files are skipped.
# A seed sets everything random in a run: the batch order and the adapter's start (--seed) and,
# for MetaEmbed, the random meta-token table (the model argument seed=, the same number; the
# curve runs, seed 0, used its default 0). THREADS (default 1) sets torch's threads per
# process, so that two runs can share two cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-results/runs/libdocs-3epochs}
shift || true
stages=("$@")
all_stages="s0 zero-shot s1 s2 mmr-s1 mmr-s2 single-s1 single-s2 nommr cls-1x1"
case " $all_stages " in
  *" $out "*) echo "the first argument is the output folder, then the stages: study-3epochs.sh OUT $out" >&2; exit 2 ;;
esac
[ ${#stages[@]} -gt 0 ] || stages=(s0 zero-shot s1 s2)
for stage in "${stages[@]}"; do
  case " $all_stages " in
    *" $stage "*) ;;
    *) echo "unknown stage $stage; use $all_stages" >&2; exit 2 ;;
  esac
done
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
py=${PYTHON:-python}
curves=${CURVES:-results/libdocs/curves}
lever=${LEVER:-none}
minilm=sentence-transformers/all-MiniLM-L6-v2
recipe=(--data libdocs --epochs 3 --batch-size 16 --warmup 20 --schedule constant --lr 2e-4
        --own-lr 1e-3 --lora-r 32 --lora-alpha 32 --temperature 0.03 --no-dropout
        --save-every 5 --no-progress)
tasks=(--tasks libdocs --no-progress)

# evaluated NAME SEED: whether both libdocs test tasks' result files of NAME-sSEED are there
evaluated() {
  [ -f "$out/seed$2/$1-s$2/libdocs-corpus.json" ] && [ -f "$out/seed$2/$1-s$2/libdocs-lists.json" ]
}

# evaluate FAMILY CHECKPOINT NAME SEED: the libdocs test tasks, result files named NAME-sSEED
evaluate() {
  local family=$1 ckpt=$2 name=$3 seed=$4
  # finished result files stand: their weights need not be on this machine any more
  if evaluated "$name" "$seed"; then
    echo "$name-s$seed: evaluated already, skipped"
    return
  fi
  if [ ! -f "$ckpt/adapter/adapter_model.safetensors" ]; then
    echo "$name-s$seed: no trained weights in $ckpt (set CURVES to the folder of the curve runs)" >&2
    exit 1
  fi
  if ! run_finished "$ckpt"; then
    echo "$name-s$seed: the training run in $ckpt has not finished (its train_log.jsonl stops before the steps in its train_config.json); finish it with the command that started it, which resumes" >&2
    exit 1
  fi
  "$py" -m harness run --model "$family" --model-args "checkpoint=$ckpt,max_length=512,name=$name-s$seed" \
    --output "$out/seed$seed" "${tasks[@]}"
}

# train FAMILY NAME SEED MODEL_ARGS [train flags...], then evaluate the checkpoint
train() {
  local family=$1 name=$2 seed=$3 args=$4
  shift 4
  local ckpt=$out/checkpoints/$name-s$seed
  if evaluated "$name" "$seed"; then
    echo "$name-s$seed: trained and evaluated already, skipped"
    return
  fi
  "$py" -m harness train --model "$family" --model-args "backbone=$minilm,max_length=512,name=$name$args" \
    --seed "$seed" --output "$ckpt" "${recipe[@]}" "$@"
  evaluate "$family" "$ckpt" "$name" "$seed"
}

# MetaEmbed's recipe: the lever's model argument and train flags (lib.sh, shared with curves.sh)
. results/libdocs/lib.sh
lever_recipe "$lever" || exit 2
metaembed_curve=metaembed-mmr-minilm
[ "$lever" = none ] || metaembed_curve=metaembed-mmr-minilm-$lever

for stage in "${stages[@]}"; do
  echo "== $stage ($(date -u +%H:%M:%S))"
  case $stage in
    s0)
      evaluate metaembed "$curves/$metaembed_curve" metaembed-mmr-minilm 0
      evaluate single-mean "$curves/single-mean-ft-minilm" single-mean-ft-minilm 0
      evaluate single-cls "$curves/single-cls-ft-minilm" single-cls-ft-minilm 0
      evaluate metaembed "$curves/metaembed-1x1-minilm" metaembed-1x1-minilm 0
      ;;
    zero-shot)
      "$py" -m harness run --model single-mean --model-args "backbone=$minilm,max_length=512,name=single-mean-minilm" \
        --output "$out/zero-shot" "${tasks[@]}"
      "$py" -m harness run --model naive-multi --model-args "backbone=$minilm,max_length=512,name=naive-multi-minilm" \
        --output "$out/zero-shot" "${tasks[@]}"
      ;;
    s1 | s2 | mmr-s1 | mmr-s2 | single-s1 | single-s2)
      seed=${stage##*s}
      if [ "${stage#single}" = "$stage" ]; then
        train metaembed metaembed-mmr-minilm "$seed" ",seed=$seed$lever_arg" ${lever_flags[@]+"${lever_flags[@]}"}
      fi
      if [ "${stage#mmr}" = "$stage" ]; then
        train single-mean single-mean-ft-minilm "$seed" ""
      fi
      ;;
    nommr) train metaembed metaembed-nommr-minilm 0 ",seed=0$lever_arg" --objective nommr ${lever_flags[@]+"${lever_flags[@]}"} ;;
    cls-1x1)
      for seed in 1 2; do
        train single-cls single-cls-ft-minilm "$seed" ""
        train metaembed metaembed-1x1-minilm "$seed" ",seed=$seed,query_tokens=1,candidate_tokens=1" --groups 1x1
      done
      ;;
  esac
done
