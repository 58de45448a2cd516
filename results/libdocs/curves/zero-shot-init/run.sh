#!/usr/bin/env bash
# libdocs-dev scores of an untrained MetaEmbed on all-MiniLM-L6-v2 for each meta-token
# initialisation (meta_init=cls|mask|random): where a training run starts from.
#   bash results/libdocs/curves/zero-shot-init/run.sh
set -euo pipefail
cd "$(dirname "$0")/../../../.."
export HF_HUB_OFFLINE=1
for init in cls mask random; do
  python -m harness run --model metaembed \
    --model-args "backbone=sentence-transformers/all-MiniLM-L6-v2,max_length=512,meta_init=$init,name=metaembed-init-$init" \
    --tasks libdocs-dev --budgets all --output results/libdocs/curves/zero-shot-init --no-progress
done
