"""Talk to a running tracker node from Python: publish frames, init/reset, collect outputs.

Used by the demo, the benchmark and the tests. It owns a private rclpy context
(so it can live next to other rclpy code, with its own domain id) and spins it
in a background thread, so calls here block only the caller.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from ..msg import TrackedTarget
from ..srv import InitTarget
from .image_conversion import rgb_to_compressed, rgb_to_image


class ClientError(RuntimeError):
    """The tracker node did not answer in time."""


@dataclass
class Received:
    msg: Any
    time: float  # time.monotonic() at reception


def ns_to_time(ns: int) -> TimeMsg:
    return TimeMsg(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def time_to_ns(t) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


class TrackerClient:
    """Client side of one tracker node (``tracker`` = its fully qualified name)."""

    def __init__(self, tracker: str = "/tracker_node", image_topic: str = "/image", name: str = "dytrack_client",
                 domain_id: int | None = None, image_qos: QoSProfile | None = None,
                 debug_image: bool = False, compressed: bool = False, publish_images: bool = True) -> None:
        self.tracker = tracker.rstrip("/")
        self.context = rclpy.Context()
        rclpy.init(args=[], context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self._lock = threading.Lock()
        self.targets: list[Received] = []
        self.debug_images: list[Received] = []
        self.diagnostics: list[Received] = []
        self._listeners: list[Callable[[TrackedTarget], None]] = []
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
        self.node.create_subscription(TrackedTarget, f"{self.tracker}/target", self._on_target, out_qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._keep(self.diagnostics), out_qos)
        if debug_image:
            self.node.create_subscription(Image, f"{self.tracker}/debug_image", self._keep(self.debug_images),
                                          QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        image_qos = image_qos or QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                            reliability=ReliabilityPolicy.RELIABLE)
        self.compressed = compressed
        self.image_pub = None
        if publish_images:
            self.image_pub = self.node.create_publisher(CompressedImage if compressed else Image,
                                                        image_topic + ("/compressed" if compressed else ""), image_qos)
        self.init_client = self.node.create_client(InitTarget, f"{self.tracker}/init_target")
        self.reset_client = self.node.create_client(Trigger, f"{self.tracker}/reset")
        self._set_params_client = self.node.create_client(SetParameters, f"{self.tracker}/set_parameters")
        # Created last on purpose: see wait_for_tracker().
        self._get_params_client = self.node.create_client(GetParameters, f"{self.tracker}/get_parameters")
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="tracker_client", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------- plumbing
    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # context shut down while spinning
            pass

    def _keep(self, store: list[Received]):
        def cb(msg) -> None:
            with self._lock:
                store.append(Received(msg, time.monotonic()))
        return cb

    def _on_target(self, msg: TrackedTarget) -> None:
        with self._lock:
            self.targets.append(Received(msg, time.monotonic()))
        for fn in list(self._listeners):
            fn(msg)

    def on_target(self, fn: Callable[[TrackedTarget], None]) -> None:
        self._listeners.append(fn)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)

    def __enter__(self) -> "TrackerClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------- waiting
    def wait_for_tracker(self, timeout: float = 60.0) -> None:
        """Until the tracker can answer our service calls and subscribes to our image topic.

        ``wait_for_service`` only says that *we* have discovered the server. Discovery is
        two-sided: until the server has also matched our reply reader, Fast DDS waits 100 ms
        and then drops the response, and a first ``init`` call hangs. So we make a harmless
        round trip (``get_parameters``, retried) through the client created last: endpoint
        announcements travel in order, so once the server answers that one it has matched the
        init and reset clients' readers too.
        """
        deadline = time.monotonic() + timeout
        for client in (self.init_client, self.reset_client, self._set_params_client, self._get_params_client):
            if not client.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic())):
                raise ClientError(f"{client.srv_name} not available after {timeout:.0f} s")
        request = GetParameters.Request(names=["model"])
        while True:
            try:
                self._call(self._get_params_client, request, min(1.0, max(0.1, deadline - time.monotonic())))
                break
            except ClientError:
                if time.monotonic() > deadline:
                    raise ClientError(f"{self.tracker} discovered but does not answer after {timeout:.0f} s") from None
        while self.image_pub is not None and self.image_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise ClientError(f"nobody subscribes to {self.image_pub.topic_name} after {timeout:.0f} s")
            time.sleep(0.02)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return bool(predicate())

    def targets_since(self, index: int = 0) -> list[TrackedTarget]:
        with self._lock:
            return [r.msg for r in self.targets[index:]]

    def latest_diagnostics(self, after: float = 0.0) -> dict[str, str] | None:
        """Key/values (+ 'level', 'message') of the newest tracker diagnostics received after ``after``."""
        with self._lock:
            items = [r for r in self.diagnostics if r.time >= after]
        name = f"{self.tracker.rsplit('/', 1)[-1]}: tracker"
        for r in reversed(items):
            for st in r.msg.status:
                if st.name == name:
                    values = {kv.key: kv.value for kv in st.values}
                    values["level"] = str(st.level[0] if isinstance(st.level, (bytes, bytearray)) else st.level)
                    values["message"] = st.message
                    return values
        return None

    # ----------------------------------------------------------- actions
    def publish(self, rgb: np.ndarray, stamp_ns: int | None = None, frame_id: str = "camera_optical_frame",
                encoding: str = "rgb8") -> Header:
        """Publish one frame; returns its header (stamp = now unless given)."""
        if stamp_ns is None:
            stamp_ns = self.node.get_clock().now().nanoseconds
        header = Header(stamp=ns_to_time(stamp_ns), frame_id=frame_id)
        msg = rgb_to_compressed(rgb, header) if self.compressed else rgb_to_image(rgb, header, encoding)
        self.image_pub.publish(msg)
        return header

    def publish_raw(self, msg) -> None:
        self.image_pub.publish(msg)

    def _call(self, client, request, timeout: float, resend_after: float = 0.0):
        """One service call; a clear ClientError if the service is not there or does not answer in time.

        ``resend_after`` > 0 (only for idempotent requests, such as a state query): send the request again
        when no answer came within that many seconds, until ``timeout``. Why: DDS discovers a service's request
        and response channels independently, so a server can answer a client whose response reader it has not
        matched yet, and that answer is lost (a known Fast DDS/ROS 2 race, most likely right after start-up
        under load); ``wait_for_service`` only sees the request side.
        """
        if not client.wait_for_service(timeout_sec=timeout):
            raise ClientError(f"{client.srv_name} not available after {timeout:.0f} s")
        deadline = time.monotonic() + timeout
        while True:
            future = client.call_async(request)
            done = threading.Event()
            future.add_done_callback(lambda _f, ev=done: ev.set())
            left = deadline - time.monotonic()
            if done.wait(min(left, resend_after) if resend_after > 0 else left):
                return future.result()
            client.remove_pending_request(future)
            if deadline - time.monotonic() <= 0:
                raise ClientError(f"no answer from {client.srv_name} within {timeout:.0f} s")

    def init(self, box_xywh: Sequence[float], stamp_ns: int = 0, timeout: float = 10.0) -> InitTarget.Response:
        req = InitTarget.Request()
        req.x, req.y, req.width, req.height = (float(v) for v in box_xywh)
        req.stamp = ns_to_time(stamp_ns)
        return self._call(self.init_client, req, timeout)

    def init_when_ready(self, box_xywh: Sequence[float], stamp_ns: int = 0,
                        timeout: float = 10.0) -> InitTarget.Response:
        """:meth:`init`, retried while the node answers that it has no image yet (its discovery of the camera
        may lag the client's); returns the last answer."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.init(box_xywh, stamp_ns)
            if resp.success or "no image received" not in resp.message or time.monotonic() > deadline:
                return resp
            time.sleep(0.05)

    def reset(self, timeout: float = 10.0) -> Trigger.Response:
        return self._call(self.reset_client, Trigger.Request(), timeout)

    def set_parameters(self, values: Mapping[str, Any], timeout: float = 10.0) -> list[tuple[bool, str]]:
        """Set parameters of the tracker node; returns (successful, reason) per parameter."""
        req = SetParameters.Request()
        req.parameters = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        resp = self._call(self._set_params_client, req, timeout)
        return [(r.successful, r.reason) for r in resp.results]

    def get_parameters(self, names: Sequence[str], timeout: float = 10.0) -> dict[str, Any]:
        resp = self._call(self._get_params_client, GetParameters.Request(names=list(names)), timeout,
                          resend_after=min(3.0, timeout))  # a query: safe to send again
        return {n: Parameter.from_parameter_msg(ParameterMsg(name=n, value=v)).value
                for n, v in zip(names, resp.values)}


class CameraStream:
    """Publish ``frames`` through ``client`` at ``rate`` Hz in a background thread (a fake camera).

    Pacing is on wall-clock time (not on spin events), so the camera keeps its rate
    whatever the tracker does. ``headers`` records what was sent, in order.
    """

    def __init__(self, client: TrackerClient, frames: Sequence[np.ndarray], rate: float = 30.0,
                 frame_id: str = "camera_optical_frame", encoding: str = "rgb8", loop: bool = False) -> None:
        self.client, self.frames, self.rate = client, frames, float(rate)
        self.frame_id, self.encoding, self.loop = frame_id, encoding, loop
        self.headers: list[Header] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera_stream", daemon=True)

    def start(self) -> "CameraStream":
        self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate
        t_next = time.monotonic()
        i = 0
        while not self._stop.is_set():
            if i >= len(self.frames):
                if not self.loop:
                    break
                i = 0
            self.headers.append(self.client.publish(self.frames[i], frame_id=self.frame_id, encoding=self.encoding))
            i += 1
            t_next += period
            delay = t_next - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                t_next = time.monotonic()  # fell behind: do not burst

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()
