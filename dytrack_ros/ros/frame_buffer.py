"""Latest-frame slot plus a small ring of recent frames, shared by the image
callback (producer), the tracking worker (consumer) and the init service.

Why: a tracker slower than the camera must never queue frames (stale boxes,
growing latency). The callback overwrites one slot and counts what it
overwrote as dropped; the worker always takes the newest frame. The ring keeps
the last few frames so ``~/init_target`` can use the frame a box was drawn on.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Frame:
    """One received image; RGB conversion is done once, on first use (lazily)."""

    header: Any  # std_msgs/Header of the source image
    stamp_ns: int  # header stamp in nanoseconds (the ring's key)
    receive_time: float  # time.monotonic() at reception
    decode: Callable[[], np.ndarray]  # -> RGB uint8 (H, W, 3); may raise ImageConversionError
    ready_time: float = 0.0  # time.monotonic() when converted and handed to the buffer
    seq: int = 0  # arrival order, set by the node (robust to stamps that jump back, e.g. looped bags)
    # False for frames that decode from small compressed data: the ring then keeps only the data and drops the
    # decoded array once a newer frame arrives (15 decoded 6000x6000 frames held 1.6 GB)
    keep_decoded: bool = True
    _rgb: np.ndarray | None = field(default=None, repr=False)

    def rgb(self) -> np.ndarray:
        rgb = self._rgb
        if rgb is None:
            rgb = self._rgb = self.decode()
        return rgb

    def release(self) -> None:
        """Drop the decoded array if it can be decoded again (``keep_decoded`` false)."""
        if not self.keep_decoded:
            self._rgb = None


def stamp_to_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class FrameBuffer:
    """Thread-safe latest slot + ring of the last ``capacity`` frames."""

    def __init__(self, capacity: int = 15) -> None:
        if capacity < 1:
            raise ValueError(f"frame buffer capacity must be >= 1, got {capacity}")
        self._ring: deque[Frame] = deque(maxlen=capacity)
        self._pending: Frame | None = None
        self._cond = threading.Condition()
        self._closed = False
        self.received = 0
        self.dropped = 0  # pending frames overwritten before the worker took them
        self.count_drops = False  # only while a target is tracked

    def push(self, frame: Frame) -> None:
        with self._cond:
            for older in self._ring:
                older.release()
            self._ring.append(frame)
            if self._pending is not None and self.count_drops:
                self.dropped += 1
            self._pending = frame
            self.received += 1
            self._cond.notify()

    def take_latest(self, timeout: float | None = None) -> Frame | None:
        """Block until a frame is pending (or ``timeout``/close); return it and clear the slot."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending is None and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._pending = self._pending, None
            return frame

    def latest(self) -> Frame | None:
        with self._cond:
            return self._ring[-1] if self._ring else None

    def find(self, stamp_ns: int) -> Frame | None:
        """The buffered frame with exactly this stamp, or None."""
        with self._cond:
            for frame in reversed(self._ring):
                if frame.stamp_ns == stamp_ns:
                    return frame
        return None

    def discard_pending(self) -> None:
        with self._cond:
            self._pending = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
