"""Initialise the target from a GUI: two mouse clicks on the image are the box's corners.

rqt_image_view publishes every left click on the image it shows as ``geometry_msgs/Point`` (x, y in image
pixels) on ``<image topic>_mouse_left``. Viewing the node's ``~/debug_image`` (same pixels as the camera frame,
published while idle too) gives clicks on ``~/debug_image_mouse_left``: the first click is one corner, the
second the opposite corner. A first click older than ``timeout_s`` is forgotten, so a stray click does not
pair with one made much later.
"""
from __future__ import annotations

import math

MIN_SIDE_PX = 4.0


class ClickBox:
    """Pairs clicks into boxes (x, y, w, h)."""

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._first: tuple[float, float, float] | None = None  # x, y, time

    @property
    def pending(self) -> bool:
        return self._first is not None

    def click(self, x: float, y: float, now: float) -> tuple[float, float, float, float] | None:
        """Feed one click; returns the box when it completes one. A pair closer than MIN_SIDE_PX in either
        direction gives no box (two clicks on one spot, a double click) and the second click starts anew."""
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        first = self._first
        if first is None or now - first[2] > self.timeout_s:
            self._first = (x, y, now)
            return None
        x0, y0, _ = first
        w, h = abs(x - x0), abs(y - y0)
        if w < MIN_SIDE_PX or h < MIN_SIDE_PX:
            self._first = (x, y, now)
            return None
        self._first = None
        return (min(x, x0), min(y, y0), w, h)

    def clear(self) -> None:
        self._first = None


__all__ = ["ClickBox", "MIN_SIDE_PX"]
