"""`python -m dytrack_ros [--ros-args ...]` runs the ROS 2 tracker node.

(The command-line tools are the `dytrack` console script.)
"""
import sys

from dytrack_ros.ros.tracker_node import main

sys.exit(main())
