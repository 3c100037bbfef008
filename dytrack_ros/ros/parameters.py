"""Parameters of the tracker node: one table with defaults, descriptors, ranges.

Defaults that belong to the tracker core (status thresholds) are read from
:class:`dytrack_ros.config.TrackerConfig`, so there is one source of truth.
Restart-only parameters are ``read_only``; exit and status thresholds can be
changed at runtime and are validated by :func:`validate_runtime_change`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..backends import PRECISIONS, available_backends
from ..config import ConfigError, TrackerConfig

_TRACKER_DEFAULTS = TrackerConfig()

BACKENDS = ("auto", *available_backends())  # the registry decides; a new backend appears here by itself
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    double_array: bool = False


# Order matters only for readability (ros2 param list sorts anyway).
PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "Model file (.safetensors, .onnx, official .pth). Empty: the shipped default "
              "models/dytrack_small.safetensors.", read_only=True),
    ParamSpec("backend", "auto", "Inference backend; auto picks it from the model file suffix.", read_only=True,
              choices=BACKENDS),
    ParamSpec("device", "cpu", "Device for the backend: cpu, cuda, cuda:N.", read_only=True),
    ParamSpec("precision", "fp32", "Numeric precision of the backend.", read_only=True, choices=PRECISIONS),
    ParamSpec("cpu_threads", 0, "CPU threads for inference; 0 = the library default (one per core). On a small "
              "CPU shared with the camera driver, fewer threads avoid OpenMP stalls.", read_only=True,
              int_range=(0, 256)),
    ParamSpec("exit_thresholds", [], "Per-exit thresholds on the predicted IoU, one per exit layer, each in [0, 1]; "
              "lower = earlier exits (faster). Default: the thresholds stored in the model file. Runtime-changeable.",
              double_array=True),
    ParamSpec("uncertain_threshold", _TRACKER_DEFAULTS.uncertain_threshold,
              "Score below this marks a frame UNCERTAIN. Must be >= lost_threshold. Runtime-changeable.",
              float_range=(0.0, 1.0)),
    ParamSpec("lost_threshold", _TRACKER_DEFAULTS.lost_threshold,
              "Score below this counts towards LOST. Must be <= uncertain_threshold. Runtime-changeable.",
              float_range=(0.0, 1.0)),
    ParamSpec("lost_after_frames", _TRACKER_DEFAULTS.lost_after_frames,
              "Consecutive frames below lost_threshold before the status becomes LOST. Runtime-changeable.",
              int_range=(1, 1000)),
    ParamSpec("transport", "raw", "Image input: raw subscribes to 'image' (sensor_msgs/Image), compressed to "
              "'image/compressed' (sensor_msgs/CompressedImage).", read_only=True, choices=TRANSPORTS),
    ParamSpec("qos_reliability", "best_effort", "Reliability of the image subscription. best_effort (REP-2003 "
              "sensor data) matches both reliable and best-effort cameras.", read_only=True, choices=RELIABILITIES),
    ParamSpec("qos_depth", 1, "History depth of the image subscription (the node always tracks the newest frame).",
              read_only=True, int_range=(1, 100)),
    ParamSpec("frame_buffer_size", 15, "Recent frames kept so ~/init_target can use the frame with the requested "
              "stamp.", read_only=True, int_range=(1, 300)),
    ParamSpec("publish_debug_image", False, "Always publish ~/debug_image. When false it is published only while "
              "someone subscribes."),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", read_only=True,
              float_range=(0.1, 60.0)),
    ParamSpec("expected_rate", 0.0, "Expected camera rate in Hz; diagnostics WARN below half of it. 0: no check.",
              float_range=(0.0, 1000.0)),
    ParamSpec("min_processed_rate", 0.0, "Diagnostics WARN when the processed rate falls below this while tracking. "
              "0: no check.", float_range=(0.0, 1000.0)),
    ParamSpec("input_timeout", 2.0, "Diagnostics ERROR when no image arrived for this many seconds while tracking.",
              float_range=(0.1, 3600.0)),
)
SPECS = {p.name: p for p in PARAMS}
RUNTIME_TRACKER_PARAMS = ("uncertain_threshold", "lost_threshold", "lost_after_frames")


def descriptor_for(spec: ParamSpec):
    """rcl_interfaces/ParameterDescriptor for ``spec``."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.float_range:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.float_range[0]),
                                                     to_value=float(spec.float_range[1]), step=0.0)]
    if spec.int_range:
        d.integer_range = [IntegerRange(from_value=int(spec.int_range[0]), to_value=int(spec.int_range[1]), step=1)]
    if spec.double_array:
        d.type = ParameterType.PARAMETER_DOUBLE_ARRAY
        d.additional_constraints = "one value in [0, 1] per exit layer of the model"
    return d


def check_choice(name: str, value: Any) -> str | None:
    """Reason why a string parameter value is invalid, or None."""
    spec = SPECS[name]
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got '{value}'"
    return None


def check_exit_thresholds(values: Sequence[float], num_exits: int) -> str | None:
    """Reason why ``values`` are not valid exit thresholds for a model with ``num_exits`` exits, or None."""
    values = list(values)
    if num_exits == 0:
        return "exit_thresholds given, but the model has no early exits"
    if len(values) != num_exits:
        return f"exit_thresholds needs {num_exits} values (one per exit), got {len(values)}"
    for v in values:
        if not math.isfinite(v) or not 0.0 <= v <= 1.0:
            return f"exit thresholds must lie in [0, 1], got {values}"
    return None


def tracker_config_with(current: TrackerConfig, changes: Mapping[str, Any]) -> TrackerConfig:
    """``current`` with runtime status-threshold changes applied; raises ConfigError (with the reason)."""
    updates = {k: v for k, v in changes.items() if k in RUNTIME_TRACKER_PARAMS}
    if "lost_after_frames" in updates:
        updates["lost_after_frames"] = int(updates["lost_after_frames"])
    for k in ("uncertain_threshold", "lost_threshold"):
        if k in updates:
            updates[k] = float(updates[k])
    try:
        return current.replace(**updates)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
