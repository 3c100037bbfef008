"""Record what a tracker node produced: annotated video + summary (rates, latency, exit depth).

Subscribes to ``<tracker>/target``, ``<tracker>/debug_image``, the camera topic
(``image``, to count input frames) and ``/diagnostics``. Writes on shutdown
(SIGINT) into ``output_dir``: ``tracked.mp4`` (the node's debug images),
``targets.csv`` (one row per processed frame), ``summary.json`` and
``exit_depth.png`` (how deep inference went per frame).
"""
from __future__ import annotations

import csv
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..msg import TrackedTarget
from ..video import VideoWriter
from .image_conversion import ImageConversionError, image_to_rgb
from .node_stats import ExitHistogram, Percentiles

STATUS_NAMES = {TrackedTarget.STATUS_IDLE: "idle", TrackedTarget.STATUS_TRACKING: "tracking",
                TrackedTarget.STATUS_UNCERTAIN: "uncertain", TrackedTarget.STATUS_LOST: "lost"}


def summarise(frame_times: list[float], targets: list[tuple[float, TrackedTarget]],
              diagnostics: dict[str, str] | None = None) -> dict:
    """Numbers of one run from receive times of camera frames and of targets (monotonic seconds)."""
    active = [(t, m) for t, m in targets if m.status != TrackedTarget.STATUS_IDLE]

    def rate(times: list[float]) -> float:
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    lat, inf = Percentiles(len(active) + 1), Percentiles(len(active) + 1)
    exits = ExitHistogram(active[0][1].num_layers if active else 0)
    for _, m in active:
        lat.add(m.latency_ms)
        inf.add(m.inference_ms)
        exits.add(m.exit_layer)
    summary = {
        "camera_frames": len(frame_times),
        "processed_frames": len(active),
        "input_rate_hz": round(rate(frame_times), 2),
        "processed_rate_hz": round(rate([t for t, _ in active]), 2),
        "latency_ms": {k: round(v, 2) for k, v in lat.summary().items()},
        "inference_ms": {k: round(v, 2) for k, v in inf.summary().items()},
        "exit_histogram": exits.as_dict(),
        "mean_executed_layers": round(exits.mean_layers(), 3),
        "total_layers": exits.num_layers,
        "status_counts": dict(Counter(STATUS_NAMES.get(m.status, "?") for _, m in active)),
        "track_ids": sorted({int(m.track_id) for _, m in active}),
    }
    if diagnostics:
        summary["tracker_diagnostics"] = diagnostics
    return summary


def plot_exit_histogram(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = summary["exit_histogram"]
    layers = list(range(1, max(summary["total_layers"], 1) + 1))
    counts = [hist.get(str(layer), 0) for layer in layers]
    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.bar(layers, counts, color="#3a7")
    ax.set_xlabel("exit layer (layers executed)")
    ax.set_ylabel("frames")
    ax.set_xticks(layers)
    ax.set_title(f"early-exit depth: mean {summary['mean_executed_layers']:.2f} of {summary['total_layers']} layers")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class TargetRecorder(Node):
    def __init__(self) -> None:
        super().__init__("target_recorder")
        self.output_dir = Path(str(self.declare_parameter("output_dir", "runs/demo").value))
        tracker = str(self.declare_parameter("tracker", "/tracker_node").value).rstrip("/")
        self.video_fps = float(self.declare_parameter("video_fps", 30.0).value)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.writer = VideoWriter(self.output_dir / "tracked.mp4", self.video_fps)
        self.frame_times: list[float] = []
        self.targets: list[tuple[float, TrackedTarget]] = []
        self.diagnostics: dict[str, str] | None = None
        self.video_frames = 0
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
        sensor = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(TrackedTarget, f"{tracker}/target", self._on_target, reliable)
        self.create_subscription(Image, f"{tracker}/debug_image", self._on_debug, reliable)
        self.create_subscription(Image, "image", lambda _m: self.frame_times.append(time.monotonic()), sensor)
        self._diag_name = f"{tracker.rsplit('/', 1)[-1]}: tracker"
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, reliable)

    def _on_target(self, msg: TrackedTarget) -> None:
        self.targets.append((time.monotonic(), msg))

    def _on_debug(self, msg: Image) -> None:
        try:
            self.writer.write(np.ascontiguousarray(image_to_rgb(msg)))
            self.video_frames += 1
        except ImageConversionError as exc:
            self.get_logger().warning(f"debug image skipped: {exc}", throttle_duration_sec=5.0)

    def _on_diag(self, msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name == self._diag_name:
                self.diagnostics = {kv.key: kv.value for kv in st.values}

    def finish(self) -> dict:
        self.writer.close()
        summary = summarise(self.frame_times, self.targets, self.diagnostics)
        summary["video"] = "tracked.mp4" if self.video_frames else None
        summary["video_frames"] = self.video_frames
        with open(self.output_dir / "targets.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["stamp", "track_id", "status", "score", "center_x", "center_y", "size_x", "size_y",
                        "exit_layer", "num_layers", "inference_ms", "latency_ms"])
            for _, m in self.targets:
                w.writerow([f"{m.header.stamp.sec}.{m.header.stamp.nanosec:09d}", m.track_id,
                            STATUS_NAMES.get(m.status, "?"), f"{m.score:.4f}", f"{m.center_x:.2f}",
                            f"{m.center_y:.2f}", f"{m.size_x:.2f}", f"{m.size_y:.2f}", m.exit_layer, m.num_layers,
                            f"{m.inference_ms:.2f}", f"{m.latency_ms:.2f}"])
        (self.output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if summary["processed_frames"]:
            plot_exit_histogram(summary, self.output_dir / "exit_depth.png")
        return summary


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = TargetRecorder()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        summary = node.finish()
        print(json.dumps({k: v for k, v in summary.items() if k != "tracker_diagnostics"}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
