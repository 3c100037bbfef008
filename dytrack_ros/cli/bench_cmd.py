"""``dytrack bench``: where the time of one tracking step goes, on this machine.

Measures, for one model and backend: preprocessing of the template and of the
search region on a synthetic frame (crop + resize + normalise), inference up
to each exit (the exit is *forced* by running the stages 0..k directly, so
every exit is measured even where its decisioner would not fire), the
postprocessing and the full ``Tracker.track()`` step. Reports mean / median /
p90 in ms. ``--arch`` benchmarks a registry architecture with random weights
(latency does not depend on the weights), so ViT-B numbers need no checkpoint.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

BACKENDS = ("torch", "onnxruntime")


@dataclass
class Row:
    """One measured quantity (milliseconds)."""

    name: str
    mean: float
    median: float
    p90: float
    n: int
    pct_of_full: float | None = None  # inference rows: share of the full-depth inference


@dataclass
class BenchResult:
    model: str
    arch: str
    backend: str
    device: str
    precision: str
    threads: int | None
    frame_size: tuple[int, int]  # (width, height)
    iters: int
    rows: list[Row] = field(default_factory=list)
    track_exit_layers: list[int] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    def row(self, name: str) -> Row:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(name: str, samples_ms: list[float]) -> Row:
    a = np.asarray(samples_ms, dtype=np.float64)
    return Row(name, float(a.mean()), float(np.median(a)), float(np.percentile(a, 90)), int(a.size))


def time_call(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return samples


def time_interleaved(fns: list[Callable[[], object]], iters: int, warmup: int) -> list[list[float]]:
    """Like :func:`time_call` for several functions, taking turns each iteration.

    On a shared machine the load drifts; taking turns makes the *ratios*
    between the functions (e.g. exit 0 vs full depth) robust to that drift.
    """
    samples: list[list[float]] = [[] for _ in fns]
    for i in range(warmup + iters):
        order = range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))
        for j in order:
            t0 = time.perf_counter()
            fns[j]()
            if i >= warmup:
                samples[j].append((time.perf_counter() - t0) * 1e3)
    return samples


def parse_frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"frame size must look like 640x480, got {text!r}") from exc
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"frame size too small: {text}")
    return w, h


def synthetic_frame(frame_size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Random RGB frame and a 100x80 target box at its centre (latency does not depend on the content)."""
    w, h = frame_size
    frame = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    bw, bh = min(100, w // 2), min(80, h // 2)
    return frame, ((w - bw) / 2, (h - bh) / 2, float(bw), float(bh))


# --- preprocessing -------------------------------------------------------------------

def preprocess_breakdown(frame: np.ndarray, box, factor: float, size: int, iters: int, warmup: int) -> dict[str, list[float]]:
    """ms of the steps of ``sample_target`` + ``normalize`` (crop/pad, resize, normalise) and of the real calls."""
    import cv2

    from ..tracker.preprocess import normalize, sample_target

    x, y, w, h = box
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    H, W = frame.shape[:2]
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    x2, y2 = x1 + crop_sz, y1 + crop_sz
    pads = (max(0, -y1), max(y2 - H + 1, 0), max(0, -x1), max(x2 - W + 1, 0))

    def crop():
        roi = frame[y1 + pads[0]:y2 - pads[1], x1 + pads[2]:x2 - pads[3]]
        return cv2.copyMakeBorder(roi, *pads, cv2.BORDER_CONSTANT) if any(pads) else roi

    padded = crop()
    patch = cv2.resize(padded, (size, size))
    return {
        "crop/pad": time_call(crop, iters, warmup),
        "resize": time_call(lambda: cv2.resize(padded, (size, size)), iters, warmup),
        "normalise": time_call(lambda: normalize(patch), iters, warmup),
        "total": time_call(lambda: normalize(sample_target(frame, box, factor, size).patch), iters, warmup),
    }


# --- backends ----------------------------------------------------------------------------

def create_backend(model: str | Path | None, arch: str | None, backend: str, threads: int | None, workdir: Path,
                   device: str = "cpu", precision: str = "fp32", seed: int = 0):
    """The backend to measure; random-weight ``arch`` models are exported to ``workdir`` for onnxruntime."""
    import torch

    from ..backends import BackendError, backend_for_path, load_backend, load_torch_model
    from ..model import create_model

    if threads:
        torch.set_num_threads(int(threads))
    if arch:
        torch.manual_seed(seed)
        net, name = create_model(arch).eval(), arch
    else:
        path = Path(model)
        if backend_for_path(path) == "onnxruntime":
            if backend == "torch":
                raise BackendError(f"{path.name} is an ONNX file: it can only be run with --backend onnxruntime")
            return _onnx_backend(path, device, precision, threads)
        if backend == "torch":
            return load_backend(path, "torch", device, precision)
        net, name = load_torch_model(path)
    if backend == "torch":
        from ..backends.torch_backend import TorchBackend

        return TorchBackend(net.eval(), device, precision, model_name=name)
    from ..backends.onnx_export import export_onnx

    paths = export_onnx(net, workdir / f"{name}.onnx", model_name=name)
    return _onnx_backend(paths[0], device, precision, threads)


def _onnx_backend(path: Path, device: str, precision: str, threads: int | None):
    from ..backends.onnx_backend import OnnxBackend

    return OnnxBackend(path, device, precision, intra_op_threads=threads)


def forced_exit_runner(backend, template: np.ndarray) -> tuple[int, Callable[[np.ndarray, int], object]]:
    """Sets ``template``; returns (number of exits, run(search, k) -> maps of exit k, stages 0..k executed)."""
    from ..backends.onnx_backend import OnnxBackend
    from ..backends.torch_backend import TorchBackend

    backend.set_template(template)
    if isinstance(backend, OnnxBackend):
        return len(backend.sessions), backend.infer_to_exit
    if not isinstance(backend, TorchBackend):
        raise TypeError(f"no forced-exit runner for backend {type(backend).__name__}")
    import torch

    m = backend.model
    if m.cfg.ce_loc or not m.cfg.has_exits:
        return 1, lambda search, k: backend.infer(search)
    z = torch.from_numpy(np.ascontiguousarray(template, np.float32)).to(backend.torch_device, backend.dtype)

    @torch.inference_mode()
    def run(search: np.ndarray, k: int):
        # what TorchBackend.infer does when exit k fires: stages 0..k, maps of exit k to host float32
        x = torch.from_numpy(np.ascontiguousarray(search, np.float32)).to(backend.torch_device, backend.dtype)
        tokens = m.embed(z, x)
        for j in range(k + 1):
            tokens, out = m.forward_stage(j, tokens)
        return [t.float().cpu().numpy() for t in (out.score_map, out.size_map, out.offset_map, out.iou_logit)]

    return m.num_stages, run


# --- the benchmark -------------------------------------------------------------------------

def bench_backend(backend, arch: str, frame_size: tuple[int, int] = (640, 480), iters: int = 20, warmup: int = 3,
                  threads: int | None = None, progress: bool = True) -> BenchResult:
    """Measure preprocessing, inference to every exit, postprocessing and the full track() step."""
    from tqdm import tqdm

    from ..tracker import Tracker
    from ..tracker.preprocess import normalize, sample_target

    cfg = backend.config
    frame, box = synthetic_frame(frame_size)
    result = BenchResult(backend.model_name, arch, backend.name, backend.device, backend.precision, threads,
                         tuple(frame_size), iters, environment=environment())
    template = normalize(sample_target(frame, box, cfg.template_factor, cfg.template_size).patch)
    search = normalize(sample_target(frame, box, cfg.search_factor, cfg.search_size).patch)
    n_exits, run = forced_exit_runner(backend, template)
    steps = tqdm(total=n_exits + 2, desc=f"bench {arch} [{backend.name}]", disable=not progress, leave=False)
    pre_iters = max(iters, 50)
    for what, factor, size in (("template", cfg.template_factor, cfg.template_size),
                               ("search", cfg.search_factor, cfg.search_size)):
        parts = preprocess_breakdown(frame, box, factor, size, pre_iters, warmup)
        result.rows.append(summarize(f"preprocess {what} (crop+resize+normalise)", parts.pop("total")))
        for part, samples in parts.items():
            result.rows.append(summarize(f"  {what}: {part}", samples))
    steps.update()

    layers = list(cfg.exit_layers) if cfg.has_exits else [cfg.depth]
    per_exit = time_interleaved([lambda k=k: run(search, k) for k in range(n_exits)], iters, warmup)
    exit_rows = [summarize(f"inference to exit {k} (layer {layers[k]}/{cfg.depth})", samples)
                 for k, samples in enumerate(per_exit)]
    steps.update(n_exits)
    full = exit_rows[-1].median
    for r in exit_rows:
        r.pct_of_full = 100.0 * r.median / full
    result.rows += exit_rows

    tracker = Tracker(backend)
    track_samples, parts, exits = [], {"preprocess": [], "inference": [], "postprocess": []}, []
    for i in range(warmup + iters):
        tracker.initialize(frame, box)  # same search crop every step
        t0 = time.perf_counter()
        res = tracker.track(frame)
        dt = (time.perf_counter() - t0) * 1e3
        if i >= warmup:
            track_samples.append(dt)
            exits.append(res.exit_layer)
            for key in parts:
                parts[key].append(res.timings[key])
    result.rows.append(summarize("postprocess (decode+map back+clip)", parts["postprocess"]))
    result.rows.append(summarize("track() step", track_samples))
    result.rows.append(summarize("  track(): inference", parts["inference"]))
    result.track_exit_layers = exits
    steps.update()
    steps.close()
    return result


def environment() -> dict[str, str]:
    import onnxruntime
    import torch

    return {"python": platform.python_version(), "machine": platform.machine(), "cpu_count": str(os.cpu_count()),
            "torch": torch.__version__, "torch_threads": str(torch.get_num_threads()),
            "onnxruntime": onnxruntime.__version__, "processor": platform.processor() or platform.machine()}


def format_result(r: BenchResult) -> str:
    head = (f"{r.model} [{r.backend}, {r.device} {r.precision}, threads {r.threads or 'default'}] "
            f"frame {r.frame_size[0]}x{r.frame_size[1]}, {r.iters} iters; times in ms")
    lines = [head, f"{'':44s}{'mean':>8s}{'median':>8s}{'p90':>8s}{'% full':>8s}"]
    for row in r.rows:
        pct = f"{row.pct_of_full:7.0f}%" if row.pct_of_full is not None else ""
        lines.append(f"{row.name:44s}{row.mean:8.2f}{row.median:8.2f}{row.p90:8.2f}{pct}")
    if r.track_exit_layers:
        counts = {layer: r.track_exit_layers.count(layer) for layer in sorted(set(r.track_exit_layers))}
        lines.append(f"track() exit layers (default thresholds): {counts}")
    return "\n".join(lines)


# --- CLI -----------------------------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="per-stage latency of a model on this machine",
                              description=__doc__.split("\n\n")[1].replace("\n", " "))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="model file (.safetensors, official checkpoint or .onnx)")
    src.add_argument("--arch", help="registry architecture with random weights (e.g. ostrack256, ct4, dytrack256, "
                                    "dytrack_small); see 'dytrack models'")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="default: from the model file suffix; torch for --arch")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda[:N]; onnxruntime also tensorrt[:N]")
    p.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "bf16"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch / onnxruntime (default: runtime's)")
    p.add_argument("--iters", type=int, default=20, help="timed repetitions per measurement (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed repetitions first (default 3)")
    p.add_argument("--frame-size", type=parse_frame_size, default=(640, 480), help="WxH of the synthetic frame")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError, backend_for_path
    from ..backends.onnx_export import OnnxExportError

    if args.iters < 1 or args.warmup < 0:
        print("dytrack bench: error: --iters must be >= 1 and --warmup >= 0", file=sys.stderr)
        return 2
    try:
        backend_name = args.backend or ("torch" if args.arch else backend_for_path(args.model))
        with tempfile.TemporaryDirectory(prefix="dytrack_bench_") as tmp:
            backend = create_backend(args.model, args.arch, backend_name, args.threads, Path(tmp),
                                     args.device, args.precision)
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
