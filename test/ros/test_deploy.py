"""What a ROS 2 user meets besides the node itself: the DDS profile the entry points apply, the launch file's
non-parameter arguments (log levels, DDS profile, RViz), the RViz config and package.xml.

`ros2 launch` cannot run in the PyPI venv, so the launch file is checked statically (ast); what it hands to the
node (log level, DDS profile) is checked against the real rclpy / Fast DDS in separate processes.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dytrack_ros.ros import dds_profile
from dytrack_ros.ros.dds_profile import DdsProfileError, apply_dds_profile, camera_profile_path
from dytrack_ros.ros.launch_params import LOG_LEVELS

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "tracker.launch.py"


# ------------------------------------------------------------------ DDS profile of the entry points
def test_camera_profile_is_applied_when_nothing_is_set():
    env: dict[str, str] = {}
    assert apply_dds_profile(env) == camera_profile_path()
    assert env[dds_profile.FASTDDS_ENV] == str(camera_profile_path().resolve())
    text = camera_profile_path().read_text()
    assert "<type>UDPv4</type>" in text and "<type>SHM</type>" not in text and "4194304" in text


def test_a_users_own_profile_and_none_are_left_alone(tmp_path):
    env = {dds_profile.FASTDDS_ENV: "/robot/profile.xml"}
    assert apply_dds_profile(env) is None and env[dds_profile.FASTDDS_ENV] == "/robot/profile.xml"
    env = {dds_profile.ENV: "none"}
    assert apply_dds_profile(env) is None and dds_profile.FASTDDS_ENV not in env
    env = {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}
    assert apply_dds_profile(env) is None and dds_profile.FASTDDS_ENV not in env


def test_an_explicit_profile_replaces_the_environments_and_a_missing_one_is_refused(tmp_path):
    mine = tmp_path / "mine.xml"
    mine.write_text("<dds/>")
    env = {dds_profile.ENV: str(mine), dds_profile.FASTDDS_ENV: "/robot/profile.xml"}
    assert apply_dds_profile(env) == mine and env[dds_profile.FASTDDS_ENV] == str(mine.resolve())
    with pytest.raises(DdsProfileError, match="no such file"):
        apply_dds_profile({dds_profile.ENV: str(tmp_path / "missing.xml")})


def test_the_node_entry_point_ends_a_missing_profile_with_one_line(tmp_path):
    env = {**os.environ, dds_profile.ENV: str(tmp_path / "missing.xml")}
    out = subprocess.run([sys.executable, "-m", "dytrack_ros"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out
    assert "no such file" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_modules_the_launch_file_imports_load_neither_torch_nor_rclpy():
    code = ("import sys, dytrack_ros.ros.dds_profile, dytrack_ros.ros.launch_params; "
            "print(sorted(m for m in ('torch', 'rclpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout


PUBLISHER = textwrap.dedent("""
    import sys, time, numpy as np, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("camera")
    reliability = ReliabilityPolicy.RELIABLE if sys.argv[1] == "reliable" else ReliabilityPolicy.BEST_EFFORT
    pub = node.create_publisher(Image, "image", QoSProfile(depth=10, reliability=reliability))
    img = Image(height=480, width=640, encoding="rgb8", step=1920)
    img.data = np.random.default_rng(0).integers(0, 255, 640 * 480 * 3, dtype=np.uint8).tobytes()
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    t0 = time.monotonic()
    for k in range(90):
        img.header.frame_id = str(k)
        pub.publish(img)
        time.sleep(max(0.0, t0 + (k + 1) / 30.0 - time.monotonic()))
    time.sleep(1.0)
""")
SUBSCRIBER = textwrap.dedent("""
    import time, rclpy
    from dytrack_ros.ros.dds_profile import apply_dds_profile
    apply_dds_profile()  # what python -m dytrack_ros and lib/dytrack_ros/tracker_node do first
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node("tracker_input")
    got = set()
    node.create_subscription(Image, "image", lambda m: got.add(m.header.frame_id), qos_profile_sensor_data)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 12 and len(got) < 90:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(len(got))
""")


@pytest.mark.slow  # two ROS processes, 3 s of 640x480 frames
@pytest.mark.parametrize("publisher_reliability", ["reliable", "best_effort"])
def test_frames_from_a_default_publisher_arrive_whole_with_the_camera_profile(publisher_reliability, domain_id):
    """A camera driver in its own process with Fast DDS defaults (no profile) and the tracker's best-effort
    input with only the entry point's profile: at least 90 % of 90 frames of 640x480 rgb8 at 30 Hz arrive
    (Fast DDS defaults on both sides: about 3 %). Both use ROS's default discovery range (SUBNET): under
    LOCALHOST rmw_fastrtps sets the transports itself and the profile's do not apply."""
    base = {k: v for k, v in os.environ.items() if k not in (dds_profile.FASTDDS_ENV, dds_profile.ENV)}
    base.update(ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET")
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], env=base, stdout=subprocess.PIPE, text=True)
    pub = subprocess.run([sys.executable, "-c", PUBLISHER, publisher_reliability], env=base, timeout=120,
                         capture_output=True, text=True)
    out, _ = sub.communicate(timeout=60)
    assert pub.returncode == 0, pub.stderr
    assert int(out.strip()) >= 81, f"{out.strip()} of 90 frames arrived"


