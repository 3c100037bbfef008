"""Hostile clients against the real tracker node in a child process: messages and service calls that
ended it or made it grow by gigabytes, checked by its exit code, its log, its diagnostics and the peak
resident set (VmHWM) the kernel reports for its process."""
from __future__ import annotations

import math
import signal
import struct
import time

import cv2
import numpy as np
from model_files import overflowing_model_file
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dytrack_ros.msg import TrackedTarget
from dytrack_ros.ros.client import CameraStream, ns_to_time

SEED = 20261130
MB = 1024 * 1024
# init boxes that used to end the node: widths/heights 1e-300, 1e200, 1e150, 1e6, a 1e9 box far off the image and
# an 8000 px box around a small image
HOSTILE_BOXES = [(10.0, 10.0, 1e-300, 1e-300), (10.0, 10.0, 1e200, 1e200), (10.0, 10.0, 1e150, 1e150),
                 (10.0, 10.0, 1e6, 1e6), (-5e8, -5e8, 1e9, 1e9), (-3840.0, -3880.0, 8000.0, 8000.0)]


def vm_hwm(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def textured(h: int, w: int, seed: int) -> np.ndarray:
    low = np.random.default_rng(seed).integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    return cv2.resize(low, (w, h), interpolation=cv2.INTER_NEAREST)


def jpeg_claiming(width: int, height: int, keep: int = 629) -> bytes:
    """A small real JPEG whose frame header claims ``width`` x ``height``, cut to ``keep`` bytes."""
    ok, buf = cv2.imencode(".jpg", textured(48, 64, 1))
    data = bytearray(buf.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data[:keep])


def test_hostile_jpeg_headers_and_init_boxes_never_grow_or_end_the_node(rig, tiny_dytrack_file):
    node = rig.start_node(tiny_dytrack_file, {"transport": "compressed"})
    c = rig.client(compressed=True)
    c.wait_for_tracker(timeout=60)
    good = textured(240, 320, 2)
    c.publish(good)
    assert c.init_when_ready((140, 100, 40, 40)).success
    for i in range(5):  # steady state with good frames first
        c.publish(textured(240, 320, 10 + i))
        time.sleep(0.05)
    base = vm_hwm(node.proc.pid)

    # a flood of 629-byte JPEGs whose headers claim 6000x6000, then one claiming 16000x16000, while tracking
    t = time.monotonic()
    stamps = []
    for i, (w, h) in enumerate([(6000, 6000)] * 20 + [(16000, 16000)]):
        stamp = (100 + i) * 1_000_000_000
        stamps.append(stamp)
        c.publish_raw(CompressedImage(header=Header(stamp=ns_to_time(stamp)), format="jpeg",
                                      data=jpeg_claiming(w, h)))
        time.sleep(0.03)
    # init on one of them (the frame with that stamp), then with each of HOSTILE_BOXES on a good frame
    r = c.init((10, 10, 20, 20), stamps[-1])
    assert not r.success and "exceeds the limit" in r.message, r.message
    c.publish(good)
    time.sleep(0.2)
    for box in HOSTILE_BOXES:
        r = c.init(box)
        assert not r.success and r.track_id == 0 and r.message and "\n" not in r.message, (box, r.message)
    assert node.alive()
    grown = (vm_hwm(node.proc.pid) - base) / MB
    assert grown < 150, f"node peak RSS grew {grown:.0f} MB"
    assert c.wait_until(lambda: c.latest_diagnostics(after=t) is not None, 5)
    assert c.wait_until(lambda: int(c.latest_diagnostics(after=time.monotonic() - 1.5)["bad inputs"]) >= 1 + 6, 5)
    assert c.wait_until(lambda: "exceeds the limit of 33177600 pixels" in node.output(), 5), node.output()[-2000:]
    # still tracking with good frames
    n = len(c.targets_since())
    c.publish(good)
    assert c.wait_until(lambda: len(c.targets_since(n)) >= 1, 5)


def _image(h: int, w: int, encoding: str, step: int, data: bytes, stamp_ns: int) -> Image:
    msg = Image()
    msg.header = Header(stamp=ns_to_time(stamp_ns))
    msg.height, msg.width, msg.encoding, msg.step = h, w, encoding, step
    msg.data = data
    return msg


def test_raw_images_with_huge_declared_sizes_are_refused_and_every_problem_is_logged(rig, tiny_dytrack_file):
    node = rig.start_node(tiny_dytrack_file, {"max_image_pixels": 640 * 480})
    c = rig.client()
    c.wait_for_tracker(timeout=60)
    base = vm_hwm(node.proc.pid)
    deadline = time.monotonic() + 10
    while "unsupported encoding" not in node.output() and time.monotonic() < deadline:
        # each kind of problem once, within one throttle period: every one must reach the log
        c.publish_raw(_image(10, 10, "16UC1", 20, bytes(200), 1))
        time.sleep(0.2)
    # the subscription keeps only the newest message (qos_depth 1): one at a time
    c.publish_raw(_image(480, 640, "rgb8", 1920, bytes(100), 2))  # data shorter than step*height
    time.sleep(0.5)
    c.publish_raw(_image(100000, 100000, "rgb8", 300000, bytes(10), 3))  # declares 30 GB
    for text in ("unsupported encoding", "shorter than step*height", "100000x100000 = 10000000000 pixels exceeds"):
        assert c.wait_until(lambda: text in node.output(), 5), (text, node.output()[-3000:])
    t = time.monotonic()
    c.publish_raw(_image(481, 640, "rgb8", 1920, bytes(1920 * 481), 4))  # just over the parameter
    assert c.wait_until(lambda: "640x481 = 307840 pixels exceeds the limit of 307200" in
                        (c.latest_diagnostics(after=t) or {}).get("last bad input", ""), 5)
    assert node.alive()
    assert (vm_hwm(node.proc.pid) - base) / MB < 50


def test_non_finite_network_output_is_never_published_and_diagnostics_say_error(rig, tmp_path):
    node = rig.start_node(overflowing_model_file(tmp_path), {"diagnostics_period": 0.5})
    c = rig.client()
    c.wait_for_tracker(timeout=60)
    frames = [textured(240, 320, 20 + i) for i in range(10)]
    cam = CameraStream(c, frames, rate=20.0, loop=True).start()
    try:
        assert c.init_when_ready((140, 100, 40, 40)).success
        assert c.wait_until(lambda: len(c.targets_since()) >= 5, 10)
        t = time.monotonic()
        assert c.wait_until(lambda: (c.latest_diagnostics(after=t) or {}).get("level") == "2", 5)
    finally:
        cam.stop()
    d = c.latest_diagnostics(after=t)
    assert "model error" in d["message"] and "non-finite" in d["message"], d
    assert int(d["model errors"]) >= 5
    for m in c.targets_since():
        values = (m.score, m.center_x, m.center_y, m.size_x, m.size_y)
        assert all(math.isfinite(v) for v in values), values
        assert m.status == TrackedTarget.STATUS_LOST and m.score == 0.0
        assert (m.center_x, m.center_y, m.size_x, m.size_y) == (160.0, 120.0, 40.0, 40.0)  # the init box
    assert node.alive()
    assert c.wait_until(lambda: "model error: the network gave a non-finite result" in node.output(), 5)


def test_rejected_parameters_end_startup_with_one_line(rig, tiny_dytrack_file):
    import torch

    cases = {"frame_buffer_size": 0, "cpu_threads": -1, "diagnostics_period": 0.0, "qos_depth": 0,
             "max_image_pixels": 0}
    if not torch.cuda.is_available():
        cases["device"] = "cuda"
    nodes = {name: rig.start_node(tiny_dytrack_file, {name: value}, name=name) for name, value in cases.items()}
    for name, node in nodes.items():
        rc = node.wait(90)
        lines = [ln for ln in node.output().splitlines() if ln.strip()]
        assert rc is not None and rc != 0, (name, lines)
        assert len(lines) == 1 and lines[0].startswith("tracker_node: error:"), (name, lines)
        assert (name if name != "device" else "no CUDA GPU") in lines[0], lines


def test_sigterm_while_tracking_is_not_a_bad_input(rig, tiny_dytrack_file):
    node = rig.start_node(tiny_dytrack_file)
    c = rig.client()
    c.wait_for_tracker(timeout=60)
    frames = [textured(240, 320, 40 + i) for i in range(10)]
    cam = CameraStream(c, frames, rate=60.0, loop=True).start()
    try:
        assert c.init_when_ready((140, 100, 40, 40)).success
        assert c.wait_until(lambda: len(c.targets_since()) >= 5, 10)
        node.proc.send_signal(signal.SIGTERM)
        rc = node.wait(15)
    finally:
        cam.stop()
    out = node.output()
    assert rc == 0, out[-3000:]
    assert "frame skipped" not in out and "RCLError" not in out and "Traceback" not in out, out[-3000:]
