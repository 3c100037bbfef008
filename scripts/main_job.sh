#!/usr/bin/env bash
# The README's main job, on the shipped default model: the real sample video cup.mp4 (Debian opencv-doc) played
# as a camera topic through the whole ROS 2 pipeline (player -> tracker_node -> recorder, init by service call),
# writing outputs/demo/{tracked.mp4, targets.csv, summary.json, exit_depth.png}.
# Extra arguments go to the demo (python -m dytrack_ros.ros.demo --help).
set -euo pipefail
cd "$(dirname "$0")/.."
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$PWD/config/fastdds_shm.xml}
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
exec .venv/bin/python -m dytrack_ros.ros.demo --video data/media/cup.mp4 --box 306 124 108 259 --out outputs/demo "$@"
