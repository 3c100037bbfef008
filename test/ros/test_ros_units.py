"""In-process parts of the ROS layer: image conversion, frame buffer, health rules, parameter checks."""
from __future__ import annotations

import re
import threading

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from dytrack_ros.config import ConfigError, TrackerConfig
from dytrack_ros.ros import diagnostics as diag
from dytrack_ros.ros.frame_buffer import Frame, FrameBuffer
from dytrack_ros.ros.image_conversion import (
    ImageConversionError,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_compressed,
    rgb_to_image,
)
from dytrack_ros.ros.parameters import PARAMS, descriptor_for, tracker_config_with

RGB = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


def make(encoding: str, arr: np.ndarray, pad: int = 0) -> Image:
    h, w = arr.shape[:2]
    rows = arr.reshape(h, -1)
    data = np.zeros((h, rows.shape[1] + pad), np.uint8)
    data[:, : rows.shape[1]] = rows
    m = Image(height=h, width=w, encoding=encoding, step=rows.shape[1] + pad)
    m.data = data.tobytes()
    return m


@pytest.mark.parametrize("pad", [0, 5])
@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8", "rgba8", "bgra8"])
def test_every_encoding_with_and_without_padding(encoding, pad):
    src = {"rgb8": RGB, "bgr8": RGB[..., ::-1], "mono8": RGB[..., 0],
           "rgba8": np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)]),
           "bgra8": np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])}[encoding]
    out = image_to_rgb(make(encoding, np.ascontiguousarray(src), pad))
    want = np.dstack([RGB[..., 0]] * 3) if encoding == "mono8" else RGB
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("mutate, reason", [
    (lambda m: setattr(m, "encoding", "16UC1"), "unsupported encoding"),
    (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "shorter than step*height"),
    (lambda m: (setattr(m, "height", 0), setattr(m, "width", 0)), "zero-size"),
    (lambda m: setattr(m, "step", 3), "step 3 is smaller"),
])
def test_bad_images_raise_clear_errors(mutate, reason):
    m = make("rgb8", RGB)
    mutate(m)
    with pytest.raises(ImageConversionError, match=re.escape(reason)):
        image_to_rgb(m)


def test_round_trips_keep_header_and_pixels():
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 34
    for enc in ("rgb8", "bgr8"):
        msg = rgb_to_image(RGB, header, enc)
        assert msg.header.frame_id == "cam" and msg.header.stamp.nanosec == 34 and msg.step == 21
        np.testing.assert_array_equal(image_to_rgb(msg), RGB)
    big = cv2.resize(RGB, (64, 48), interpolation=cv2.INTER_NEAREST)
    png = rgb_to_compressed(big, header, "png")
    np.testing.assert_array_equal(compressed_to_rgb(png), big)
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_rgb(CompressedImage(format="jpeg", data=b"not a jpeg"))


def _frame(i: int) -> Frame:
    f = Frame(Header(), i * 1000, 0.0, lambda: RGB)
    f.seq = i
    return f


def test_frame_buffer_keeps_only_the_latest_and_counts_drops():
    buf = FrameBuffer(capacity=3)
    buf.count_drops = True
    for i in range(1, 6):
        buf.push(_frame(i))
    assert buf.take_latest(timeout=0).seq == 5 and buf.dropped == 4 and buf.received == 5
    assert buf.take_latest(timeout=0.01) is None
    assert buf.find(4000).seq == 4 and buf.find(1000) is None  # ring keeps the last 3
    assert buf.latest().seq == 5
    got = []
    t = threading.Thread(target=lambda: got.append(buf.take_latest(timeout=5)))
    t.start()
    buf.push(_frame(6))
    t.join(2)
    assert got[0].seq == 6
    buf.close()
    assert buf.take_latest() is None


def test_health_levels():
    lim = diag.HealthLimits(expected_rate=30, min_processed_rate=10, input_timeout_s=2)
    kw = dict(input_rate=30.0, processed_rate=20.0, seconds_since_input=0.1, last_bad_input_age=None,
              last_bad_input="")
    assert diag.assess(tracking=True, status="tracking", limits=lim, **kw)[0] == diag.OK
    assert diag.assess(tracking=False, status="idle", limits=lim, **kw) == (diag.OK, "idle: waiting for ~/init_target")
    level, msg = diag.assess(tracking=True, status="tracking", limits=lim, **{**kw, "seconds_since_input": 3.0})
    assert level == diag.ERROR and "no input image" in msg
    level, msg = diag.assess(tracking=True, status="tracking", limits=lim, **{**kw, "processed_rate": 4.0})
    assert level == diag.WARN and "processed rate" in msg
    level, msg = diag.assess(tracking=False, status="idle", limits=lim, **{**kw, "input_rate": 5.0})
    assert level == diag.WARN and "input rate" in msg
    level, msg = diag.assess(tracking=True, status="lost", limits=lim, **kw)
    assert level == diag.WARN and "lost" in msg
    level, msg = diag.assess(tracking=False, status="idle", limits=lim,
                             **{**kw, "last_bad_input_age": 1.0, "last_bad_input": "zero-size image"})
    assert level == diag.WARN and "zero-size" in msg


def test_parameter_checks_and_descriptors():
    cfg = tracker_config_with(TrackerConfig(), {"uncertain_threshold": 0.4, "lost_threshold": 0.1})
    assert (cfg.uncertain_threshold, cfg.lost_threshold) == (0.4, 0.1)
    with pytest.raises(ConfigError, match="lost_threshold"):
        tracker_config_with(TrackerConfig(), {"uncertain_threshold": 0.1})
    for spec in PARAMS:
        d = descriptor_for(spec)
        assert d.description and d.read_only == spec.read_only
        if spec.float_range:
            assert d.floating_point_range[0].to_value == spec.float_range[1]
    # one source of truth: the status defaults are the core's
    by_name = {p.name: p for p in PARAMS}
    assert by_name["uncertain_threshold"].default == TrackerConfig().uncertain_threshold
