"""The node's outputs for viewers and other nodes, with a real node in its own process: the debug image while
idle (rate-limited) and as JPEG, camera_info passthrough, initialisation from two rqt_image_view clicks, and,
with the vision_msgs stand-in built in the test environment, ~/detections and ~/init_detections."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from geometry_msgs.msg import Point
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage

from dytrack_ros.msg import TrackedTarget
from dytrack_ros.ros.launcher import NodeProcess, ros_args, wait_for

pytestmark = pytest.mark.slow  # node processes

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class Feed:
    """Publishes the sequence's frames (and a camera_info per frame) at ``rate`` Hz until stopped."""

    def __init__(self, client, frames, rate: float = 15.0, camera_info=None) -> None:
        self.client, self.frames, self.rate, self.info_pub = client, frames, rate, camera_info
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            header = self.client.publish(self.frames[k % len(self.frames)])
            if self.info_pub is not None:
                h, w = self.frames[0].shape[:2]
                self.info_pub.publish(CameraInfo(header=header, width=w, height=h, distortion_model="plumb_bob"))
            k += 1
            time.sleep(1.0 / self.rate)

    def __enter__(self) -> "Feed":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2.0)


def _store(node, msg_type, topic, qos=RELIABLE) -> list:
    got: list = []
    node.create_subscription(msg_type, topic, lambda m: got.append((time.monotonic(), m)), qos)
    return got


def test_idle_debug_image_jpeg_camera_info_and_click_init(rig, tiny_dytrack_file, sequence):
    frames, gt = sequence
    node = rig.start_node(tiny_dytrack_file, {"debug_image_idle_rate": 4.0, "publish_camera_info": True,
                                              "cpu_threads": 1})
    c = rig.client(debug_image=True)
    jpegs = _store(c.node, CompressedImage, "/tracker_node/debug_image/compressed")
    infos = _store(c.node, CameraInfo, "/tracker_node/camera_info")
    info_pub = c.node.create_publisher(CameraInfo, "/camera_info", RELIABLE)
    clicks = c.node.create_publisher(Point, "/tracker_node/debug_image_mouse_left", RELIABLE)
    try:
        c.wait_for_tracker(timeout=90)
    except Exception:
        pytest.fail(f"node did not come up:\n{node.output()}")
    with Feed(c, frames, rate=15.0, camera_info=info_pub):
        assert wait_for(lambda: len(c.debug_images) >= 2, 15), node.output()
        # idle: the latest frame with the hint, at most debug_image_idle_rate per second, and no target
        n0, t0 = len(c.debug_images), time.monotonic()
        time.sleep(3.0)
        idle_rate = (len(c.debug_images) - n0) / (time.monotonic() - t0)
        assert 2.0 <= idle_rate <= 5.0, idle_rate
        assert not c.targets
        img = c.debug_images[-1].msg
        assert (img.width, img.height) == (frames[0].shape[1], frames[0].shape[0])
        assert wait_for(lambda: jpegs and infos, 5)
        jpeg = cv2.imdecode(np.frombuffer(bytes(jpegs[-1][1].data), np.uint8), cv2.IMREAD_COLOR)
        assert jpeg.shape == frames[0].shape and "jpeg" in jpegs[-1][1].format
        assert infos[-1][1].width == frames[0].shape[1] and infos[-1][1].distortion_model == "plumb_bob"

        # two clicks (rqt_image_view: pixels of the viewed debug image) = the box corners
        x, y, w, h = (float(v) for v in gt[0])
        clicks.publish(Point(x=x + w, y=y + h, z=0.0))
        time.sleep(1.0)
        assert not c.targets, "one click must not initialise"
        clicks.publish(Point(x=x, y=y, z=0.0))
        assert wait_for(lambda: any(r.msg.track_id == 1 for r in c.targets), 15), node.output()
        assert c.targets[-1].msg.status in (TrackedTarget.STATUS_TRACKING, TrackedTarget.STATUS_UNCERTAIN)
    assert f"click init {(round(x), round(y), round(w), round(h))}" in node.output()


def _detection(vm, box, score, class_id, det_id):
    x, y, w, h = box
    d = vm.Detection2D()
    d.id = det_id
    d.bbox.center.position.x, d.bbox.center.position.y = x + w / 2, y + h / 2
    d.bbox.size_x, d.bbox.size_y = float(w), float(h)
    hyp = vm.ObjectHypothesisWithPose()
    hyp.hypothesis.class_id, hyp.hypothesis.score = class_id, score
    d.results = [hyp]
    return d


