#!/usr/bin/env bash
# Train on a machine with an NVIDIA GPU, its own Python and CUDA torch, and no network: this package is installed
# without dependencies into a throwaway folder (torch, numpy, opencv, pyyaml, safetensors and tqdm must already be
# there), then `dytrack train CONFIG --device cuda` runs with the given overrides.
#
#   scripts/train_on_gpu.sh config/train/dytrack_small_composite.yaml --out outputs/train/composite
#
# The media bank (data/bank, from scripts/fetch_training_media.sh) must have been copied along.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cd "$ROOT"
if "$PY" -m pip install --quiet --no-deps --no-index --no-build-isolation --target "$TMP/site" "$ROOT" \
        >"$TMP/pip.log" 2>&1; then
    export PYTHONPATH="$TMP/site${PYTHONPATH:+:$PYTHONPATH}"
else
    echo "train_on_gpu: pip install failed ($(tail -1 "$TMP/pip.log")); using the source tree"
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('train_on_gpu: torch', torch.__version__, 'cuda available', torch.cuda.is_available())"
exec "$PY" -m dytrack_ros.cli train "$@" --device cuda --no-progress