# ------------------------------------------------------------------ launch file
def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text())


def _declared(tree: ast.Module) -> dict[str, dict[str, ast.expr]]:
    out = {}
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", "") == "DeclareLaunchArgument"):
        if isinstance(call.args[0], ast.Constant):
            out[call.args[0].value] = {k.arg: k.value for k in call.keywords}
    return out


def test_log_level_argument_offers_exactly_what_rclpy_accepts():
    kw = _declared(_launch_tree())["log_level"]
    assert ast.unparse(kw["choices"]) == "list(LOG_LEVELS)"
    assert ast.literal_eval(kw["default_value"]) in LOG_LEVELS
    code = textwrap.dedent("""
        import sys, rclpy
        ok = []
        for level in sys.argv[1:]:
            try:
                rclpy.init(args=["node", "--ros-args", "--log-level", level])
                rclpy.shutdown()
                ok.append(level)
            except Exception:
                pass
        print(" ".join(ok))
    """)
    out = subprocess.run([sys.executable, "-c", code, *LOG_LEVELS, "verbose", "trace"], capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.split() == list(LOG_LEVELS)


def test_launch_file_never_evaluates_argument_text():
    text = LAUNCH_FILE.read_text()
    for evaluating in ("PythonExpression", "eval(", "exec(", "literal_eval"):
        assert evaluating not in text, evaluating


def test_dds_profile_and_rviz_arguments_reach_the_node_and_rviz():
    tree = _launch_tree()
    text = LAUNCH_FILE.read_text()
    declared = _declared(tree)
    assert ast.literal_eval(declared["dds_profile"]["default_value"]) == ""
    assert ast.literal_eval(declared["rviz"]["default_value"]) == "false"
    assert "env = {DDS_PROFILE_ENV: given[\"dds_profile\"]} if given.get(\"dds_profile\") else {}" in text
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "Node"]
    tracker = next(n for n in nodes if any(k.arg == "executable" and ast.literal_eval(k.value) == "tracker_node"
                                           for k in n.keywords))
    assert "additional_env" in {k.arg for k in tracker.keywords}
    rviz = next(n for n in nodes if any(k.arg == "executable" and ast.literal_eval(k.value) == "rviz2"
                                        for k in n.keywords))
    assert '"rviz", "tracker.rviz"' in text and "remappings" in {k.arg for k in rviz.keywords}


def test_rviz_config_shows_the_debug_image():
    config = yaml.safe_load((REPO / "rviz" / "tracker.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    image = next(d for d in displays if d["Class"] == "rviz_default_plugins/Image")
    assert image["Enabled"] and image["Topic"]["Value"] == "/tracker_node/debug_image"
    assert "/tracker_node/debug_image" in LAUNCH_FILE.read_text()  # the launch file remaps it to the node's


# ------------------------------------------------------------------ package.xml
def test_package_xml_is_valid_and_declares_what_users_need():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    pkg = catkin_pkg.parse_package(str(REPO / "package.xml"))
    pkg.validate()
    execs = {d.name for d in pkg.exec_depends}
    assert {"ros2launch", "launch", "launch_ros", "python3-torch", "python3-tqdm", "python3-matplotlib",
            "python3-numpy", "python3-opencv", "python3-yaml", "ament_index_python", "geometry_msgs",
            "lifecycle_msgs", "sensor_msgs"} <= execs
    assert "ament_cmake_pytest" in {d.name for d in pkg.test_depends}
    readme = (REPO / "README.md").read_text()
    assert "no rosdep key for torch" not in readme.lower()


def test_camera_info_topic_defaults_to_the_cameras_namespace():
    tree = _launch_tree()
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_sibling")
    scope: dict = {}
    exec(compile(ast.Module([fn], []), str(LAUNCH_FILE), "exec"), scope)
    sibling = scope["_sibling"]
    assert sibling("/camera/color/image_raw", "camera_info") == "/camera/color/camera_info"
    assert sibling("/image_raw", "camera_info") == "/camera_info"
    assert sibling("cam/image", "camera_info") == "cam/camera_info"
    assert '("camera_info", camera_info)' in LAUNCH_FILE.read_text()


def test_readme_deploy_section_describes_every_launch_argument():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Deploy on a robot"):]
    section = section[:section.index("\n## ", 1)]
    for name in _declared(_launch_tree()):
        assert f"| `{name}` |" in section, name
    assert "| every parameter |" in section
    for needed in ("colcon build", "rosdep install", "ros2 launch dytrack_ros tracker.launch.py", "rviz:=true",
                   "ros2 lifecycle set", "_mouse_left", "init_detections", "~/detections"):
        assert needed in section, needed