def test_detections_out_and_init_from_a_detector(rig, tiny_dytrack_file, sequence, vision_msgs_prefix, tmp_path):
    import vision_msgs.msg as vm
    from vision_standin import vision_env

    frames, gt = sequence
    params = {"model_path": str(tiny_dytrack_file), "init_class_ids": "person,dog", "init_min_score": 0.4,
              "cpu_threads": 1}
    node = NodeProcess("dytrack_ros", ros_args(params), env=vision_env(vision_msgs_prefix, rig.env),
                       log_path=tmp_path / "node.log", name="tracker").start()
    rig.nodes.append(node)
    c = rig.client()
    detections = _store(c.node, vm.Detection2DArray, "/tracker_node/detections")
    detector = c.node.create_publisher(vm.Detection2DArray, "/tracker_node/init_detections", RELIABLE)
    try:
        c.wait_for_tracker(timeout=90)
    except Exception:
        pytest.fail(f"node did not come up:\n{node.output()}")
    box = tuple(float(v) for v in gt[0])
    with Feed(c, frames, rate=15.0):
        time.sleep(1.0)
        arr = vm.Detection2DArray()
        arr.detections = [_detection(vm, (10, 10, 30, 30), 0.3, "person", "weak"),  # below init_min_score
                          _detection(vm, (150, 20, 40, 40), 0.99, "car", "other-class"),  # not in init_class_ids
                          _detection(vm, box, 0.8, "person", "wanted")]
        detector.publish(arr)
        detector.publish(arr)  # at once: arrives before the first track's ~/target and must not re-initialise
        assert wait_for(lambda: any(r.msg.track_id == 1 for r in c.targets), 15), node.output()
        assert wait_for(lambda: any(m.detections for _, m in detections), 10), node.output()
        # while tracking, further detections do not re-initialise
        detector.publish(arr)
        time.sleep(1.0)
        assert max(r.msg.track_id for r in c.targets) == 1
        c.reset()
        assert wait_for(lambda: detections and not detections[-1][1].detections, 10)
    assert "init from detection 'wanted' (person, score 0.80)" in node.output()
    target = next(r.msg for r in c.targets if r.msg.track_id == 1)
    out = next(m for _, m in detections if m.header.stamp == target.header.stamp)  # the same frame's result
    det = out.detections[0]
    assert len(out.detections) == 1 and det.id == "1" and len(det.results) == 1
    assert det.results[0].hypothesis.score == pytest.approx(target.score, abs=1e-6)
    assert (det.bbox.center.position.x, det.bbox.center.position.y, det.bbox.size_x, det.bbox.size_y) == \
        pytest.approx((target.center_x, target.center_y, target.size_x, target.size_y), abs=1e-4)
    assert out.header.frame_id == "camera_optical_frame"


def test_node_runs_without_vision_msgs(rig, tiny_dytrack_file):
    """vision_msgs is optional: without it there is no ~/detections topic and the node still serves."""
    found = subprocess.run([sys.executable, "-c", "import vision_msgs.msg"], env=rig.env, capture_output=True,
                           timeout=120).returncode == 0
    if found:
        pytest.skip("vision_msgs is importable in the node's environment (installed ROS package): the node "
                    "offers ~/detections there, so its absence cannot be checked")
    node = rig.start_node(tiny_dytrack_file, {"cpu_threads": 1})
    c = rig.client()
    try:
        c.wait_for_tracker(timeout=90)
    except Exception:
        pytest.fail(f"node did not come up:\n{node.output()}")
    names = dict(c.node.get_topic_names_and_types())
    assert "/tracker_node/detections" not in names and "/tracker_node/init_detections" not in names
    assert "/tracker_node/debug_image/compressed" in names


def test_init_detections_while_lost_only_when_enabled(rig, tiny_dytrack_file, sequence, vision_msgs_prefix,
                                                      tmp_path):
    """Every frame below lost_threshold (1.0) makes the target lost at once; a detection then starts a new track
    only while init_detections_while_lost is true."""
    import vision_msgs.msg as vm
    from vision_standin import vision_env

    frames, gt = sequence
    params = {"model_path": str(tiny_dytrack_file), "lost_threshold": 1.0, "uncertain_threshold": 1.0,
              "lost_after_frames": 1, "init_min_score": 0.0, "cpu_threads": 1}
    node = NodeProcess("dytrack_ros", ros_args(params), env=vision_env(vision_msgs_prefix, rig.env),
                       log_path=tmp_path / "node.log", name="tracker").start()
    rig.nodes.append(node)
    c = rig.client()
    detector = c.node.create_publisher(vm.Detection2DArray, "/tracker_node/init_detections", RELIABLE)
    try:
        c.wait_for_tracker(timeout=90)
    except Exception:
        pytest.fail(f"node did not come up:\n{node.output()}")
    arr = vm.Detection2DArray()
    arr.detections = [_detection(vm, tuple(float(v) for v in gt[0]), 0.9, "person", "again")]
    lost = (TrackedTarget.STATUS_LOST, TrackedTarget.STATUS_SEARCHING)
    with Feed(c, frames, rate=15.0):
        time.sleep(1.0)
        detector.publish(arr)  # idle: first track
        assert wait_for(lambda: any(r.msg.track_id == 1 for r in c.targets), 15), node.output()
        assert wait_for(lambda: c.targets[-1].msg.status in lost, 15), node.output()
        detector.publish(arr)  # lost, but not enabled
        time.sleep(1.5)
        assert max(r.msg.track_id for r in c.targets) == 1
        assert c.set_parameters({"init_detections_while_lost": True})[0][0]
        detector.publish(arr)
        assert wait_for(lambda: any(r.msg.track_id == 2 for r in c.targets), 15), node.output()
