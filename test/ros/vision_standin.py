"""Build the vision_msgs stand-in (test/ros/vision_msgs_standin: the Kilted 2-D detection messages) into a
temporary prefix with the same cmake recipe scripts/setup_ros.sh uses for this package's interfaces, and the
environment that makes it importable in this process and in child processes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "vision_msgs_standin"
VENV = Path(sys.prefix)
PYTHON_DIR = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def build_vision_msgs(root: Path) -> Path:
    """Configure, build and install the stand-in under ``root``; returns the install prefix."""
    src, build, prefix = root / "src", root / "build", root / "install"
    shutil.copytree(SOURCE, src)
    env = {**os.environ, "AMENT_PREFIX_PATH": os.pathsep.join(p for p in (str(VENV), os.environ.get(
        "AMENT_PREFIX_PATH")) if p)}
    log = root / "build.log"
    steps = [["cmake", "-S", str(src), "-B", str(build), "-G", "Unix Makefiles", f"-DCMAKE_INSTALL_PREFIX={prefix}",
              f"-DCMAKE_PREFIX_PATH={VENV}", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
              f"-DCMAKE_INSTALL_RPATH={prefix / 'lib'}"],
             ["cmake", "--build", str(build), "-j2"], ["cmake", "--install", str(build)]]
    with open(log, "wb") as out:
        for cmd in steps:
            if subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900).returncode:
                raise RuntimeError(f"{' '.join(cmd[:2])} failed:\n{log.read_text()[-3000:]}")
    return prefix


def vision_env(prefix: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) with the stand-in's Python path, libraries and ament index first."""
    env = dict(os.environ if base is None else base)

    def first(name: str, value: str) -> None:
        env[name] = os.pathsep.join(p for p in (value, env.get(name)) if p)

    first("PYTHONPATH", str(prefix / PYTHON_DIR))
    first("LD_LIBRARY_PATH", str(prefix / "lib"))
    first("AMENT_PREFIX_PATH", str(prefix))
    return env
