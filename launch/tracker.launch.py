"""Launch the dytrack_ros tracker node (real ROS 2 installs: `ros2 launch dytrack_ros tracker.launch.py`).

Example:
  ros2 launch dytrack_ros tracker.launch.py camera_topic:=/camera/color/image_raw namespace:=front \
      config:=/path/robot_tracker.yaml device:=cuda
Every node parameter is also a launch argument of the same name (`ros2 launch ... --show-args` lists them).
Only the ones given on the command line override the config file; the others keep the config file's values.
Without `ros2 launch` (e.g. the PyPI-wheel venv) start the node directly:
  python -m dytrack_ros --ros-args --params-file config/tracker.yaml -r image:=/camera/color/image_raw
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from dytrack_ros.ros.launch_params import (deprecated_arguments, deprecation_messages, node_parameter_overrides,
                                           parameter_arguments)

ARGUMENTS = [
    DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                          description="sensor_msgs/Image topic of the camera (its /compressed sub-topic "
                                      "is used when transport:=compressed)"),
    DeclareLaunchArgument("namespace", default_value="",
                          description="Namespace of the tracker node (one per camera)"),
    DeclareLaunchArgument("node_name", default_value="tracker_node", description="Name of the tracker node"),
    DeclareLaunchArgument("config", default_value=PathJoinSubstitution(
                              [FindPackageShare("dytrack_ros"), "config", "tracker.yaml"]),
                          description="Parameter file (ros__parameters YAML); parameter launch arguments "
                                      "that are given override its values"),
    DeclareLaunchArgument("log_level", default_value="info", description="Logging level of the node"),
]
# One argument per node parameter (same name, empty = not given), then the deprecated old names.
PARAMETER_ARGUMENTS = [
    DeclareLaunchArgument(arg.name, default_value=arg.default_value, description=arg.description,
                          choices=list(arg.choices) if arg.choices else None)
    for arg in (*parameter_arguments(), *deprecated_arguments())
]


def _tracker_node(context):
    """The node with parameters = [config file, the given parameter arguments]: later entries win, and
    arguments left empty are not passed at all, so they never override the config file."""
    given = dict(context.launch_configurations)
    overrides = node_parameter_overrides(given)
    parameters = [LaunchConfiguration("config")] + ([overrides] if overrides else [])
    node = Node(
        package="dytrack_ros", executable="tracker_node", name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=parameters,
        remappings=[("image", LaunchConfiguration("camera_topic")),
                    ("image/compressed", [LaunchConfiguration("camera_topic"), "/compressed"])],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
    )
    return [*(LogInfo(msg=m) for m in deprecation_messages(given)), node]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*ARGUMENTS, *PARAMETER_ARGUMENTS, OpaqueFunction(function=_tracker_node)])
