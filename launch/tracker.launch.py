"""Launch the dytrack_ros tracker node (real ROS 2 installs: `ros2 launch dytrack_ros tracker.launch.py`).

Example:
  ros2 launch dytrack_ros tracker.launch.py camera_topic:=/camera/color/image_raw namespace:=front
Without `ros2 launch` (e.g. the PyPI-wheel venv) start the node directly:
  python -m dytrack_ros --ros-args --params-file config/tracker.yaml -r image:=/camera/color/image_raw
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    DeclareLaunchArgument("camera_topic", default_value="/camera/image_raw",
                          description="sensor_msgs/Image topic of the camera (its /compressed sub-topic "
                                      "is used when transport:=compressed)"),
    DeclareLaunchArgument("namespace", default_value="",
                          description="Namespace of the tracker node (one per camera)"),
    DeclareLaunchArgument("node_name", default_value="tracker_node", description="Name of the tracker node"),
    DeclareLaunchArgument("config", default_value=PathJoinSubstitution(
                              [FindPackageShare("dytrack_ros"), "config", "tracker.yaml"]),
                          description="Parameter file (ros__parameters YAML)"),
    DeclareLaunchArgument("model", default_value="",
                          description="Model file (.safetensors / .onnx); empty: the config file's model_path "
                                      "(default: the shipped models/dytrack_small.safetensors)"),
    DeclareLaunchArgument("backend", default_value="auto", choices=["auto", "torch", "onnxruntime"],
                          description="Inference backend (auto: from the model file suffix)"),
    DeclareLaunchArgument("device", default_value="cpu", description="cpu, cuda or cuda:N"),
    DeclareLaunchArgument("transport", default_value="raw", choices=["raw", "compressed"],
                          description="Image transport of the camera topic"),
    DeclareLaunchArgument("debug_image", default_value="false", choices=["true", "false"],
                          description="Always publish ~/debug_image (otherwise only while subscribed)"),
    DeclareLaunchArgument("log_level", default_value="info", description="Logging level of the node"),
]


def _node(with_model: bool) -> Node:
    params = [LaunchConfiguration("config"),
              {"backend": LaunchConfiguration("backend"), "device": LaunchConfiguration("device"),
               "transport": LaunchConfiguration("transport"),
               "publish_debug_image": LaunchConfiguration("debug_image")}]
    if with_model:
        params.append({"model_path": LaunchConfiguration("model")})
    # two alternative nodes: with model:=... the launch argument overrides the config file
    model_given = PythonExpression(["'", LaunchConfiguration("model"), "' != ''"])
    cond = IfCondition(model_given) if with_model else UnlessCondition(model_given)
    return Node(
        package="dytrack_ros", executable="tracker_node", name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=params,
        remappings=[("image", LaunchConfiguration("camera_topic")),
                    ("image/compressed", [LaunchConfiguration("camera_topic"), "/compressed"])],
        ros_arguments=["--log-level", LaunchConfiguration("log_level")],
        condition=cond,
    )


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*ARGUMENTS, _node(with_model=True), _node(with_model=False)])
