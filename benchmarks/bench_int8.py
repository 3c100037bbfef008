"""int8 vs fp32 on this CPU: per-forward speed-up (interleaved) and tracked-box agreement on the 40-frame clip.

For each backend (torch, onnxruntime) the fp32 and int8 versions of the same
network are loaded side by side and timed *interleaved* in one process (the
forwards take turns, so load drift on a shared machine hits both alike); the
forward is full-depth inference through the backend interface
(``Backend.infer_to_exit(search, last)``). Then the product's Tracker follows
the 40-frame clip (``clip40.py``) with each, and the largest box-corner
difference int8 vs fp32 is reported.

    python benchmarks/bench_int8.py --arch ostrack256 --threads 2 --iters 8 [--json out.json]
    python benchmarks/bench_int8.py --model models/dytrack_small.safetensors --threads 2 --iters 40
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clip40 import make_clip, max_box_diff_px, track_clip  # noqa: E402

from dytrack_ros.bench import create_backend, time_interleaved  # noqa: E402
from dytrack_ros.runtime_options import RuntimeOptions  # noqa: E402

BACKENDS = ("torch", "onnxruntime")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--arch", help="registry architecture with random weights (seed 0), e.g. ostrack256")
    src.add_argument("--model", type=Path, help="model file, e.g. models/dytrack_small.safetensors")
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated (default: torch,onnxruntime)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=8, help="timed forwards per variant (default 8)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--frames", type=int, default=40, help="clip length for the box check (0: skip)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    results: dict = {"arch": args.arch, "model": str(args.model) if args.model else None, "threads": args.threads,
                     "iters": args.iters, "backends": {}}
    clip = make_clip(args.frames) if args.frames else None
    if clip:
        results["clip"] = clip[2]
    with tempfile.TemporaryDirectory(prefix="dytrack_int8_") as tmp:
        for name in args.backends.split(","):
            variants = {}
            for precision in ("fp32", "int8"):
                opts = RuntimeOptions(backend=name, precision=precision, threads=args.threads)
                t0 = time.perf_counter()
                variants[precision] = create_backend(args.model, args.arch, opts, Path(tmp) / precision)
                print(f"[{name}] loaded {precision} in {time.perf_counter() - t0:.1f} s", flush=True)
            cfg = variants["fp32"].config
            rng = np.random.default_rng(0)
            template = rng.standard_normal((1, 3, cfg.template_size, cfg.template_size)).astype(np.float32)
            search = rng.standard_normal((1, 3, cfg.search_size, cfg.search_size)).astype(np.float32)
            last = variants["fp32"].num_stages - 1
            for b in variants.values():
                b.set_template(template)
            outs = {p: b.infer_to_exit(search, last) for p, b in variants.items()}
            map_diff = float(np.max(np.abs(outs["fp32"].score_map - outs["int8"].score_map)))
            samples = time_interleaved([lambda b=b: b.infer_to_exit(search, last) for b in variants.values()],
                                       args.iters, args.warmup)
            med = {p: statistics.median(s) for p, s in zip(variants, samples)}
            entry = {"median_ms": med, "samples_ms": dict(zip(variants, samples)),
                     "speedup": med["fp32"] / med["int8"], "score_map_max_abs_diff": map_diff}
            print(f"[{name}] full-depth forward median: fp32 {med['fp32']:.1f} ms, int8 {med['int8']:.1f} ms, "
                  f"speed-up {entry['speedup']:.2f}x (score map max |diff| {map_diff:.4f})", flush=True)
            if clip:
                frames, gt, _ = clip
                boxes = {p: track_clip(b, frames, gt[0]) for p, b in variants.items()}
                entry["clip_max_box_diff_px"] = max_box_diff_px(boxes["fp32"], boxes["int8"])
                entry["clip_mean_box_diff_px"] = float(np.mean(np.abs(boxes["fp32"] - boxes["int8"])))
                print(f"[{name}] {len(frames)}-frame clip: max box-corner diff int8 vs fp32 "
                      f"{entry['clip_max_box_diff_px']:.2f} px", flush=True)
            results["backends"][name] = entry
            del variants
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
