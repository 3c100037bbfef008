"""The tracker's /diagnostics entry (diagnostic_msgs/DiagnosticArray, ~1 Hz).

diagnostic_updater has no PyPI wheel, so the node publishes the array itself,
in the shape diagnostic_updater would produce: one DiagnosticStatus named
'<node>: tracker' with key/values. :func:`assess` (the level logic) is plain
Python and unit-tested separately.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # DiagnosticStatus levels (bytes in the message)


@dataclass(frozen=True)
class HealthLimits:
    """When the node reports WARN/ERROR."""

    expected_rate: float = 0.0  # Hz; 0 = do not check the input rate
    min_processed_rate: float = 0.0  # Hz while tracking; 0 = do not check
    input_timeout_s: float = 2.0  # no image for this long while tracking -> ERROR
    bad_input_window_s: float = 5.0  # a bad input within this window -> WARN


def assess(*, tracking: bool, status: str, input_rate: float, processed_rate: float,
           seconds_since_input: float | None, last_bad_input_age: float | None, last_bad_input: str,
           limits: HealthLimits, last_model_error_age: float | None = None,
           last_model_error: str = "") -> tuple[int, str]:
    """(level, one-line message) from the node's current numbers. A model error (non-finite network output)
    within the bad-input window is an ERROR: the node has no usable estimate while it lasts."""
    problems: list[tuple[int, str]] = []
    if last_model_error_age is not None and last_model_error_age <= limits.bad_input_window_s:
        problems.append((ERROR, f"model error: {last_model_error}"))
    if tracking and (seconds_since_input is None or seconds_since_input > limits.input_timeout_s):
        age = "never" if seconds_since_input is None else f"{seconds_since_input:.1f} s ago"
        problems.append((ERROR, f"no input image while tracking (last {age})"))
    if last_bad_input_age is not None and last_bad_input_age <= limits.bad_input_window_s:
        problems.append((WARN, f"bad input: {last_bad_input}"))
    if limits.expected_rate > 0 and input_rate < 0.5 * limits.expected_rate:
        problems.append((WARN, f"input rate {input_rate:.1f} Hz below half the expected {limits.expected_rate:.1f} Hz"))
    if tracking and limits.min_processed_rate > 0 and processed_rate < limits.min_processed_rate:
        problems.append((WARN, f"processed rate {processed_rate:.1f} Hz below {limits.min_processed_rate:.1f} Hz"))
    if status in ("lost", "searching"):
        problems.append((WARN, "target lost" if status == "lost" else "target lost: re-detection searching"))
    if not problems:
        return OK, ("idle: waiting for ~/init_target" if status == "idle" else status)
    level = max(p[0] for p in problems)
    return level, "; ".join(msg for _, msg in sorted(problems, key=lambda p: -p[0]))


def build_status(name: str, hardware_id: str, level: int, message: str, values: dict[str, object]):
    """diagnostic_msgs/DiagnosticStatus with stringified key/values."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    st = DiagnosticStatus()
    st.level = bytes([level])
    st.name = name
    st.message = message
    st.hardware_id = hardware_id
    st.values = [KeyValue(key=str(k), value=_fmt(v)) for k, v in values.items()]
    return st


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def monotonic_age(t: float | None) -> float | None:
    return None if t is None else time.monotonic() - t
