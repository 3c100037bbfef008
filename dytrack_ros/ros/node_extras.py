"""The tracker node's outputs and inputs for viewers and other nodes, kept apart from the tracking loop.

- ``~/detections`` (``vision_msgs/Detection2DArray``, where vision_msgs is installed): every published target
  also as a detection (box, score, track id as the detection id), an empty array while idle or lost, so
  follow-me controllers and other detection consumers work unchanged;
- ``~/init_detections`` (``vision_msgs/Detection2DArray``, ``init_from_detections``): while idle (and, with
  ``init_detections_while_lost``, while lost) the node initialises on the best detection of a detector;
- ``~/debug_image_mouse_left`` (``geometry_msgs/Point``, what rqt_image_view publishes for clicks on
  ``~/debug_image``): two clicks are the corners of the init box;
- ``~/debug_image/compressed`` (JPEG) next to ``~/debug_image``, encoded only while someone subscribes;
- the debug image while idle: the latest frame with a hint, at most ``debug_image_idle_rate`` per second;
- ``~/camera_info``: the camera's ``camera_info`` passed through (``publish_camera_info``), for RViz's Camera
  display and other consumers of the debug image.

The node wraps its target and debug-image publishers with :meth:`NodeExtras.tee_targets` and
:meth:`NodeExtras.tee_debug`; everything else lives here.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from ..tracker.status import TrackStatus
from .click_init import ClickBox
from .detections import best_detection, load_vision_msgs, target_detections

IDLE_HINT = "idle: call ~/init_target or click two corners"


class _Tee:
    """A publisher that also hands every message to ``hook`` (after publishing it)."""

    def __init__(self, pub, hook: Callable[[Any], None], count: Callable[[], int] | None = None) -> None:
        self._pub, self._hook, self._count = pub, hook, count

    def publish(self, msg) -> None:
        self._pub.publish(msg)
        self._hook(msg)

    def get_subscription_count(self) -> int:
        return self._pub.get_subscription_count() + (self._count() if self._count else 0)

    def __getattr__(self, name: str):
        return getattr(self._pub, name)


class NodeExtras:
    """Created by the tracker node after its publishers, buffer and callback groups exist."""

    def __init__(self, node, params: Callable[[str], Any], service_group) -> None:
        self.node = node
        self._param = params
        self.vm = load_vision_msgs()
        self._click = ClickBox()
        self._last_idle_pub = 0.0
        self._last_idle_seq = -1
        out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        from geometry_msgs.msg import Point
        from sensor_msgs.msg import CameraInfo, CompressedImage

        self.jpeg_pub = node.create_publisher(
            CompressedImage, "~/debug_image/compressed",
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.det_pub = self.det_sub = None
        if self.vm is not None:
            self.det_pub = node.create_publisher(self.vm.Detection2DArray, "~/detections", out)
            self.det_sub = node.create_subscription(self.vm.Detection2DArray, "~/init_detections",
                                                    self._on_init_detections, 10, callback_group=service_group)
        self.click_sub = node.create_subscription(Point, "~/debug_image_mouse_left", self._on_click, 10,
                                                  callback_group=service_group)
        self.info_pub = node.create_publisher(CameraInfo, "~/camera_info", out)
        self.info_sub = node.create_subscription(CameraInfo, "camera_info", self._on_camera_info,
                                                 qos_profile_sensor_data, callback_group=service_group)
        self.idle_timer = node.create_timer(0.1, self._idle_debug, callback_group=service_group)
        self._debug = None

    # ------------------------------------------------------------ publishers the node uses
    def tee_targets(self, pub) -> _Tee:
        return _Tee(pub, self._on_target)

    def tee_debug(self, pub) -> _Tee:
        self._debug = _Tee(pub, self._on_debug_image, self.jpeg_pub.get_subscription_count)
        return self._debug

    def _on_target(self, msg) -> None:
        if self.det_pub is None:
            return
        from ..msg import TrackedTarget

        # idle, lost and searching messages carry no target box (the held box of a lost target is no target)
        box = None
        if msg.status not in (TrackedTarget.STATUS_IDLE, TrackedTarget.STATUS_LOST, TrackedTarget.STATUS_SEARCHING):
            box = (msg.center_x - msg.size_x / 2.0, msg.center_y - msg.size_y / 2.0, msg.size_x, msg.size_y)
        self.det_pub.publish(target_detections(self.vm, msg.header, box, msg.score, msg.track_id))

    def _on_debug_image(self, image) -> None:
        if self.jpeg_pub.get_subscription_count() == 0:
            return
        import cv2
        import numpy as np
        from sensor_msgs.msg import CompressedImage

        rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)
        quality = int(self._param("debug_jpeg_quality"))
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            self.jpeg_pub.publish(CompressedImage(header=image.header, format="rgb8; jpeg compressed bgr8",
                                                  data=data.tobytes()))

    # ------------------------------------------------------------ idle debug image
    def _idle_debug(self) -> None:
        node = self.node
        rate = float(self._param("debug_image_idle_rate"))
        if rate <= 0 or self._debug is None or not node._active or node.tracker is None or node.tracker.initialized:
            return
        if not (node._publish_debug or self._debug.get_subscription_count() > 0):
            return
        now = time.monotonic()
        frame = node.buffer.latest()
        if frame is None or frame.seq == self._last_idle_seq or now - self._last_idle_pub < 1.0 / rate:
            return
        try:
            rgb = frame.rgb()
        except Exception:  # a bad frame is the image callback's to report
            return
        from .image_conversion import rgb_to_image

        drawn = _hint(rgb, IDLE_HINT + (" (first corner set)" if self._click.pending else ""))
        self._last_idle_pub, self._last_idle_seq = now, frame.seq
        self._debug.publish(rgb_to_image(drawn, frame.header))

    # ------------------------------------------------------------ inputs
    def _init_box(self, box, stamp, source: str) -> bool:
        from ..srv import InitTarget

        if not self.node._active:  # inactive: no input is processed
            return False

        req = InitTarget.Request(x=float(box[0]), y=float(box[1]), width=float(box[2]), height=float(box[3]))
        if stamp is not None:
            req.stamp = stamp
        resp = self.node._on_init(req, InitTarget.Response())
        log = self.node.get_logger()
        (log.info if resp.success else log.warning)(f"{source}: {resp.message}")
        return bool(resp.success)

    def _on_click(self, point) -> None:
        if not self._param("click_init"):
            return
        box = self._click.click(float(point.x), float(point.y), time.monotonic())
        if box is None:
            self.node.get_logger().info(f"click init: first corner ({point.x:.0f}, {point.y:.0f}); click the "
                                        "opposite corner")
            return
        self._init_box(box, None, f"click init {tuple(round(v) for v in box)}")

    def _on_init_detections(self, arr) -> None:
        if not self._param("init_from_detections") or not self.node._active:
            return
        # the node's status changes under its lock as soon as an init succeeds (before any ~/target is published),
        # so a detection that follows an init at once sees "tracking" and does not initialise again
        status = self.node._status
        if status != "idle" and not (TrackStatus(status).target_lost and self._param("init_detections_while_lost")):
            return
        classes = [c.strip() for c in str(self._param("init_class_ids")).split(",") if c.strip()]
        pick = best_detection(arr, classes, float(self._param("init_min_score")))
        if pick is None:
            return
        stamp = arr.header.stamp if (arr.header.stamp.sec or arr.header.stamp.nanosec) else None
        self._init_box(pick.box, stamp, f"init from detection '{pick.detection_id}' ({pick.class_id or '-'}, "
                                        f"score {pick.score:.2f})")

    def _on_camera_info(self, info) -> None:
        if self.node._active and self._param("publish_camera_info"):
            self.info_pub.publish(info)


def _hint(rgb, text: str):
    """The frame with ``text`` on a dark band at the top (what the idle debug image shows)."""
    import cv2

    out = rgb.copy()
    h, w = out.shape[:2]
    band = max(18, h // 16)
    out[:band] = (out[:band] * 0.35).astype(out.dtype)
    cv2.putText(out, text, (6, int(band * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, max(0.35, band / 40.0),
                (255, 255, 0), 1, cv2.LINE_AA)
    return out
