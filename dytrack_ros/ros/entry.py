"""Start one of the package's node executables the same way from every entry point.

``python -m dytrack_ros`` and the CMake-generated ``lib/dytrack_ros/<name>``
wrappers (``ros2 run`` / ``ros2 launch``) both call :func:`run`, so both apply
the camera DDS profile before ROS starts and both end Ctrl-C during the slow
imports (torch, rclpy) with exit code 130 and no traceback.
"""
from __future__ import annotations

import importlib
import sys

EXECUTABLES = ("tracker_node", "video_player", "target_recorder")
SIGINT_EXIT = 130
_interrupted = False  # a Ctrl-C Python could not raise (it landed in an internal callback) was seen


def _note_unraisable_interrupt(unraisable) -> None:
    """A Ctrl-C that lands inside a callback Python cannot raise from (an import lock's weakref callback while
    torch imports) is otherwise printed as 'Exception ignored ... KeyboardInterrupt' with a traceback and then
    lost; remember it instead, so :func:`run` ends the start-up with 130 as for any other Ctrl-C."""
    global _interrupted
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        _interrupted = True
        return
    sys.__unraisablehook__(unraisable)


sys.unraisablehook = _note_unraisable_interrupt  # this module is imported first by every executable


def run(name: str, args: list[str] | None = None) -> int:
    """Run ``dytrack_ros.ros.<name>.main``; returns its exit code."""
    if name not in EXECUTABLES:
        print(f"dytrack_ros: unknown executable '{name}' (one of {', '.join(EXECUTABLES)})", file=sys.stderr)
        return 2
    try:
        from .dds_profile import DdsProfileError, apply_dds_profile

        try:
            apply_dds_profile()
        except DdsProfileError as exc:
            print(f"{name}: error: {exc}", file=sys.stderr, flush=True)
            return 2
        main = importlib.import_module(f"dytrack_ros.ros.{name}").main
    except KeyboardInterrupt:
        return SIGINT_EXIT
    except ImportError as exc:
        # rclpy's C-extension loader (rpyutils.import_c_library) turns a Ctrl-C that lands while the extension
        # initialises into "ImportError: initialization failed ... isn't present on the system"
        if _caused_by_interrupt(exc):
            return SIGINT_EXIT
        raise
    if _interrupted:
        return SIGINT_EXIT
    try:
        return main(args)
    except KeyboardInterrupt:
        return SIGINT_EXIT
    except Exception:
        # Ctrl-C between rclpy.init and the node's creation: rclpy's signal handler has shut the context
        # down, and creating the node then fails; that is the user's Ctrl-C, not an error
        if _ros_context_shut_down():
            return SIGINT_EXIT
        raise


def _caused_by_interrupt(exc: BaseException) -> bool:
    """Whether a KeyboardInterrupt is in ``exc``'s chain of causes/contexts."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _ros_context_shut_down() -> bool:
    rclpy = sys.modules.get("rclpy")
    if rclpy is None:
        return False
    try:
        return not rclpy.ok()
    except Exception:
        return False
