"""Synthetic-sequence generation speed (frames per second) on this machine, per preset.

Two numbers per preset: rendering in memory (``generate_sequence``) and the
full ``dytrack synth`` path (render + JPEG q90 encode + write, GOT-10k layout,
one process). The photo library is loaded once before timing (about 0.4 s per
process). Target: hundreds of frames per second.

    python benchmarks/bench_synth.py [--frames 200] [--sequences 3] [--size 640x480]
"""
from __future__ import annotations

import argparse
import tempfile
import time

from dytrack_ros.data.synth import PRESETS, generate_dataset, generate_sequence, load_photo_library


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200, help="frames per sequence")
    ap.add_argument("--sequences", type=int, default=3, help="sequences per preset")
    ap.add_argument("--size", default="640x480", help="frame size WxH")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    load_photo_library()
    print(f"{args.sequences} sequences x {args.frames} frames at {size[0]}x{size[1]}, one process")
    print(f"{'preset':8s}{'render fps':>12s}{'render+JPEG+write fps':>24s}{'ms/frame (write)':>18s}")
    for name in PRESETS:
        t0 = time.perf_counter()
        for i in range(args.sequences):
            generate_sequence(i, name, seed=0, frames=args.frames, size=size)
        render_fps = args.sequences * args.frames / (time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate_dataset(tmp, args.sequences, name, seed=0, frames=args.frames, size=size, progress=False)
            dt = time.perf_counter() - t0
        write_fps = args.sequences * args.frames / dt
        print(f"{name:8s}{render_fps:12.0f}{write_fps:24.0f}{1000 / write_fps:18.2f}")


if __name__ == "__main__":
    main()
