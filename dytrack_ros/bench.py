"""Where the time of one tracking step goes, on this machine (the library behind ``dytrack bench``).

Measures, for one backend: the product's own preprocessing of the template and
of the search region on a synthetic frame (crop + resize + normalise, and each
step), inference up to each exit through the backend interface (the exit is
*forced* with ``Backend.infer_to_exit``, so every exit is measured even where its
decisioner would not fire), the postprocessing and the full ``Tracker.track()``
step. Reports mean / median / p90 in ms. ``benchmarks/`` scripts build on it.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .backends import Backend
from .runtime_options import AUTO_BACKEND, RuntimeOptions


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


def synthetic_frame(frame_size: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Random RGB frame and a 100x80 target box at its centre (latency does not depend on the content)."""
    w, h = frame_size
    frame = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    bw, bh = min(100, w // 2), min(80, h // 2)
    return frame, ((w - bw) / 2, (h - bh) / 2, float(bw), float(bh))


# --- preprocessing -------------------------------------------------------------------

def preprocess_breakdown(frame: np.ndarray, box, factor: float, size: int, iters: int,
                         warmup: int) -> dict[str, list[float]]:
    """ms of the product's own preprocessing steps (crop/pad, resize, normalise) and of the whole."""
    from .tracker.preprocess import crop_square, normalize, resize_square, sample_target

    region, _ = crop_square(frame, box, factor)
    patch = resize_square(region, size)
    return {
        "crop/pad": time_call(lambda: crop_square(frame, box, factor), iters, warmup),
        "resize": time_call(lambda: resize_square(region, size), iters, warmup),
        "normalise": time_call(lambda: normalize(patch), iters, warmup),
        "total": time_call(lambda: normalize(sample_target(frame, box, factor, size).patch), iters, warmup),
    }


# --- backends ----------------------------------------------------------------------------

def create_backend(model: str | Path | None, arch: str | None, options: RuntimeOptions, workdir: Path,
                   seed: int = 0) -> Backend:
    """The backend to measure, loaded like the product loads it (:func:`load_backend`).

    ``arch`` builds a registry architecture with random weights (latency does not depend on them); a
    network (``arch`` or a torch model file) measured on onnxruntime is exported to ``workdir`` first.
    """
    import torch

    from .backends import BackendError, backend_for_path, load_backend, load_torch_model
    from .model import create_model

    wanted = options.backend
    if arch:
        torch.manual_seed(seed)
        net, name = create_model(arch).eval(), arch
    else:
        path = Path(model)
        native = backend_for_path(path)
        if wanted in (AUTO_BACKEND, native):
            return load_backend(path, options)
        if native == "onnxruntime":
            raise BackendError(f"{path.name} is an ONNX file: it can only be run with --backend onnxruntime")
        net, name = load_torch_model(path)
    if wanted in (AUTO_BACKEND, "torch"):
        return load_backend(net, options.replace(backend="torch"))
    if wanted not in ("onnxruntime", "tensorrt"):
        raise BackendError(f"cannot benchmark a network on backend {wanted!r}")
    from .backends.onnx_export import export_onnx

    paths = export_onnx(net, workdir / f"{name}.onnx", model_name=name)
    if wanted == "tensorrt" and options.precision == "fp16":  # strongly typed TensorRT builds from the fp16 graph
        from .backends.tensorrt_backend import fp16_onnx_path

        export_onnx(net, fp16_onnx_path(paths[0]), model_name=name, precision="fp16")
    return load_backend(paths[0], options)


# --- the benchmark -------------------------------------------------------------------------

def bench_backend(backend: Backend, arch: str, frame_size: tuple[int, int] = (640, 480), iters: int = 20,
                  warmup: int = 3, threads: int | None = None, progress: bool = True) -> BenchResult:
    """Measure preprocessing, inference to every exit, postprocessing and the full track() step."""
    from tqdm import tqdm

    from .tracker import Tracker
    from .tracker.preprocess import normalize, sample_target

    cfg = backend.config
    frame, box = synthetic_frame(frame_size)
    result = BenchResult(backend.model_name, arch, backend.name, backend.device, backend.precision,
                         threads if threads is not None else backend.options.threads,
                         tuple(frame_size), iters, environment=environment())
    template = normalize(sample_target(frame, box, cfg.template_factor, cfg.template_size).patch)
    search = normalize(sample_target(frame, box, cfg.search_factor, cfg.search_size).patch)
    backend.set_template(template)
    n_exits = backend.num_stages
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
    per_exit = time_interleaved([lambda k=k: backend.infer_to_exit(search, k) for k in range(n_exits)], iters, warmup)
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
