"""``dytrack bench``: per-stage latency of a model on this machine (the measuring lives in :mod:`dytrack_ros.bench`).

Measures preprocessing (and each of its steps), inference up to each exit
(forced, so every exit is measured), postprocessing and the full ``track()``
step; mean / median / p90 in ms. ``--arch`` benchmarks a registry architecture
with random weights (latency does not depend on the weights), so ViT-B numbers
need no checkpoint.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..backends import available_backends
from ..runtime_options import AUTO_BACKEND, PRECISIONS, RuntimeOptions


def parse_frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"frame size must look like 640x480, got {text!r}") from exc
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"frame size too small: {text}")
    return w, h


# --- CLI -----------------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="per-stage latency of a model on this machine",
                              description=__doc__.split("\n\n")[1].replace("\n", " "))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="model file (.safetensors, official checkpoint or .onnx)")
    src.add_argument("--arch", help="registry architecture with random weights (e.g. ostrack256, ct4, dytrack256, "
                                    "dytrack_small); see 'dytrack models'")
    d = RuntimeOptions()
    p.add_argument("--backend", choices=[AUTO_BACKEND] + available_backends(), default=d.backend,
                   help="default: from the model file suffix; torch for --arch")
    p.add_argument("--device", default=d.device, help="cpu (default), cuda[:N]; onnxruntime also tensorrt[:N]")
    p.add_argument("--precision", default=d.precision, choices=PRECISIONS)
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for inference (default: the runtime's, one per core)")
    p.add_argument("--iters", type=int, default=20, help="timed repetitions per measurement (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (default 3)")
    p.add_argument("--frame-size", type=parse_frame_size, default=(640, 480), help="WxH of the synthetic frame")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError
    from ..backends.onnx_export import OnnxExportError
    from ..bench import bench_backend, create_backend, format_result

    if args.iters < 1 or args.warmup < 0:
        print("dytrack bench: error: --iters must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    try:
        options = RuntimeOptions().replace(backend=args.backend, device=args.device, precision=args.precision,
                                           threads=args.threads)
        with tempfile.TemporaryDirectory(prefix="dytrack_bench_") as tmp:
            backend = create_backend(args.model, args.arch, options, Path(tmp))
            arch = args.arch or backend.config.name
            result = bench_backend(backend, arch, args.frame_size, args.iters, args.warmup, args.threads)
    except (BackendError, OnnxExportError, KeyError, ValueError, OSError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() adds quotes
        print(f"dytrack bench: error: {msg}", file=sys.stderr)
        return 1
    print(format_result(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
        print(f"wrote {args.json}")
    return 0
