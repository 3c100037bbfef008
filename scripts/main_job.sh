#!/usr/bin/env bash
# The README's main job: track the real sample video cup.mp4 (opencv-doc) with the shipped default model
# through the whole ROS 2 pipeline when the ROS demo is available, else with the plain CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
mkdir -p outputs
if "$VPY" -c "import dytrack_ros.ros.demo" 2>/dev/null; then
  "$VPY" -m dytrack_ros.ros.demo data/media/cup.mp4 --init 300,120,126,250 --out outputs/demo "$@"
else
  .venv/bin/dytrack track data/media/cup.mp4 --init 300,120,126,250 --out outputs/cup_tracked.mp4 \
    --boxes outputs/cup_boxes.txt "$@"
fi
