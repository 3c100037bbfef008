"""Does ``dytrack eval``'s ``_time.txt`` measure the tracker alone? A CPU-bound stand-in tracker, timed two ways.

The stand-in runs torch matrix products on every thread it is given (like a
model's inference). Per repeat, interleaved to share the machine's load:
- alone: the same work timed in a bare loop, no frames read;
- runner: ``run_sequence`` over 640x480 JPEG frames, times read back from
  ``<seq>_time.txt`` (frame 1 = initialisation left out).
Ratio runner/alone near 1.0 means per-frame times are not inflated by the
runner's own work (frame decoding); a decoder running beside the tracker
pushes it above 1.

    python benchmarks/bench_eval_timing.py [--frames 100] [--threads 2] [--repeats 6]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch

from dytrack_ros.data import load_dataset
from dytrack_ros.data.synth import generate_dataset
from dytrack_ros.eval.runner import NullEvalTracker, run_sequence


class MatmulTracker(NullEvalTracker):
    """Returns the init box; spends its time in torch matrix products on all of torch's threads."""

    def __init__(self, size: int = 384, steps: int = 4) -> None:
        super().__init__()
        self.a = torch.randn(size, size)
        self.steps = steps

    def work(self) -> None:
        x = self.a
        for _ in range(self.steps):
            x = torch.tanh(x @ self.a)

    def initialize(self, frame, box) -> None:
        super().initialize(frame, box)
        self.work()

    def track(self, frame):
        self.work()
        return super().track(frame)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the stand-in tracker")
    ap.add_argument("--repeats", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        generate_dataset(root, 1, "medium", seed=0, frames=args.frames, size=(640, 480), progress=False)
        seq = load_dataset("got10k", root, "val")[0]
        tracker = MatmulTracker()
        for _ in range(20):
            tracker.work()
        alone, runner = [], []
        for rep in range(args.repeats):
            t = []
            for _ in range(len(seq) - 1):
                t0 = time.perf_counter()
                tracker.work()
                t.append(time.perf_counter() - t0)
            alone.append(statistics.mean(t) * 1e3)
            out = Path(tmp) / f"run{rep}"
            out.mkdir()
            run_sequence(tracker, seq, out)
            times = [float(v) for v in (out / f"{seq.name}_time.txt").read_text().split()][1:]
            runner.append(statistics.mean(times) * 1e3)
    a, r = statistics.median(alone), statistics.median(runner)
    print(f"{len(seq)} frames of 640x480 JPEG, torch threads {args.threads}, {args.repeats} interleaved repeats")
    print(f"tracker work alone    {a:8.2f} ms/frame (median; min {min(alone):.2f})")
    print(f"runner's _time.txt    {r:8.2f} ms/frame (median; min {min(runner):.2f})")
    print(f"ratio runner/alone    {r / a:8.3f}")


if __name__ == "__main__":
    main()
