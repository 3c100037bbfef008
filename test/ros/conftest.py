"""ROS 2 test harness: real rclpy, nodes in child processes, loopback-only discovery.

Environment (set before any rclpy.init, existing values win so CI can override):
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (ROS_LOCALHOST_ONLY is ignored since Kilted),
the shared-memory + loopback Fast DDS profile (config/fastdds_shm.xml), and logs in a
temporary folder. Every test gets its own ROS_DOMAIN_ID, so tests and parallel runs
never see each other's nodes.
"""
from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_shm.xml"))
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="dytrack_ros_test_logs_"))

pytest.importorskip("rclpy", reason="ROS 2 runtime not installed (run scripts/setup.sh)")
pytest.importorskip("dytrack_ros.msg", reason="dytrack_ros interfaces not built (run scripts/setup_ros.sh .venv)")

from dytrack_ros.ros.client import TrackerClient  # noqa: E402
from dytrack_ros.ros.launcher import NodeProcess, local_ros_env, ros_args  # noqa: E402

_DOMAINS = itertools.count()
TRAINED_MODEL = REPO / "models" / "dytrack_small.safetensors"


def pytest_collection_modifyitems(config, items):
    """Every test in this folder needs the ROS 2 runtime: marked ``ros``; one that takes the ``rig`` fixture
    starts node processes (~10 s each on 2 cores): also ``slow``. This hook sees the whole session."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.ros)
            if "rig" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.slow)


def _next_domain() -> int:
    # 110..209, spread by pid so concurrent pytest runs rarely collide
    return 110 + (os.getpid() * 17 + next(_DOMAINS)) % 100


@pytest.fixture
def domain_id() -> int:
    return _next_domain()


@pytest.fixture(scope="session")
def small_random_model(tmp_path_factory):
    """dytrack_small256 with random weights: slower than a 100 Hz camera on CPU (latest-frame test)."""
    from model_files import random_model_file

    return random_model_file(tmp_path_factory.mktemp("models"), "dytrack_small256", seed=2)


class RosRig:
    """A tracker node process plus a client in one test's domain; stopped at teardown."""

    def __init__(self, tmp_path: Path, domain_id: int) -> None:
        self.tmp_path, self.domain_id = tmp_path, domain_id
        self.env = local_ros_env(domain_id=domain_id)
        self.nodes: list[NodeProcess] = []
        self.clients: list[TrackerClient] = []

    def start_node(self, model: Path | str, params: dict | None = None, module: str = "dytrack_ros",
                   name: str = "tracker", **ros_kw) -> NodeProcess:
        p = {"model_path": str(model)} if model else {}
        p.update(params or {})
        node = NodeProcess(module, ros_args(p, **ros_kw), env=self.env,
                           log_path=self.tmp_path / f"{name}_{len(self.nodes)}.log", name=name).start()
        self.nodes.append(node)
        return node

    def client(self, **kw) -> TrackerClient:
        c = TrackerClient(domain_id=self.domain_id, name=f"test_client_{len(self.clients)}", **kw)
        self.clients.append(c)
        return c

    def close(self) -> None:
        for c in self.clients:
            c.close()
        for n in self.nodes:
            n.stop()


@pytest.fixture
def rig(tmp_path, domain_id):
    r = RosRig(tmp_path, domain_id)
    yield r
    r.close()


def moving_target_sequence(n: int = 60, size=(240, 320), box=(60, 90, 48, 40), velocity=(2.5, 0.8), seed: int = 3):
    """Textured target moving over a smooth textured background: (RGB frames, GT boxes x,y,w,h)."""
    h, w = size
    rng = np.random.default_rng(seed)
    low = rng.integers(40, 200, (h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    import cv2

    background = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    bx, by, bw, bh = box
    yy, xx = np.mgrid[0:bh, 0:bw]
    patch = np.zeros((bh, bw, 3), np.uint8)
    patch[..., 0] = np.where(((xx // 8) + (yy // 8)) % 2 == 0, 250, 20)
    patch[..., 1] = np.where(((xx // 8) + (yy // 8)) % 2 == 0, 30, 240)
    patch[..., 2] = 40
    frames, gt = [], []
    for t in range(n):
        x = int(round(bx + velocity[0] * t))
        y = int(round(by + velocity[1] * t + 6 * np.sin(t / 6)))
        x, y = min(max(x, 0), w - bw), min(max(y, 0), h - bh)
        f = background.copy()
        f[y:y + bh, x:x + bw] = patch
        frames.append(f)
        gt.append((x, y, bw, bh))
    return frames, np.asarray(gt, float)


@pytest.fixture(scope="session")
def sequence():
    return moving_target_sequence()


@pytest.fixture(scope="session")
def photo_sequence():
    """A synthetic sequence composed from real photos (easy preset), the distribution the shipped model was
    trained on: exact GT, 60 frames of 320x240, target always visible. In-process the shipped model reaches a
    mean IoU of about 0.85 on it, so the node test checks the ROS plumbing with a wide margin."""
    from dytrack_ros.data.synth import generate_sequence

    seq = generate_sequence(0, "easy", seed=5, frames=60, size=(320, 240))
    assert seq.visible.all()
    return seq.frames, np.asarray(seq.gt, float)


@pytest.fixture(scope="session")
def vision_msgs_prefix(tmp_path_factory):
    """The vision_msgs stand-in built into a temporary prefix (about a minute), importable in this process
    (sys.path) and, through :func:`vision_standin.vision_env`, in node processes."""
    import shutil
    import sys

    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    from vision_standin import PYTHON_DIR, build_vision_msgs

    prefix = build_vision_msgs(tmp_path_factory.mktemp("vision_msgs"))
    sys.path.insert(0, str(prefix / PYTHON_DIR))
    # rmw finds type support libraries by file name on the library path, which this process read at start:
    # loaded here by full path, later lookups by name find them loaded
    import ctypes

    for lib in sorted((prefix / "lib").glob("libvision_msgs__*.so")):
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
    return prefix
