"""The Fast DDS profile the package's nodes apply to themselves before ROS starts (no rclpy import).

A default Fast DDS participant loses most 640x480 frames from a camera driver in
another process (see ``config/fastdds_camera.xml`` for the measured causes). The
receiving side alone can avoid that: a participant that offers only UDP, with
large socket buffers, gets every frame from a default publisher. So the node
entry points (``python -m dytrack_ros``, ``lib/dytrack_ros/*``) call
:func:`apply_dds_profile` before ``rclpy.init``; the environment variable it
reads is what the launch file's ``dds_profile`` argument sets.

``DYTRACK_DDS_PROFILE``: unset or empty = the shipped ``fastdds_camera.xml``
unless ``FASTDDS_DEFAULT_PROFILES_FILE`` is already set (a user's own profile
wins); ``none`` = no profile from this package; a path = that profile, replacing
``FASTDDS_DEFAULT_PROFILES_FILE``. Other RMW implementations are left alone.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import MutableMapping

from ..paths import config_dir

ENV = "DYTRACK_DDS_PROFILE"
FASTDDS_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
NONE = "none"
CAMERA_PROFILE_NAME = "fastdds_camera.xml"
FASTDDS_RMWS = ("", "rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")


class DdsProfileError(ValueError):
    """``DYTRACK_DDS_PROFILE`` names a file that does not exist."""


def camera_profile_path() -> Path:
    """The shipped profile for camera input (UDP only, 4 MiB socket buffers)."""
    return config_dir() / CAMERA_PROFILE_NAME


def apply_dds_profile(env: MutableMapping[str, str] | None = None) -> Path | None:
    """Set ``FASTDDS_DEFAULT_PROFILES_FILE`` in ``env`` (default: this process) as described in the module
    docstring; returns the profile now in force from this package, or None. Must run before ``rclpy.init``:
    Fast DDS reads the variable when the first participant is created."""
    env = os.environ if env is None else env
    choice = env.get(ENV, "").strip()
    if choice.lower() == NONE:
        return None
    if env.get("RMW_IMPLEMENTATION", "") not in FASTDDS_RMWS:
        return None
    if choice:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise DdsProfileError(f"{ENV}={choice}: no such file (give a Fast DDS XML profile, or '{NONE}')")
        env[FASTDDS_ENV] = str(path.resolve())
        return path
    if env.get(FASTDDS_ENV):
        return None
    path = camera_profile_path()
    if not path.is_file():
        return None
    env[FASTDDS_ENV] = str(path.resolve())
    return path


__all__ = ["CAMERA_PROFILE_NAME", "DdsProfileError", "ENV", "FASTDDS_ENV", "NONE", "apply_dds_profile",
           "camera_profile_path"]
