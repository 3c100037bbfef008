#!/usr/bin/env bash
# One command on a machine with an NVIDIA GPU: checks and times every GPU path of dytrack_ros in at most
# 8 minutes, prints one table and writes JSON. Works with the machine's own Python and (CUDA) torch and no
# network: this package is installed without dependencies into a throwaway directory (or, if that fails,
# used from the source tree); a missing small dependency is installed from a carried wheel directory.
#
#   benchmarks/gpu_check.sh                 # results in gpu_check_out/gpu_check.json
#   OUT=/some/dir PYTHON=python3.11 benchmarks/gpu_check.sh --only clip,latency
#   WHEELS=/path/to/wheels benchmarks/gpu_check.sh   # *.whl for missing pure-Python deps (pyyaml, safetensors,
#                                                     # tqdm); prepare them elsewhere with
#                                                     # pip download --no-deps -d wheels pyyaml safetensors tqdm
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/gpu_check_out}"
WHEELS="${WHEELS:-$ROOT/benchmarks/wheels}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"

# The package without dependencies (no index, no build isolation: nothing is downloaded).
if "$PY" -m pip install --quiet --no-deps --no-index --no-build-isolation --target "$TMP/site" "$ROOT" \
        >"$OUT/pip_install.log" 2>&1; then
    export PYTHONPATH="$TMP/site${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: installed dytrack_ros (no dependencies) into $TMP/site"
else
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    echo "gpu_check: pip install failed (see $OUT/pip_install.log); using the source tree"
fi

# Dependencies the package imports; cv2 (OpenCV) is large and must already be installed.
missing=()
for mod in yaml safetensors tqdm numpy cv2; do
    "$PY" -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if ((${#missing[@]})); then
    echo "gpu_check: missing modules: ${missing[*]}"
    if compgen -G "$WHEELS/*.whl" >/dev/null; then
        "$PY" -m pip install --quiet --no-index --no-deps --target "$TMP/deps" "$WHEELS"/*.whl \
            && export PYTHONPATH="$PYTHONPATH:$TMP/deps"
    else
        echo "gpu_check: no wheels in $WHEELS to install them from; sections that need them will fail"
    fi
fi

"$PY" -c "import torch; print('gpu_check: torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available())"
# 8 minutes in all: the script stops starting sections after --budget-s and the timeout is the hard stop.
exec timeout --signal=INT --kill-after=20 470 "$PY" "$ROOT/benchmarks/gpu_check.py" \
    --out "$OUT/gpu_check.json" --budget-s 400 "$@"
