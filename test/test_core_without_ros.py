"""The core and the CLI import without ROS: `pip install .` without ROS 2 must give a working tracker."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE = ["dytrack_ros", "dytrack_ros.tracker", "dytrack_ros.backends", "dytrack_ros.model", "dytrack_ros.model_io",
        "dytrack_ros.eval", "dytrack_ros.data", "dytrack_ros.train", "dytrack_ros.cli"]
# Anything the ROS layer brings in: rclpy itself, our node code and the generated interfaces.
ROS_PREFIXES = ("rclpy", "dytrack_ros.ros", "dytrack_ros.msg", "dytrack_ros.srv")

# The named packages, then every other core module (a package __init__ need not import its submodules;
# pkgutil.walk_packages would import the ROS packages to look inside them, so the walk is by hand).
PROBE = f"""
import importlib, json, pkgutil, sys
ros = {ROS_PREFIXES!r}
for name in {CORE!r}:
    importlib.import_module(name)
todo = ["dytrack_ros"]
while todo:
    package = importlib.import_module(todo.pop())
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if any(info.name == p or info.name.startswith(p + ".") for p in ros) or info.name.endswith(".__main__"):
            continue
        if info.ispkg:
            todo.append(info.name)
        else:
            importlib.import_module(info.name)
import dytrack_ros.cli
dytrack_ros.cli.build_parser()
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_core_imports() -> list[str]:
    # A fresh interpreter: this pytest process may already hold rclpy from the ROS tests.
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _is_ros(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in ROS_PREFIXES)


@pytest.mark.slow  # a fresh interpreter imports torch, OpenCV, ONNX Runtime and every module
def test_core_and_cli_parser_never_import_rclpy():
    modules = _modules_after_core_imports()
    assert "dytrack_ros.cli.track_cmd" in modules  # the parser really built the subcommands
    assert "dytrack_ros.eval.metrics" in modules  # and the walk reached modules no __init__ imports
    assert [m for m in modules if _is_ros(m)] == []  # names rclpy first when it is there
    assert "rclpy" not in modules


def test_ros_module_filter_matches_the_ros_layer_only():
    assert _is_ros("rclpy") and _is_ros("rclpy.node") and _is_ros("dytrack_ros.ros.tracker_node")
    assert _is_ros("dytrack_ros.msg._tracked_target")
    assert not _is_ros("dytrack_ros.rosbag_like") and not _is_ros("dytrack_ros.tracker")
