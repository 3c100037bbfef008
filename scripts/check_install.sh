#!/usr/bin/env bash
# Proves `pip install .` alone gives a working tracker: a clean temporary venv, the package
# installed from this checkout (torch held to the pinned CPU build by constraints.txt), then,
# from a folder outside the checkout so the installed copy is what gets imported: import
# dytrack_ros.tracker, load the installed shipped model and track one generated frame.
#   usage: scripts/check_install.sh        (called by .ci/run; PYTHON picks the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dytrack_check_install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
start=$(date +%s)

"$PY" -m venv "$TMP/venv"
VPY=$TMP/venv/bin/python
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q "$ROOT" -c "$ROOT/constraints.txt"

cd "$TMP"
"$VPY" - "$ROOT" <<'EOF'
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

import dytrack_ros
from dytrack_ros.paths import default_model_path
from dytrack_ros.tracker import Tracker

checkout = Path(sys.argv[1]).resolve()
package = Path(dytrack_ros.__file__).resolve()
assert checkout not in package.parents, f"imported the checkout, not the installed package: {package}"
model = default_model_path().resolve()
assert model.is_file() and Path(sys.prefix).resolve() in model.parents, f"shipped model not installed: {model}"
assert model.read_bytes() == (checkout / "models" / "dytrack_small.safetensors").read_bytes()
licenses = [f for f in metadata.distribution("dytrack_ros").files if f.name == "LICENSE"]
assert licenses and "Apache License" in licenses[0].read_text(), "LICENSE missing from the installed metadata"

# A bright square on a textured background, moved 4 px right and 3 px down between frames.
rng = np.random.default_rng(0)
background = rng.integers(0, 80, (240, 320, 3), dtype=np.uint8)


def frame(x: int, y: int) -> np.ndarray:
    f = background.copy()
    f[y:y + 30, x:x + 40] = (230, 60, 60)
    return f


tracker = Tracker.from_model(model)
tracker.initialize(frame(100, 80), (100, 80, 40, 30))
result = tracker.track(frame(104, 83))
x, y, w, h = result.box
ix = max(0.0, min(x + w, 144) - max(x, 104))
iy = max(0.0, min(y + h, 113) - max(y, 83))
iou = ix * iy / (w * h + 40 * 30 - ix * iy)
assert iou > 0.5, f"lost the target: {result}"
import torch
print(f"installed {package.parent} (torch {torch.__version__})")
print(f"model     {model}")
print(f"box       {x:.1f},{y:.1f},{w:.1f},{h:.1f}  IoU {iou:.2f}  score {result.score:.3f}  exit {result.exit_layer}/{result.num_layers}"
      f"  (target 104,83,40,30)")
EOF
# The console script builds the parser of every subcommand: none may need an extra at import time.
models=$("$TMP/venv/bin/dytrack" models)
grep -q "^dytrack_small " <<<"$models" || { echo "check_install: 'dytrack models' lists no dytrack_small" >&2; exit 1; }
echo "check_install: ok in $(( $(date +%s) - start )) s"
