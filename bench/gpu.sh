#!/usr/bin/env bash
# CUDA runs of bench/maxsim.py and bench/memory.py with bf16 storage: about 3 minutes on one
# H100 (each step is capped at STEP_TIMEOUT seconds, 150 by default). Needs no network;
# colpali-engine and pylate are timed only where installed, and skipped with a note otherwise.
#   bash bench/gpu.sh [OUTFILE]        (default: stdout)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY="${PYTHON:-$(command -v python3 || command -v python)}"
if [ $# -ge 1 ]; then exec >"$1" 2>&1; fi

step() {
    echo
    echo "### python $*"
    timeout "${STEP_TIMEOUT:-150}" "$PY" "$@"
    local rc=$?
    [ $rc -eq 0 ] || echo "(step exited with status $rc)"
}

date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
step bench/maxsim.py --device cuda --dtype bfloat16 --compute-dtype bfloat16
step bench/maxsim.py --device cuda --dtype bfloat16 --compute-dtype float32 --peers-only
step bench/memory.py --device cuda
