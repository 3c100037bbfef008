"""dytrack_ros: efficient transformer single-object tracking (DyTrack, CompressTracker) for ROS 2.

The core (model, tracker runtime, backends, data, evaluation, training) never
imports rclpy; the ROS layer lives in ``dytrack_ros.ros``.
"""
__version__ = "0.1.0"
