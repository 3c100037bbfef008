"""ROS 2 layer of dytrack_ros: tracker node, image conversion, diagnostics, demo tools.

Everything that imports rclpy lives here; the core (model, tracker, backends)
never does. Interfaces generated from ``msg/`` and ``srv/`` are importable as
``dytrack_ros.msg`` and ``dytrack_ros.srv``.
"""
