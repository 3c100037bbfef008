"""`python -m dytrack_ros [--ros-args ...]` runs the ROS 2 tracker node.

(The command-line tools are the `dytrack` console script.)
"""
import sys

try:
    from dytrack_ros.ros.entry import run
except KeyboardInterrupt:  # Ctrl-C while Python is still importing: no traceback
    sys.exit(130)

sys.exit(run("tracker_node"))
