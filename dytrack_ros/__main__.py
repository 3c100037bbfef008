"""`python -m dytrack_ros [--ros-args ...]` runs the ROS 2 tracker node.

(The command-line tools are the `dytrack` console script.)
"""
import sys

try:
    from dytrack_ros.ros.tracker_node import main
except KeyboardInterrupt:  # Ctrl-C while torch/rclpy are still importing: no traceback
    sys.exit(130)

sys.exit(main())
