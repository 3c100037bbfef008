"""Start ROS nodes of this package as child processes and stop them cleanly.

`ros2 launch` is not installable from PyPI, so the demo, the benchmark and the
tests start nodes like this: ``[sys.executable, -m, module, --ros-args, ...]``
with the same interpreter (so the ROS wheels' library path set-up applies),
then SIGINT, wait, kill only as a fallback. On a real ROS 2 install use
``launch/tracker.launch.py`` instead.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping

from ..paths import config_dir


def shm_profile_path() -> Path:
    """The shared-memory + loopback Fast DDS profile shipped in config/."""
    return config_dir() / "fastdds_shm.xml"


def local_ros_env(domain_id: int | None = None, shm_profile: bool = True,
                  base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for nodes that should only talk on this machine.

    LOCALHOST discovery (ROS_LOCALHOST_ONLY is ignored since Kilted), an optional
    domain id, and the shared-memory Fast DDS profile. Existing settings win.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    if shm_profile and shm_profile_path().is_file():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(shm_profile_path().resolve()))
    return env


def ros_args(params: Mapping[str, object] | None = None, remaps: Mapping[str, str] | None = None,
             params_file: str | Path | None = None, node_name: str | None = None,
             namespace: str | None = None, log_level: str | None = None) -> list[str]:
    """``--ros-args`` list: params file first, then ``-p`` overrides (which win), remaps."""
    args = ["--ros-args"]
    if params_file:
        args += ["--params-file", str(params_file)]
    for key, value in (params or {}).items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, (list, tuple)):
            value = "[" + ",".join(str(v) for v in value) + "]"
        args += ["-p", f"{key}:={value}"]
    if node_name:
        args += ["-r", f"__node:={node_name}"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    if log_level:
        args += ["--log-level", log_level]
    return args


class NodeProcess:
    """One node in a child process; output goes to ``log_path`` (or is discarded)."""

    def __init__(self, module: str, args: list[str], env: Mapping[str, str] | None = None,
                 log_path: str | Path | None = None, name: str | None = None) -> None:
        self.module, self.args = module, list(args)
        self.env = dict(env) if env is not None else local_ros_env()
        self.log_path = Path(log_path) if log_path else None
        self.name = name or module.rsplit(".", 1)[-1]
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]

    def start(self) -> "NodeProcess":
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "wb")
        out = self._log if self._log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.proc.wait(timeout) if self.proc else None
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (clean ROS shutdown), then SIGKILL after ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def output(self) -> str:
        if self.log_path and self.log_path.is_file():
            return self.log_path.read_text(errors="replace")
        return ""

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for(predicate, timeout: float, period: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return bool(predicate())
