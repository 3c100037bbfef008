"""Evaluation-runner overhead per frame beyond the tracker itself, for 640x480 JPEG sequences.

Runs the real runner (``run_sequence``: each frame decoded between tracker
calls, per-frame timing, result files written at the end) with
- a no-op tracker: wall time per frame = the whole runner cost (decode + bookkeeping + writing);
- a tracker that waits 20 ms per frame (like inference, it releases the GIL):
  overhead = wall - tracker time, i.e. what the runner adds on the critical
  path (decoding included: it never overlaps the timed tracker call).
Also prints the bare cost of decoding one frame: it is on the critical path by
design (a decoder beside the timed tracker would inflate the tracker's times).
Target: <= 1 ms per frame beyond that decode.

    python benchmarks/bench_eval_overhead.py [--frames 150] [--sequences 2]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from dytrack_ros.data import load_dataset
from dytrack_ros.data.synth import generate_dataset
from dytrack_ros.eval.runner import NullEvalTracker, read_frame, run_sequence

BUDGET_MS = 1.0


class SleepTracker(NullEvalTracker):
    """A stand-in tracker that spends a fixed time per frame without using the CPU."""

    def __init__(self, ms: float) -> None:
        super().__init__()
        self.s = ms / 1000.0

    def initialize(self, frame, box) -> None:
        super().initialize(frame, box)
        time.sleep(self.s)

    def track(self, frame):
        time.sleep(self.s)
        return super().track(frame)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--sequences", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        generate_dataset(root, args.sequences, "medium", seed=0, frames=args.frames, size=(640, 480), progress=False)
        seqs = load_dataset("got10k", root, "val")
        frames = [p for s in seqs for p in s.frames]
        for p in frames[:20]:
            read_frame(p, "rgb")
        t0 = time.perf_counter()
        for p in frames:
            read_frame(p, "rgb")
        decode_ms = (time.perf_counter() - t0) / len(frames) * 1e3
        rows = []
        cases = [("no-op", NullEvalTracker()), ("20 ms", SleepTracker(20.0))]
        for i, (label, tracker) in enumerate(cases):
            per_rep = []
            for rep in range(args.repeats):
                out = Path(tmp) / f"res_{i}_{rep}"
                out.mkdir()
                runs = [run_sequence(tracker, s, out) for s in seqs]
                n = sum(r.frames for r in runs)
                per_rep.append(sum(r.wall_s - r.tracker_s for r in runs) / n * 1e3)
            rows.append((label, statistics.median(per_rep), min(per_rep)))
    print(f"{len(frames)} frames of 640x480 JPEG (q90), {args.repeats} repeats, 1 OpenCV thread")
    print(f"bare cv2.imread (RGB) per frame: {decode_ms:.2f} ms")
    print(f"{'tracker':20s}{'overhead ms/frame (median)':>28s}{'best':>8s}{'- decode':>10s}{'budget':>8s}")
    for label, med, best in rows:
        beyond = med - decode_ms
        print(f"{label:20s}{med:28.3f}{best:8.3f}{beyond:10.3f}{BUDGET_MS:8.1f}  "
              f"{'OK' if beyond <= BUDGET_MS else 'over'}")


if __name__ == "__main__":
    main()
