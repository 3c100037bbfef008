"""ROS 2 tracker node: latest camera frame in, TrackedTarget / debug image / diagnostics out.

Threads (why): the network may be slower than the camera and must never block
the init/reset services or parameter changes, nor build a backlog of frames.
- image callback (own callback group): convert + put into the latest-frame slot, count drops;
- worker thread: takes the newest frame, runs the tracker, publishes;
- services, parameters, diagnostics timer (another callback group) on a MultiThreadedExecutor.
One lock guards the tracker state, so a re-init never interleaves with a track step.

Managed (lifecycle) node, driven through the standard ~/change_state service (`ros2 lifecycle set`):
- configure: reads and checks the parameters, loads the model and runs a warm-up frame; a missing or broken
  model is a failed transition (back to unconfigured, the reason logged), the process keeps running;
- activate: subscribes to the camera and offers ~/init_target and ~/reset; the worker thread starts;
- deactivate: unsubscribes, withdraws the services, stops the worker, drops the target and frees cached
  accelerator memory;
- cleanup: releases the model and the publishers, so configure-time parameters (model_path, device, ...)
  can change before the next configure, without a restart.
The autostart parameter (default true) configures and activates at start-up, so `ros2 run` and `ros2 launch`
stay one step; there a failed configure ends the process with one line, as before.
"""
from __future__ import annotations

import itertools
import math
import re
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from std_srvs.srv import Trigger

from ..backends import BackendError
from ..config import ConfigError, TrackerConfig
from ..exit_policy import ExitPolicyError, parse_thresholds
from ..model_io.model_file import ModelFileError
from ..msg import TrackedTarget
from ..paths import default_model_path
from ..runtime_options import RuntimeOptions
from ..srv import InitTarget
from ..tracker import Tracker, TrackerInputError, TrackerOutputError, TrackStatus
from ..viz import draw_result
from . import diagnostics as diag
from .frame_buffer import Frame, FrameBuffer, stamp_to_ns
from .image_conversion import ImageConversionError, compressed_to_rgb, image_to_rgb, rgb_to_image
from .node_extras import NodeExtras
from .node_stats import NodeStats
from .parameters import (
    BUDGET_PARAMS,
    PARAMS,
    RUNTIME_TRACKER_PARAMS,
    SPECS,
    budget_config_from,
    check_choice,
    descriptor_for,
    tracker_config_with,
)

NODE_NAME = "tracker_node"
CONFIGURE_TIME = "configure-time: changes only while unconfigured (before configure or after cleanup)"
STATUS_CODES = {
    "idle": TrackedTarget.STATUS_IDLE,
    TrackStatus.TRACKING.value: TrackedTarget.STATUS_TRACKING,
    TrackStatus.UNCERTAIN.value: TrackedTarget.STATUS_UNCERTAIN,
    TrackStatus.LOST.value: TrackedTarget.STATUS_LOST,
    TrackStatus.SEARCHING.value: TrackedTarget.STATUS_SEARCHING,
    TrackStatus.REDETECTED.value: TrackedTarget.STATUS_REDETECTED,
}
WARN_THROTTLE_S = 5.0
MAX_WARN_KINDS = 64  # distinct kinds of bad input remembered for throttling (the texts come from clients)
GIL_SWITCH_INTERVAL_S = 2e-4  # see main()


class NodeStartupError(RuntimeError):
    """The node cannot start (model missing/invalid, invalid parameter); one line for the user."""


class TrackerNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._lock = threading.RLock()
        self._warn_lock = threading.Lock()
        self._last_warn: dict[str, float] = {}  # kind of bad input -> time of its last log line
        self._declaring = False
        self.tracker: Tracker | None = None
        self._active = False
        self._autostarting = False
        self.configure_error = ""
        self._declare_static_parameters()
        self.autostart = bool(self.get_parameter("autostart").value)
        self.add_on_set_parameters_callback(self._validate_parameters)
        if hasattr(self, "add_post_set_parameters_callback"):  # Jazzy+: apply after all callbacks accepted
            self.add_post_set_parameters_callback(self._apply_parameters)
            self._apply_in_validate = False
        else:  # Humble: apply in the (single) on-set callback after validation
            self._apply_in_validate = True
        self._image_group = MutuallyExclusiveCallbackGroup()
        self._service_group = MutuallyExclusiveCallbackGroup()
        self._worker: threading.Thread | None = None
        self.buffer = FrameBuffer(1)

    def lifecycle_state(self) -> str:
        """The current lifecycle state's label (unconfigured, inactive, active, finalized, ...)."""
        return str(self._state_machine.current_state[1])

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except NodeStartupError as exc:
            self.configure_error = str(exc)
            self._release()
            if not self._autostarting:  # autostart: main() prints the one line and ends the process
                self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.configure_error = ""
        info = self.tracker.backend_info
        self.get_logger().info(
            f"configured: model {self.tracker.model_name} ({info.get('backend')}/{info.get('device')}/"
            f"{info.get('precision')}, {self.tracker.num_layers} layers, exits {list(self.tracker.exit_layers)})")
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        self._static = {p.name: self.get_parameter(p.name).value for p in PARAMS if p.read_only}
        for name in ("backend", "precision", "transport", "qos_reliability"):
            reason = check_choice(name, self._static[name])
            if reason:
                raise NodeStartupError(reason)
        options = self._runtime_options()
        tracker_config = self._declare_tracker_config()
        self.model_path = Path(self._static["model_path"] or default_model_path())
        tracker = self._load_tracker(self.model_path, options, tracker_config)
        self._model_thresholds = tuple(tracker.exit_thresholds)
        if self.has_parameter("exit_thresholds") and self.has_parameter_value("exit_thresholds"):
            try:  # set before a cleanup for the model then loaded: must suit this one
                parse_thresholds(list(self.get_parameter("exit_thresholds").value or []),
                                 tracker.exit_policy.num_exits)
            except ExitPolicyError as exc:
                raise NodeStartupError(f"exit_thresholds: {exc}") from exc
        self.tracker = tracker
        self._declare_runtime_parameters()
        self._apply_parameters([self.get_parameter(p.name) for p in PARAMS
                                if not p.read_only and self.has_parameter_value(p.name)], force=True)

        # tracking state (guarded by self._lock)
        self._track_id = getattr(self, "_track_id", 0)  # ids stay unique over re-configures
        self._status = "idle"
        self._lost_since_ns: int | None = None  # image stamp of the frame that declared the current loss
        self._init_seq = -1
        self._last_score = 0.0
        self._arrivals = itertools.count(1)

        self.stats = NodeStats(self.tracker.num_layers)
        self.buffer = FrameBuffer(int(self._static["frame_buffer_size"]))

        if getattr(self, "target_pub", None) is None:
            self._create_outputs()

    def _create_outputs(self) -> None:
        """Publishers, the diagnostics timer and the viewer inputs, created at the first configure and kept:
        rclpy entities destroyed from a transition callback race with the executor's other threads, and
        without a model nothing is published (the worker, the timer and the viewer inputs check for it)."""
        qos_out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.target_pub = self.create_publisher(TrackedTarget, "~/target", qos_out)
        self.debug_pub = self.create_publisher(
            Image, "~/debug_image", QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                               reliability=ReliabilityPolicy.RELIABLE))
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", qos_out)
        # detections out and in, click init, compressed and idle debug image, camera_info (node_extras.py)
        self.extras = NodeExtras(self, lambda name: self.get_parameter(name).value, self._service_group)
        self.target_pub = self.extras.tee_targets(self.target_pub)
        self.debug_pub = self.extras.tee_debug(self.debug_pub)
        self._diag_timer = self.create_timer(float(self._static["diagnostics_period"]), self._publish_diagnostics,
                                             callback_group=self._service_group)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        qos_in = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=int(self._static["qos_depth"]),
            reliability=(ReliabilityPolicy.BEST_EFFORT if self._static["qos_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE),
            durability=DurabilityPolicy.VOLATILE)
        self.buffer = FrameBuffer(int(self._static["frame_buffer_size"]))
        # no QoS event handlers: this subscription is destroyed again on deactivate, and a destroyed event
        # handler still in another executor thread's wait set ends the spin
        events = SubscriptionEventCallbacks(use_default_callbacks=False)
        if self._static["transport"] == "compressed":
            self.image_sub = self.create_subscription(CompressedImage, "image/compressed", self._on_compressed,
                                                      qos_in, callback_group=self._image_group,
                                                      event_callbacks=events)
        else:
            self.image_sub = self.create_subscription(Image, "image", self._on_image, qos_in,
                                                      callback_group=self._image_group, event_callbacks=events)
        self._tracker_services = [
            self.create_service(InitTarget, "~/init_target", self._on_init, callback_group=self._service_group),
            self.create_service(Trigger, "~/reset", self._on_reset, callback_group=self._service_group)]
        # the worker gets its own buffer: should a deactivate's join time out, the old worker still ends when that
        # buffer closes and never takes frames from the buffer of a later activation
        self._worker = threading.Thread(target=self._work_loop, args=(self.buffer,), name="tracker_worker",
                                        daemon=True)
        self._worker.start()
        self._active = True
        info = self.tracker.backend_info
        self.get_logger().info(
            f"ready: model {self.tracker.model_name} ({info.get('backend')}/{info.get('device')}/"
            f"{info.get('precision')}, {self.tracker.num_layers} layers, exits {list(self.tracker.exit_layers)}), "
            f"input {self.image_sub.topic_name} [{self._static['transport']}, {self._static['qos_reliability']}, "
            f"depth {self._static['qos_depth']}]")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self.get_logger().info("deactivated: not subscribed, services withdrawn, target dropped")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: model released; configure-time parameters may change")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        self.get_logger().info("finalized")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _stop_processing(self) -> None:
        """Back to inactive: no input, no services, no worker, no target (an IDLE ~/target says so, as ~/reset
        does); cached accelerator memory freed."""
        was_active, self._active = self._active, False
        sub = getattr(self, "image_sub", None)
        if sub is not None:
            self.destroy_subscription(sub)
            self.image_sub = None
        for srv in getattr(self, "_tracker_services", []):
            self.destroy_service(srv)
        self._tracker_services = []
        self.buffer.close()
        if self._worker is not None and self._worker.is_alive() and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)
        self._worker = None
        with self._lock:
            if self.tracker is not None:
                self.tracker.reset()
            self._status = "idle"
            if (was_active and self.tracker is not None and getattr(self, "target_pub", None) is not None
                    and self.context.ok()):
                latest = self.buffer.latest()
                header = latest.header if latest is not None else Header(stamp=self.get_clock().now().to_msg())
                self.target_pub.publish(self._target_message(header, "idle"))
        _free_accelerator_memory()

    def _release(self) -> None:
        """Unconfigured again: the model released (the publishers stay, silent without a model)."""
        model_thresholds = getattr(self, "_model_thresholds", None)
        if (model_thresholds is not None and self.has_parameter("exit_thresholds")
                and self.has_parameter_value("exit_thresholds")
                and tuple(self.get_parameter("exit_thresholds").value or ()) == tuple(model_thresholds)):
            # still the released model's own thresholds: the next model declares its own
            self.undeclare_parameter("exit_thresholds")
        self._model_thresholds = None
        with self._lock:
            self.tracker = None
        import gc

        gc.collect()
        _free_accelerator_memory()

    # ------------------------------------------------------------------ set-up
    def _declare_static_parameters(self) -> None:
        """Declare the configure-time parameters. Not read-only for rclpy: they may change while the node is
        unconfigured (before configure, after cleanup); :meth:`_validate_parameters` refuses other times."""
        for spec in PARAMS:
            if spec.read_only:
                descriptor = descriptor_for(spec)
                descriptor.read_only = False
                descriptor.additional_constraints = "; ".join(
                    c for c in (descriptor.additional_constraints, CONFIGURE_TIME) if c)
                try:
                    self.declare_parameter(spec.name, spec.default, descriptor)
                except Exception as exc:  # rclpy raises several types for rejected overrides (ranges, types)
                    raise NodeStartupError(f"invalid parameter {spec.name}: {_one_line(exc)}") from exc

    def _runtime_options(self) -> RuntimeOptions:
        """Backend, device, precision and CPU threads in the one object the backend loader applies (threads
        included: the node never sets them itself)."""
        try:
            return RuntimeOptions(backend=self._static["backend"], device=self._static["device"],
                                  precision=self._static["precision"], threads=int(self._static["cpu_threads"]))
        except ConfigError as exc:
            raise NodeStartupError(f"invalid parameters: {exc}") from exc

    def _declare_tracker_config(self) -> TrackerConfig:
        """Declare the status thresholds (before the model loads: they do not depend on it) and return the
        tracker configuration they give. rclpy checks each declaration alone, so the thresholds, which
        constrain each other, are checked together here."""
        self._declaring = True
        try:
            for name in RUNTIME_TRACKER_PARAMS:
                if not self.has_parameter(name):  # declared by an earlier configure
                    self.declare_parameter(name, SPECS[name].default, descriptor_for(SPECS[name]))
        except Exception as exc:  # rclpy raises several types for rejected overrides
            raise NodeStartupError(f"invalid parameter: {exc}") from exc
        finally:
            self._declaring = False
        try:
            values = {k: self.get_parameter(k).value for k in RUNTIME_TRACKER_PARAMS}
            return tracker_config_with(TrackerConfig(), values)
        except ConfigError as exc:
            raise NodeStartupError(f"invalid parameters: {exc}") from exc

    def _declare_runtime_parameters(self) -> None:
        """Declare the other runtime-changeable parameters; exit_thresholds defaults to the model's own."""
        self._declaring = True
        try:
            for spec in PARAMS:
                if spec.read_only or self.has_parameter(spec.name):
                    continue
                default = spec.default
                if spec.name == "exit_thresholds":  # the model's stored thresholds (typed double array)
                    default = [float(t) for t in self._model_thresholds] or Parameter.Type.DOUBLE_ARRAY
                self.declare_parameter(spec.name, default, descriptor_for(spec))
        except Exception as exc:  # rclpy raises several types for rejected overrides
            raise NodeStartupError(f"invalid parameter: {exc}") from exc
        finally:
            self._declaring = False

    def _load_tracker(self, path: Path, options: RuntimeOptions, config: TrackerConfig) -> Tracker:
        if not path.is_file():
            raise NodeStartupError(f"model file not found: {path} (set the model_path parameter)")
        try:
            tracker = Tracker.from_model(path, options=options, config=config)
        except (BackendError, ModelFileError, ConfigError, ValueError, OSError) as exc:
            raise NodeStartupError(f"cannot load model {path}: {exc}") from exc
        # warm-up: the first forward pass is slow (allocations); keep it out of the first real frame
        try:
            import numpy as np

            blank = np.full((240, 320, 3), 127, np.uint8)
            # the stages' costs at no load, for a latency budget set now or later (also warms up every stage)
            self._stage_base_ms = tracker.measure_stage_ms() if tracker.exit_layers else []
            tracker.initialize(blank, (140, 100, 40, 40))
            tracker.track(blank)
            tracker.reset()
        except Exception as exc:  # a model that cannot run one frame is unusable
            raise NodeStartupError(f"model {path} failed a warm-up frame: {exc}") from exc
        return tracker

    # ------------------------------------------------------------- parameters
    def has_parameter_value(self, name: str) -> bool:
        try:
            self.get_parameter(name)
            return True
        except ParameterUninitializedException:
            return False

    def _validate_parameters(self, params) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in SPECS}
        reason = None
        fixed = [k for k in changes if SPECS[k].read_only]
        if fixed and not self._declaring and self.lifecycle_state() != "unconfigured":
            reason = (f"{', '.join(fixed)}: read-only while the node is configured (now {self.lifecycle_state()}); "
                      "deactivate and clean up the node, then change it and configure again")
        elif self.tracker is None:  # checked against the model at the next configure
            changes = {}
        if reason is None and "exit_thresholds" in changes:  # the one convention: what parse_thresholds accepts
            try:
                parse_thresholds(list(changes["exit_thresholds"] or []), self.tracker.exit_policy.num_exits)
            except ExitPolicyError as exc:
                reason = f"exit_thresholds: {exc}"
        if reason is None and not self._declaring and any(k in changes for k in RUNTIME_TRACKER_PARAMS):
            try:
                tracker_config_with(self.tracker.config, changes)
            except ConfigError as exc:
                reason = str(exc)
        if reason is None and not self._declaring and any(k in changes for k in BUDGET_PARAMS):
            reason = self._budget_change_problem(changes)
        if reason is not None:
            if not self._declaring:
                self.get_logger().warning(f"parameter change rejected: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        if self._apply_in_validate:
            self._apply_parameters(params)
        return SetParametersResult(successful=True)

    def _budget_values(self, changes) -> dict:
        """The budget parameters as they would be after ``changes``."""
        return {k: changes[k] if k in changes else self.get_parameter(k).value for k in BUDGET_PARAMS}

    def _budget_change_problem(self, changes) -> str | None:
        """Why the budget parameters after ``changes`` cannot apply, or None."""
        try:
            budget = budget_config_from(self._budget_values(changes))
        except ConfigError as exc:
            return str(exc)
        if budget.active and not self.tracker.exit_layers:
            return "latency_budget_ms/target_depth need a model with early exits"
        return None

    def _apply_parameters(self, params, force: bool = False) -> None:
        if self._declaring or (self.tracker is None and not force):
            return  # applied once, together, after the declaration (configure)
        changes = {p.name: p.value for p in params if p.name in SPECS}
        with self._lock:
            if "exit_thresholds" in changes and self.tracker.exit_policy.num_exits:
                self.tracker.set_exit_thresholds(list(changes["exit_thresholds"]))
            if any(k in changes for k in RUNTIME_TRACKER_PARAMS):
                self.tracker.set_config(tracker_config_with(self.tracker.config, changes))
            if any(k in changes for k in BUDGET_PARAMS):
                budget = budget_config_from(self._budget_values(changes))
                first = self.tracker.budget is None
                self.tracker.set_budget(budget, stage_base_ms=self._stage_base_ms if first else None)
            if "publish_debug_image" in changes:
                self._publish_debug = bool(changes["publish_debug_image"])
            for key in ("expected_rate", "min_processed_rate", "input_timeout"):
                if key in changes:
                    setattr(self, f"_{key}", float(changes[key]))

    # ----------------------------------------------------------------- inputs
    def _on_image(self, msg: Image) -> None:
        max_pixels = int(self._static["max_image_pixels"])
        self._receive(msg.header, lambda: image_to_rgb(msg, max_pixels), eager=True)

    def _on_compressed(self, msg: CompressedImage) -> None:
        # JPEG decoding is costly: only frames that are used get decoded (worker or init); the ring keeps the
        # compressed data of older frames, not their decoded arrays
        max_pixels = int(self._static["max_image_pixels"])
        self._receive(msg.header, lambda: compressed_to_rgb(msg, max_pixels), eager=False)

    def _receive(self, header, decode, eager: bool) -> None:
        now = time.monotonic()
        with self.stats.lock:
            self.stats.input_rate.tick(now)
        frame = Frame(header, stamp_to_ns(header.stamp), now, decode, keep_decoded=eager)
        if eager:
            try:
                frame.rgb()
            except ImageConversionError as exc:
                self._bad_input(f"image rejected: {exc}")
                return
        frame.seq = next(self._arrivals)  # never the tracker lock here: it is held during inference
        frame.ready_time = time.monotonic()
        self.buffer.push(frame)

    def _bad_input(self, reason: str) -> None:
        """Count it for diagnostics; log it, throttled per kind so that a burst of one problem never hides a
        different one."""
        self.stats.bad_input(reason)
        self._warn_throttled(reason)

    def _warn_throttled(self, reason: str) -> None:
        """Log ``reason`` unless one of the same kind was logged within WARN_THROTTLE_S. The kind is the
        prefix ('image rejected', ...) plus the first two words of the detail, numbers and quoted values
        removed: 'data has 100 bytes' and 'unsupported encoding' are different kinds, 'data has 7 bytes'
        and 'data has 9 bytes' the same."""
        prefix, _, detail = reason.partition(": ")
        words = re.sub(r"'[^']*'|\d+", "#", detail).split()[:2]
        kind = " ".join([prefix, *words])
        now = time.monotonic()
        with self._warn_lock:
            if now - self._last_warn.get(kind, -math.inf) < WARN_THROTTLE_S:
                return
            if len(self._last_warn) >= MAX_WARN_KINDS:
                self._last_warn.clear()
            self._last_warn[kind] = now
        self.get_logger().warning(reason)

    # ----------------------------------------------------------------- worker
    def _work_loop(self, buf: FrameBuffer) -> None:
        while not buf.closed:
            frame = buf.take_latest(timeout=0.2)
            if frame is None:
                continue
            try:
                self._process(frame, buf)
            except Exception as exc:  # never let one frame kill the worker
                if not self.context.ok():
                    return  # shutting down: publishers are gone, which is no fault of the input
                self._bad_input(f"frame skipped: {type(exc).__name__}: {_one_line(exc)}")

    def _process(self, frame: Frame, buf: FrameBuffer) -> None:
        picked = time.monotonic()
        tracker = self.tracker  # a plain read: idle frames are not decoded
        if tracker is None or not tracker.initialized or frame.seq <= self._init_seq:
            return
        # decoded outside the lock (a JPEG decode for compressed transport): init, reset and parameter changes
        # do not wait for it
        try:
            rgb = frame.rgb()
        except ImageConversionError as exc:
            self._bad_input(f"frame skipped: {exc}")
            return
        with self._lock:
            # checked again under the lock: a deactivate (buffer closed), release, reset or newer init may have
            # come in while decoding
            if buf.closed or self.tracker is None or not self.tracker.initialized or frame.seq <= self._init_seq:
                return
            try:
                result = self.tracker.track(rgb)
                track_ms = result.timings["total"]  # crop + network + decode, measured by the tracker
            except TrackerInputError as exc:
                self._bad_input(f"frame skipped: {exc}")
                return
            except TrackerOutputError as exc:
                self._model_error(frame, exc)
                return
            status = result.status.value
            self._status, self._last_score = status, result.score
            msg = self._target_message(frame.header, status, result)
            # lost duration from the image stamps, counted from the frame that declared the loss
            if not result.status.target_lost:
                self._lost_since_ns = None
            elif self._lost_since_ns is None or result.lost_frames == 1:
                self._lost_since_ns = frame.stamp_ns
            if self._lost_since_ns is not None:
                msg.lost_duration = float((frame.stamp_ns - self._lost_since_ns) / 1e9)
            now_ns = self.get_clock().now().nanoseconds
            msg.latency_ms = float((now_ns - frame.stamp_ns) / 1e6)
            self.target_pub.publish(msg)
            track_id = self._track_id
        done = time.monotonic()
        with self.stats.lock:
            self.stats.processed_rate.tick(done)
            self.stats.latency_ms.add(msg.latency_ms)
            self.stats.node_ms.add((done - frame.receive_time) * 1e3)
            self.stats.inference_ms.add(track_ms)
            self.stats.overhead_ms.add(((frame.ready_time - frame.receive_time) + (done - picked)) * 1e3 - track_ms)
            self.stats.wait_ms.add((picked - frame.ready_time) * 1e3)
            self.stats.exits.add(result.exit_layer)
            if result.status.target_lost:
                self.stats.lost_frames += 1
        if self._publish_debug or self.debug_pub.get_subscription_count() > 0:
            drawn = draw_result(rgb, result.box, status, result.score, result.exit_layer, result.num_layers,
                                extra=f"id {track_id}")
            self.debug_pub.publish(rgb_to_image(drawn, frame.header))

    def _model_error(self, frame: Frame, exc: TrackerOutputError) -> None:
        """The network gave no usable answer (non-finite numbers): publish LOST with the last finite box and
        score 0, so that followers stop; diagnostics report ERROR while it lasts. Called under the lock."""
        self.stats.model_error(str(exc))
        self._warn_throttled(f"model error: {exc}")
        self._status, self._last_score = TrackStatus.LOST.value, 0.0
        msg = self._target_message(frame.header, TrackStatus.LOST.value)
        x, y, w, h = self.tracker.state
        msg.center_x, msg.center_y, msg.size_x, msg.size_y = x + w / 2.0, y + h / 2.0, float(w), float(h)
        msg.score = 0.0
        msg.latency_ms = float((self.get_clock().now().nanoseconds - frame.stamp_ns) / 1e6)
        self.target_pub.publish(msg)

    def _target_message(self, header, status: str, result=None) -> TrackedTarget:
        msg = TrackedTarget()
        msg.header = header
        msg.track_id = self._track_id if status != "idle" else 0
        msg.status = STATUS_CODES[status]
        msg.predicted_iou = float("nan")
        if result is not None:
            x, y, w, h = result.box
            msg.center_x, msg.center_y, msg.size_x, msg.size_y = x + w / 2.0, y + h / 2.0, float(w), float(h)
            msg.score = float(min(max(result.score, 0.0), 1.0))
            if result.pred_iou is not None:
                msg.predicted_iou = float(result.pred_iou)
            msg.exit_layer, msg.num_layers = int(result.exit_layer), int(result.num_layers)
            msg.inference_ms = float(result.timings.get("total", 0.0))
            msg.exit_thresholds = [float(t) for t in result.thresholds]
            msg.cut_by_deadline = bool(result.cut_by_deadline)
            msg.lost_frames = int(result.lost_frames)
            if result.last_confident_box is not None:
                cx, cy, cw, ch = result.last_confident_box
                msg.last_confident_center_x, msg.last_confident_center_y = cx + cw / 2.0, cy + ch / 2.0
                msg.last_confident_size_x, msg.last_confident_size_y = float(cw), float(ch)
            msg.redetections = int(self.tracker.recovery_counts.reacquisitions)
            if result.budget is not None:
                msg.latency_budget_ms = float(self.tracker.budget.config.latency_budget_ms)
                msg.latency_p95_ms = float(result.budget.achieved_p95_ms or 0.0)
        else:
            msg.num_layers = int(self.tracker.num_layers)
        return msg

    # --------------------------------------------------------------- services
    def _on_init(self, request: InitTarget.Request, response: InitTarget.Response) -> InitTarget.Response:
        box = (request.x, request.y, request.width, request.height)
        response.success, response.track_id = False, 0

        def fail(reason: str) -> InitTarget.Response:
            self._bad_input(f"init_target rejected: {reason}")
            response.message = reason
            return response

        if not all(math.isfinite(v) for v in box):
            return fail(f"box has non-finite values {box}")
        wanted = stamp_to_ns(request.stamp)
        frame, note = None, "latest frame"
        if wanted:
            frame = self.buffer.find(wanted)
            note = "frame with the requested stamp"
            if frame is None:
                note = f"latest frame (stamp {request.stamp.sec}.{request.stamp.nanosec:09d} no longer buffered)"
        if frame is None:
            frame = self.buffer.latest()
        if frame is None:
            return fail(f"no image received yet on {self._input_topic()}; cannot initialise")
        try:
            rgb = frame.rgb()
        except ImageConversionError as exc:
            return fail(f"frame unusable: {exc}")
        except Exception as exc:  # a decoder's own error on hostile data
            return fail(f"frame unusable: {type(exc).__name__}: {_one_line(exc)}")
        h, w = rgb.shape[:2]
        with self._lock:
            try:
                self.tracker.initialize(rgb, box)
            except TrackerInputError as exc:
                return fail(f"invalid box for the {w}x{h} image: {exc}")
            except Exception as exc:  # a service call must never end the node; the tracker state is unchanged
                return fail(f"cannot initialise on the {w}x{h} image: {type(exc).__name__}: {_one_line(exc)}")
            self._track_id += 1
            self._init_seq = frame.seq
            self._status = "tracking"
            self.buffer.count_drops = True
            response.success, response.track_id = True, self._track_id
        response.frame_stamp = frame.header.stamp
        response.message = f"tracking id {self._track_id} from the {note}"
        self.get_logger().info(f"init_target: box {tuple(round(v, 1) for v in box)} -> {response.message}")
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            had = self.tracker.initialized
            old_id = self._track_id
            self.tracker.reset()
            self._status = "idle"
            self.buffer.count_drops = False
            self.buffer.discard_pending()
            latest = self.buffer.latest()
            header = latest.header if latest is not None else Header(stamp=self.get_clock().now().to_msg())
            self.target_pub.publish(self._target_message(header, "idle"))
        response.success = True
        response.message = f"track {old_id} dropped; idle" if had else "no target was tracked; idle"
        return response

    # ------------------------------------------------------------ diagnostics
    def diagnostics_values(self) -> tuple[int, str, dict[str, object]]:
        # plain attribute reads (atomic under the GIL): no tracker lock, which inference holds
        status, track_id, score = self._status, self._track_id, self._last_score
        thresholds = list(self.tracker.exit_thresholds)
        cfg = self.tracker.config
        rec = self.tracker.recovery_counts
        now = time.monotonic()
        with self.stats.lock:
            st = self.stats
            in_rate, proc_rate = st.input_rate.rate(now), st.processed_rate.rate(now)
            since_input = st.input_rate.seconds_since_last(now)
            lat, node_lat, inf = st.latency_ms.summary(), st.node_ms.summary(), st.inference_ms.summary()
            overhead, wait = st.overhead_ms.summary(), st.wait_ms.summary()
            exits_text, mean_layers = st.exits.as_text(), st.exits.mean_layers()
            bad, last_bad, bad_age = st.bad_inputs, st.last_bad_input, diag.monotonic_age(st.last_bad_input_time)
            model_errors, last_model_error = st.model_errors, st.last_model_error
            model_error_age = diag.monotonic_age(st.last_model_error_time)
            lost, processed = st.lost_frames, st.processed_rate.total
        limits = diag.HealthLimits(self._expected_rate, self._min_processed_rate, self._input_timeout)
        level, message = diag.assess(tracking=status != "idle", status=status, input_rate=in_rate,
                                     processed_rate=proc_rate, seconds_since_input=since_input,
                                     last_bad_input_age=bad_age, last_bad_input=last_bad, limits=limits,
                                     last_model_error_age=model_error_age, last_model_error=last_model_error)
        info = self.tracker.backend_info
        values: dict[str, object] = {
            "status": status, "track id": track_id, "score": float(score),
            "backend": info.get("backend", ""), "device": info.get("device", ""),
            "precision": info.get("precision", ""), "model": self.tracker.model_name,
            "model path": str(self.model_path), "input topic": self._input_topic(),
            "transport": self._static["transport"],
            "input rate (Hz)": in_rate, "processed rate (Hz)": proc_rate,
            "frames received": self.buffer.received, "frames processed": processed,
            "dropped frames": self.buffer.dropped, "bad inputs": bad, "last bad input": last_bad or "-",
            "lost frames": lost, "model errors": model_errors, "last model error": last_model_error or "-",
            "latency p50 (ms)": lat.get("p50", 0.0), "latency p95 (ms)": lat.get("p95", 0.0),
            "latency max (ms)": lat.get("max", 0.0),
            "node latency p50 (ms)": node_lat.get("p50", 0.0), "node latency p95 (ms)": node_lat.get("p95", 0.0),
            "inference p50 (ms)": inf.get("p50", 0.0), "inference p95 (ms)": inf.get("p95", 0.0),
            "node overhead p50 (ms)": overhead.get("p50", 0.0), "node overhead p95 (ms)": overhead.get("p95", 0.0),
            "worker wait p50 (ms)": wait.get("p50", 0.0), "worker wait p95 (ms)": wait.get("p95", 0.0),
            "exit histogram": exits_text, "mean executed layers": mean_layers,
            "total layers": self.tracker.num_layers, "exit layers": list(self.tracker.exit_layers),
            "exit thresholds": [round(t, 3) for t in thresholds],
            "uncertain threshold": cfg.uncertain_threshold, "lost threshold": cfg.lost_threshold,
            "recovery": cfg.recovery, "losses (this track)": rec.losses,
            "re-detection frames (this track)": rec.search_frames, "re-detection windows (this track)": rec.windows,
            "re-acquisitions (this track)": rec.reacquisitions,
        }
        ctrl = self.tracker.budget
        if ctrl is not None:
            st = ctrl.state()
            values.update({
                "latency budget (ms)": ctrl.config.latency_budget_ms, "target depth": ctrl.config.target_depth,
                "deadline": ctrl.config.deadline, "threshold floor": ctrl.config.min_threshold,
                "exit thresholds in force": [round(t, 3) for t in st.thresholds],
                "budget p95 (ms)": st.achieved_p95_ms if st.achieved_p95_ms is not None else "-",
                "budget mean depth": st.achieved_mean_depth if st.achieved_mean_depth is not None else "-",
                "budget met": st.budget_met, "deadline cuts (last frames)": st.cut_by_deadline,
                "load scale": round(st.load_scale, 3),
            })
            if not st.budget_met and status != "idle" and level == diag.OK:
                level = diag.WARN
                message = (f"latency budget not met: p95 {st.achieved_p95_ms or 0.0:.1f} ms > "
                           f"{ctrl.config.latency_budget_ms:g} ms at the accuracy floor"
                           if ctrl.config.latency_budget_ms else "target depth not met at the accuracy floor")
        return level, message, values

    def _publish_diagnostics(self) -> None:
        tracker, pub = self.tracker, self.diag_pub
        if tracker is None or pub is None:  # a cleanup is releasing them
            return
        try:
            level, message, values = self.diagnostics_values()
        except AttributeError:
            if self.tracker is None:  # released while being read
                return
            raise
        values["lifecycle state"] = self.lifecycle_state()
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [diag.build_status(f"{self.get_name()}: tracker", str(tracker.backend_info.get("device", "")),
                                        level, message, values)]
        pub.publish(arr)

    # --------------------------------------------------------------- shutdown
    def _input_topic(self) -> str:
        sub = getattr(self, "image_sub", None)
        if sub is not None:
            return sub.topic_name
        return "image/compressed" if getattr(self, "_static", {}).get("transport") == "compressed" else "image"

    def destroy_node(self) -> None:
        # also called by rclpy's context clean-up for a node whose __init__ failed half-way
        if hasattr(self, "buffer"):
            self.buffer.close()
        worker = getattr(self, "_worker", None)
        if worker is not None and worker.is_alive():
            worker.join(timeout=5.0)
        super().destroy_node()


def _free_accelerator_memory() -> None:
    """Return cached CUDA memory to the driver (no-op without torch or CUDA)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _one_line(exc: BaseException) -> str:
    """An exception's text on one line (some libraries' messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(args: list[str] | None = None) -> int:
    """Entry point of `ros2 run dytrack_ros tracker_node` and `python -m dytrack_ros`."""
    # GIL convoy guard: a forward pass is a few hundred short torch ops, each releasing and re-taking the GIL.
    # While executor threads run Python (a fast camera), every re-take can wait the whole switch interval
    # (5 ms by default): measured 660-890 ms per inference instead of ~30 ms under a 100 Hz camera.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = TrackerNode()
        if node.autostart:  # configure + activate now; a failed configure ends the process with one line
            node._autostarting = True
            if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise NodeStartupError(node.configure_error or "configure failed")
            node._autostarting = False
            node.trigger_activate()
        else:
            node.get_logger().info("unconfigured (autostart false): configure and activate through "
                                   "~/change_state, e.g. ros2 lifecycle set <node> configure")
    except NodeStartupError as exc:
        print(f"{NODE_NAME}: error: {exc}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:  # SIGINT while the model loads
        rclpy.try_shutdown()
        return 0
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # a callback still running when SIGINT/SIGTERM shut the context down finds its handles destroyed
        # ("cannot use Destroyable because destruction was requested"): the end of a signalled shutdown
        if rclpy.ok():
            raise
    finally:
        _tear_down(executor, node)
    return 0


def _tear_down(executor, node) -> None:
    """Stop the executor and destroy the node. After SIGINT/SIGTERM rclpy has already shut the context down,
    so handles may be gone: failures here are the expected end of a signalled shutdown, not errors."""
    for step in (lambda: executor.shutdown(timeout_sec=2.0), node.destroy_node, rclpy.try_shutdown):
        try:
            step()
        except Exception as exc:  # InvalidHandle, RCLError: the context is already shut down
            if rclpy.ok():
                raise
            node.get_logger().debug(f"shutdown: {_one_line(exc)}")


if __name__ == "__main__":
    sys.exit(main())
