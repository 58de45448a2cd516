#!/usr/bin/env bash
# Make a trained MiniLM MetaEmbed checkpoint the bundled `metaembed-mini`:
#
#   bash results/libdocs/bundle.sh CHECKPOINT [TARGET]
#
# TARGET defaults to baselines/checkpoints/metaembed-mini, which is replaced. What is copied is
# what loading and provenance need: the LoRA adapter, the meta-token table
# (metaembed.safetensors), metaembed_config.json (renamed metaembed-mini), train_config.json,
# train_log.jsonl and loss.png, and the dev curve (dev_scores.jsonl, dev_curve.png) when the
# run has one. The optimizer state (state/) and the dev result files stay behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
ckpt=${1:?usage: bash results/libdocs/bundle.sh CHECKPOINT [TARGET]}
target=${2:-baselines/checkpoints/metaembed-mini}
py=${PYTHON:-python}
for need in metaembed_config.json metaembed.safetensors adapter/adapter_model.safetensors \
  adapter/adapter_config.json train_config.json train_log.jsonl; do
  if [ ! -f "$ckpt/$need" ]; then
    echo "bundle.sh: $ckpt/$need is missing; give the folder of a finished MetaEmbed training run" >&2
    exit 2
  fi
done
. results/libdocs/lib.sh
if ! run_finished "$ckpt"; then
  echo "bundle.sh: the training run in $ckpt has not finished (its train_log.jsonl stops before the steps in its train_config.json); finish it first" >&2
  exit 2
fi
"$py" - "$ckpt/metaembed_config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
if config.get("family") != "metaembed" or "MiniLM" not in config.get("backbone", ""):
    sys.exit(f"bundle.sh: {sys.argv[1]} is not a MetaEmbed on all-MiniLM-L6-v2")
EOF
staging=$(mktemp -d "${target%/}.new.XXXXXX")
trap 'rm -rf "$staging"' EXIT
chmod 755 "$staging"
mkdir -p "$staging/adapter"
cp "$ckpt"/adapter/adapter_config.json "$ckpt"/adapter/adapter_model.safetensors "$staging/adapter/"
for file in metaembed.safetensors train_config.json train_log.jsonl loss.png dev_scores.jsonl dev_curve.png; do
  if [ -f "$ckpt/$file" ]; then cp "$ckpt/$file" "$staging/"; fi
done
"$py" - "$ckpt/metaembed_config.json" "$staging/metaembed_config.json" <<'EOF'
import json, sys
config = json.load(open(sys.argv[1]))
config["name"] = "metaembed-mini"
with open(sys.argv[2], "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
EOF
rm -rf "$target"
mv "$staging" "$target"
trap - EXIT
echo "bundled $ckpt as $target"
