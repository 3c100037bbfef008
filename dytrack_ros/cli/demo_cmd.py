"""dytrack demo: the camera-free ROS 2 pipeline demo (player -> tracker_node -> recorder).

Registered for the command list only; ``dytrack demo ...`` hands all its
arguments to ``dytrack_ros.ros.demo.main`` (see PASSTHROUGH in the CLI).
"""
from __future__ import annotations


def add_parser(sub) -> None:
    sub.add_parser("demo", add_help=False,
                   help="camera-free ROS 2 demo: play a video as a camera topic through tracker_node, init by "
                        "service, record the annotated video and a summary (options: dytrack demo --help)")
