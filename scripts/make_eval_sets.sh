#!/usr/bin/env bash
# Build the two synthetic evaluation sets from media-bank sources never used for training
# (the bank comes from scripts/fetch_training_media.sh; see dytrack_ros/data/media_bank.py):
#   outputs/synth/calib_sway   split val:  exit-threshold calibration, backgrounds and target crops from
#                              data/bank/calib/backgrounds (sway-backgrounds) only;
#                              6 easy (seed 41), 12 medium (seed 42), 6 hard (seed 43); 100 frames, 640x480.
#   outputs/synth/unseen_test  split test: the unseen test set, from data/bank/test/backgrounds
#                              (ukui-wallpapers + desktop-base) only;
#                              8 easy (seed 51), 8 medium (seed 52), 8 hard (seed 53); 150 frames, 640x480.
# --photos-only keeps scikit-image's photos (training sources) out. Deterministic: same bank, same sets.
# Finished sequences are kept on a re-run; delete a set's folder to rebuild it (e.g. after rebuilding the bank).
# WORKERS=N runs N generator processes (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
BANK=${BANK:-data/bank}
WORKERS=${WORKERS:-1}
for d in "$BANK/calib/backgrounds" "$BANK/test/backgrounds"; do
  if [ ! -f "$BANK/manifest.json" ] || [ -z "$(ls -A "$d" 2>/dev/null)" ]; then
    echo "error: $d is missing or empty; build the bank first: scripts/fetch_training_media.sh" >&2; exit 2
  fi
done
DYTRACK=dytrack
[ -x .venv/bin/dytrack ] && DYTRACK=.venv/bin/dytrack
synth() {  # OUT SPLIT PHOTOS FRAMES PRESET SEED N
  echo "== $1: $7 x $5 (seed $6, $4 frames)"
  "$DYTRACK" synth --out "$1" --split "$2" --photos "$3" --photos-only --frames "$4" --preset "$5" --seed "$6" \
    --num-sequences "$7" --size 640x480 --workers "$WORKERS" --quiet
}
synth outputs/synth/calib_sway val "$BANK/calib/backgrounds" 100 easy 41 6
synth outputs/synth/calib_sway val "$BANK/calib/backgrounds" 100 medium 42 12
synth outputs/synth/calib_sway val "$BANK/calib/backgrounds" 100 hard 43 6
synth outputs/synth/unseen_test test "$BANK/test/backgrounds" 150 easy 51 8
synth outputs/synth/unseen_test test "$BANK/test/backgrounds" 150 medium 52 8
synth outputs/synth/unseen_test test "$BANK/test/backgrounds" 150 hard 53 8
echo "calib_sway: $(wc -l < outputs/synth/calib_sway/val/list.txt) sequences; unseen_test: $(wc -l < outputs/synth/unseen_test/test/list.txt) sequences"
