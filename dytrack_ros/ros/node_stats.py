"""Rolling statistics of the tracker node: rates, latency percentiles, exit depth.

Plain Python (no rclpy) so the numbers behind /diagnostics and the demo
summary can be unit-tested and reused by the recorder and the benchmark.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Iterable

import numpy as np


class RateMeter:
    """Events per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = float(window_s)
        self._times: deque[float] = deque()
        self._start = time.monotonic()
        self.total = 0

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        self.total += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        span = min(self.window_s, max(now - self._start, 1e-9))
        return len(self._times) / span

    def seconds_since_last(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        return None if not self._times else now - self._times[-1]


class Percentiles:
    """Last ``size`` samples; p50/p95/max on demand."""

    def __init__(self, size: int = 300) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def extend(self, values: Iterable[float]) -> None:
        self._values.extend(float(v) for v in values)

    def __len__(self) -> int:
        return len(self._values)

    def summary(self) -> dict[str, float]:
        if not self._values:
            return {}
        a = np.asarray(self._values)
        return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "max": float(a.max())}


class ExitHistogram:
    """How often inference stopped at each exit layer (the early-exit depth)."""

    def __init__(self, num_layers: int = 0) -> None:
        self.num_layers = int(num_layers)
        self.counts: Counter[int] = Counter()

    def add(self, exit_layer: int) -> None:
        self.counts[int(exit_layer)] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def mean_layers(self) -> float:
        n = self.total
        return sum(k * v for k, v in self.counts.items()) / n if n else 0.0

    def as_text(self) -> str:
        """Compact form for diagnostics: 'L1:12 L2:3 L4:40'."""
        return " ".join(f"L{k}:{self.counts[k]}" for k in sorted(self.counts)) or "-"

    def as_dict(self) -> dict[str, int]:
        return {str(k): int(self.counts[k]) for k in sorted(self.counts)}


class NodeStats:
    """All counters of one tracker node, guarded by one lock (callback + worker threads)."""

    def __init__(self, num_layers: int = 0, window_s: float = 5.0) -> None:
        self.lock = threading.Lock()
        self.input_rate = RateMeter(window_s)
        self.processed_rate = RateMeter(window_s)
        self.latency_ms = Percentiles()  # image stamp -> target published
        self.node_ms = Percentiles()  # frame received -> target published
        self.inference_ms = Percentiles()  # tracker.track() time
        # node time per frame beyond tracker.track(): conversion in the callback + message/publish in the worker
        self.overhead_ms = Percentiles()
        self.wait_ms = Percentiles()  # frame ready -> worker picks it up (waiting for the previous frame's inference)
        self.exits = ExitHistogram(num_layers)
        self.bad_inputs = 0
        self.last_bad_input = ""
        self.last_bad_input_time: float | None = None
        self.lost_frames = 0
        self.model_errors = 0  # frames whose network output was not finite (nothing published for them)
        self.last_model_error = ""
        self.last_model_error_time: float | None = None

    def model_error(self, reason: str) -> None:
        with self.lock:
            self.model_errors += 1
            self.last_model_error = reason
            self.last_model_error_time = time.monotonic()

    def bad_input(self, reason: str) -> None:
        with self.lock:
            self.bad_inputs += 1
            self.last_bad_input = reason
            self.last_bad_input_time = time.monotonic()
