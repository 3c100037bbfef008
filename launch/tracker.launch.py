"""Launch the dytrack_ros tracker node (real ROS 2 installs: `ros2 launch dytrack_ros tracker.launch.py`).

Example:
  ros2 launch dytrack_ros tracker.launch.py camera_topic:=/camera/color/image_raw namespace:=front \
      config:=/path/robot_tracker.yaml device:=cuda
Every node parameter is also a launch argument of the same name (`ros2 launch ... --show-args` lists them).
Only the ones given on the command line override the config file; the others keep the config file's values.
Without `ros2 launch` (e.g. the PyPI-wheel venv) start the node directly:
  python -m dytrack_ros --ros-args --params-file config/tracker.yaml -r image:=/camera/color/image_raw
No argument text is ever evaluated as Python: paths with quotes or spaces stay plain strings.
"""
import os

from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from dytrack_ros.ros.dds_profile import ENV as DDS_PROFILE_ENV
from dytrack_ros.ros.launch_params import (
    BOOL_TEXTS,
    LOG_LEVELS,
    deprecated_arguments,
    deprecation_messages,
    node_parameter_overrides,
    parameter_arguments,
)
from launch import LaunchDescription

ARGUMENTS = [
    DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                          description="sensor_msgs/Image topic of the camera (its /compressed sub-topic "
                                      "is used when transport:=compressed)"),
    DeclareLaunchArgument("camera_info_topic", default_value="",
                          description="sensor_msgs/CameraInfo topic of the camera, republished on ~/camera_info "
                                      "when publish_camera_info:=true. Empty: camera_info next to camera_topic"),
    DeclareLaunchArgument("namespace", default_value="",
                          description="Namespace of the tracker node (one per camera)"),
    DeclareLaunchArgument("node_name", default_value="tracker_node", description="Name of the tracker node"),
    DeclareLaunchArgument("config", default_value=PathJoinSubstitution(
                              [FindPackageShare("dytrack_ros"), "config", "tracker.yaml"]),
                          description="Parameter file (ros__parameters YAML); parameter launch arguments "
                                      "that are given override its values"),
    DeclareLaunchArgument("log_level", default_value="info", choices=list(LOG_LEVELS),
                          description="Logging level of the node"),
    DeclareLaunchArgument("dds_profile", default_value="",
                          description="Fast DDS XML profile of the node's participant. Empty: the shipped "
                                      "config/fastdds_camera.xml (UDP with 4 MiB socket buffers, so camera frames "
                                      "from a default publisher arrive whole) unless FASTDDS_DEFAULT_PROFILES_FILE "
                                      "is set; 'none': Fast DDS defaults; else the path of a profile"),
    DeclareLaunchArgument("rviz", default_value="false", choices=list(BOOL_TEXTS),
                          description="Also start rviz2 with rviz/tracker.rviz (annotated debug image), if rviz2 "
                                      "is installed"),
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
    env = {DDS_PROFILE_ENV: given["dds_profile"]} if given.get("dds_profile") else {}
    camera_info = given.get("camera_info_topic") or _sibling(given.get("camera_topic", "/camera/image_raw"),
                                                             "camera_info")
    node = Node(
        package="dytrack_ros", executable="tracker_node", name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=parameters,
        remappings=[("image", LaunchConfiguration("camera_topic")),
                    ("image/compressed", [LaunchConfiguration("camera_topic"), "/compressed"]),
                    ("camera_info", camera_info)],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        additional_env=env,
    )
    return [*(LogInfo(msg=m) for m in deprecation_messages(given)), node, *_rviz(given)]


def _sibling(topic: str, name: str) -> str:
    """``name`` in the namespace of ``topic``: /camera/color/image_raw -> /camera/color/camera_info."""
    head = topic.rstrip("/").rsplit("/", 1)[0] if "/" in topic.strip("/") else ""
    return f"{head}/{name}" if topic.startswith("/") or head else name


def _rviz(given) -> list:
    """rviz2 with the shipped display config when rviz:=true; a message instead where rviz2 is missing."""
    if given.get("rviz") != "true":
        return []
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return [LogInfo(msg="rviz:=true but rviz2 is not installed (apt install ros-$ROS_DISTRO-rviz2)")]
    config = os.path.join(get_package_share_directory("dytrack_ros"), "rviz", "tracker.rviz")
    namespace = given.get("namespace", "").strip("/")
    tracker = "/" + "/".join(p for p in (namespace, given.get("node_name", "tracker_node").strip("/")) if p)
    return [Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", config], output="screen",
                 remappings=[("/tracker_node/debug_image", f"{tracker}/debug_image")])]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*ARGUMENTS, *PARAMETER_ARGUMENTS, OpaqueFunction(function=_tracker_node)])
