"""One-shot check and timing of every GPU path, for a machine with an NVIDIA GPU (run by gpu_check.sh).

Sections (each one passes, fails with its error, or is skipped with the reason; one failing does not
stop the others; the whole run stops starting new sections when --budget-s is used up):

1. environment: torch/CUDA/GPU, ONNX Runtime providers, TensorRT version;
2. clip boxes: the shipped model follows the 40-frame clip (clip40.py) at full depth on the CPU (fp32
   reference) and on CUDA fp32/fp16, eager and with CUDA graphs; largest box-corner difference vs the
   CPU (fp32 <= 0.5 px, fp16 <= 2 px);
3. latency (CUDA events): ViT-B OSTrack-256 fp16 batch-1 forward with graphs (target <= 1.0 ms),
   DyTrack-256 per-exit latency fp16 with graphs (exit after layer 2 target <= 0.3 ms), track() end to
   end at 640x480 (target <= 2 ms), plus fp32 and eager for reference;
4. ONNX Runtime CUDAExecutionProvider vs CPU on the shipped model (skipped without onnxruntime-gpu);
5. 50 mixed-precision training steps each of the DyTrack and CompressTracker objectives on a small
   model (the public ``dytrack_ros.train.train`` with an in-memory pair dataset);
6. one DistributedDataParallel step in a single process over NCCL; gradients equal to the plain step;
7. TensorRT fp32/fp16 engines of the shipped model vs ONNX Runtime CPU, per-exit latency (skipped
   without tensorrt; last, because engine builds take the longest).

Prints one table and writes JSON (--out). ``--cpu-dry-run`` runs the same code on the CPU with tiny
sizes (CUDA-only parts skipped, gloo instead of NCCL) so the table/JSON code, the clip and the
training/DDP plumbing are exercised anywhere; it is what the test suite runs.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parent))  # the source tree, used only when the package is not installed

from clip40 import make_clip, max_box_diff_px, track_clip  # noqa: E402

SHIPPED = HERE.parent / "models" / "dytrack_small.safetensors"
TARGETS = {"vitb_fp16_graph_forward_ms": 1.0, "dytrack256_exit_layer2_ms": 0.3, "track_640x480_ms": 2.0,
           "fp32_box_px": 0.5, "fp16_box_px": 2.0}


@dataclass
class Check:
    section: str
    name: str
    status: str  # ok, FAIL, skip
    value: float | None = None
    unit: str = ""
    target: str = ""
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def add(self, *args, **kwargs) -> Check:
        c = Check(*args, **kwargs)
        self.checks.append(c)
        return c

    def measured(self, section: str, name: str, value: float, unit: str, limit: float | None = None,
                 detail: str = "") -> Check:
        ok = limit is None or value <= limit
        return self.add(section, name, "ok" if ok else "FAIL", float(value), unit,
                        "" if limit is None else f"<= {limit:g}", detail)

    def table(self) -> str:
        lines = [f"{'section':10s} {'check':72s} {'status':6s} {'value':>10s} {'unit':5s} {'target':9s} detail"]
        for c in self.checks:
            v = "" if c.value is None else f"{c.value:10.3f}"
            lines.append(f"{c.section:10s} {c.name:72s} {c.status:6s} {v:>10s} {c.unit:5s} {c.target:9s} {c.detail}")
        n_fail = sum(c.status == "FAIL" for c in self.checks)
        lines.append(f"{len(self.checks)} checks: {sum(c.status == 'ok' for c in self.checks)} ok, {n_fail} failed, "
                     f"{sum(c.status == 'skip' for c in self.checks)} skipped; {time.time() - self.started:.0f} s")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"env": self.env, "checks": [asdict(c) for c in self.checks], "targets": TARGETS,
                "seconds": time.time() - self.started}


# --- helpers ---------------------------------------------------------------------------------------

def cuda_event_ms(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
    """Per-call GPU time of ``fn`` measured with CUDA events (synchronised after each call)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end))
    return out


def wall_ms(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def med(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _net(arch_or_path: str | Path, seed: int = 0):
    import torch

    from dytrack_ros.model import create_model
    from dytrack_ros.model_io.model_file import load_model_file

    if str(arch_or_path).endswith(".safetensors"):
        return load_model_file(arch_or_path)[0].eval()
    torch.manual_seed(seed)
    return create_model(str(arch_or_path)).eval()


def _torch_backend(net, device: str, precision: str, graphs: bool | None):
    import copy

    from dytrack_ros.backends.torch_backend import TorchBackend
    from dytrack_ros.runtime_options import RuntimeOptions

    b = TorchBackend(copy.deepcopy(net), RuntimeOptions(device=device, precision=precision), cuda_graphs=graphs)
    b.set_exit_thresholds(1.0)  # full depth: the box checks compare numerics, not exit decisions
    return b


# --- sections --------------------------------------------------------------------------------------

def section_env(r: Report, device: str) -> None:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cuda_build": str(torch.version.cuda),
           "cuda_available": torch.cuda.is_available(), "device": device}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, compute_capability=f"{p.major}.{p.minor}",
                   gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   cudnn=str(torch.backends.cudnn.version()), nccl=str(torch.cuda.nccl.version())
                   if hasattr(torch.cuda, "nccl") else "",
                   # TF32 rounds fp32 matmuls/convs to a 10-bit mantissa: it bounds how close CUDA fp32 boxes can be
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    try:
        import onnxruntime as ort

        env.update(onnxruntime=ort.__version__, ort_providers=ort.get_available_providers())
    except ImportError:
        env["onnxruntime"] = None
    try:
        import tensorrt as trt

        env["tensorrt"] = getattr(trt, "__version__", "?")
    except ImportError:
        env["tensorrt"] = None
    r.env = env
    r.add("env", "torch / CUDA / GPU", "ok", detail=f"torch {env['torch']} cuda {env['cuda_build']} "
          f"gpu {env.get('gpu', '-')} cc {env.get('compute_capability', '-')}")


def section_clip(r: Report, device: str, frames: int, dry: bool) -> None:
    clip_frames, gt, source = make_clip(frames)
    r.add("clip", f"{len(clip_frames)}-frame clip", "ok", detail=source)
    net = _net(SHIPPED)
    ref = track_clip(_torch_backend(net, "cpu", "fp32", False), clip_frames, gt[0])
    r.measured("clip", "CPU fp32 reference: mean |box - gt| (full depth)",
               float(np.mean(np.abs(ref - gt[1:]))), "px", detail="sanity: the model follows the clip")
    if dry:
        again = track_clip(_torch_backend(net, "cpu", "fp32", False), clip_frames, gt[0])
        r.measured("clip", "CPU fp32 vs CPU fp32 (dry run)", max_box_diff_px(ref, again), "px",
                   TARGETS["fp32_box_px"])
        r.add("clip", "CUDA fp32/fp16 eager/graphs vs CPU", "skip", detail="dry run: no CUDA")
        return
    for precision in ("fp32", "fp16"):
        for graphs in (False, True):
            boxes = track_clip(_torch_backend(net, device, precision, graphs), clip_frames, gt[0])
            r.measured("clip", f"CUDA {precision} {'graphs' if graphs else 'eager'} vs CPU fp32: max corner diff",
                       max_box_diff_px(ref, boxes), "px", TARGETS[f"{precision}_box_px"])


def _latency_rows(r: Report, backend, label: str, iters: int, use_events: bool, limits: dict[int, float]) -> None:
    cfg = backend.config
    rng = np.random.default_rng(0)
    backend.set_template(rng.standard_normal((1, 3, cfg.template_size, cfg.template_size)).astype(np.float32))
    search = rng.standard_normal((1, 3, cfg.search_size, cfg.search_size)).astype(np.float32)
    layers = list(cfg.exit_layers) if cfg.has_exits else [cfg.depth]
    for k in range(backend.num_stages):
        fn = lambda k=k: backend.infer_to_exit(search, k)  # noqa: E731
        ms = med(cuda_event_ms(fn, iters, 5) if use_events else wall_ms(fn, iters, 2))
        r.measured("latency", f"{label}: exit after layer {layers[k]} ({'events' if use_events else 'wall'})", ms,
                   "ms", limits.get(layers[k]))


def section_latency(r: Report, device: str, dry: bool, iters: int) -> None:
    from dytrack_ros.bench import synthetic_frame
    from dytrack_ros.tracker import Tracker

    archs = ("dytrack_tiny",) if dry else ("ostrack256", "dytrack256")
    precisions = ("fp32",) if dry else ("fp16", "fp32")
    for arch in archs:
        net = _net(arch)
        for precision in precisions:
            for graphs in ((False,) if dry else (True, False)):
                b = _torch_backend(net, "cpu" if dry else device, precision, graphs if not dry else False)
                label = f"{arch} torch {precision} {'graphs' if graphs else 'eager'}"
                limits = {}
                if precision == "fp16" and graphs:
                    limits = ({12: TARGETS["vitb_fp16_graph_forward_ms"]} if arch == "ostrack256"
                              else {2: TARGETS["dytrack256_exit_layer2_ms"]})
                _latency_rows(r, b, label, iters, not dry, limits)
                if arch == archs[-1] and precision == precisions[0] and graphs == (not dry):
                    b.set_exit_thresholds(1.0)
                    frame, box = synthetic_frame((640, 480))
                    tracker = Tracker(b)

                    def step():
                        tracker.initialize(frame, box)
                        return tracker.track(frame)

                    step()
                    track = []
                    for _ in range(iters):
                        tracker.initialize(frame, box)
                        t0 = time.perf_counter()
                        tracker.track(frame)
                        track.append((time.perf_counter() - t0) * 1e3)
                    r.measured("latency", f"{label}: track() 640x480 end to end, full depth (wall)", med(track),
                               "ms", None if dry else TARGETS["track_640x480_ms"])


def _ort_compare(r: Report, section: str, ref_backend, other, label: str, tol: float, iters: int,
                 use_events: bool) -> None:
    rng = np.random.default_rng(1)
    cfg = ref_backend.config
    t = rng.standard_normal((1, 3, cfg.template_size, cfg.template_size)).astype(np.float32)
    s = rng.standard_normal((1, 3, cfg.search_size, cfg.search_size)).astype(np.float32)
    ref_backend.set_template(t)
    other.set_template(t)
    diffs = [float(np.max(np.abs(a.score_map - b.score_map))) for a, b in zip(ref_backend.infer_all(s),
                                                                              other.infer_all(s))]
    r.measured(section, f"{label}: max |score map - ORT CPU| over exits", max(diffs), "", tol)
    _latency_rows(r, other, label, iters, use_events, {})


def section_ort(r: Report, device: str, dry: bool, iters: int, workdir: Path) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        r.add("ort", "ONNX Runtime CUDA provider", "skip", detail="onnxruntime not installed")
        return
    from dytrack_ros.backends import load_backend
    from dytrack_ros.backends.onnx_export import export_onnx

    onnx = export_onnx(_net(SHIPPED), workdir / "dytrack_small.onnx")[0]
    cpu = load_backend(onnx)
    if dry or "CUDAExecutionProvider" not in ort.get_available_providers():
        r.add("ort", "ONNX Runtime CUDA provider", "skip",
              detail="dry run" if dry else f"providers {ort.get_available_providers()} (install onnxruntime-gpu)")
        _latency_rows(r, cpu, "dytrack_small ORT CPU", iters, False, {})
        return
    _ort_compare(r, "ort", cpu, load_backend(onnx, device=device), "dytrack_small ORT CUDA fp32", 1e-3, iters, True)


def section_tensorrt(r: Report, device: str, dry: bool, iters: int, workdir: Path) -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        r.add("tensorrt", "TensorRT engines", "skip", detail="tensorrt not importable")
        return
    if dry:
        r.add("tensorrt", "TensorRT engines", "skip", detail="dry run: no CUDA")
        return
    from dytrack_ros.backends import load_backend
    from dytrack_ros.backends.onnx_export import export_onnx
    from dytrack_ros.backends.tensorrt_backend import TensorRTBackend, TrtBuildOptions, fp16_onnx_path
    from dytrack_ros.runtime_options import RuntimeOptions

    net = _net(SHIPPED)
    onnx = export_onnx(net, workdir / "trt" / "dytrack_small.onnx")[0]
    export_onnx(net, fp16_onnx_path(onnx), precision="fp16")
    cpu = load_backend(onnx)
    for precision, tol in (("fp32", 2e-3), ("fp16", 3e-2)):
        t0 = time.perf_counter()
        b = TensorRTBackend(onnx, RuntimeOptions(backend="tensorrt", device=device, precision=precision),
                            TrtBuildOptions(cache_dir=str(workdir / "trt" / "cache")))
        r.add("tensorrt", f"build+load {precision} engines", "ok", time.perf_counter() - t0, "s",
              detail=f"TensorRT {b.trt_version}")
        _ort_compare(r, "tensorrt", cpu, b, f"dytrack_small TensorRT {precision}", tol, iters, True)


class _PairData:
    """In-memory training pairs with exact boxes: a bright square on noise (the batch layout of PairDataset)."""

    def __init__(self, model_cfg, n: int) -> None:
        self.cfg, self.n = model_cfg, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        import torch

        from dytrack_ros.train.losses import gaussian_heatmap

        _, index = key if isinstance(key, tuple) else (0, int(key))
        rng = np.random.default_rng(int(index))
        c = self.cfg

        def image(size):
            img = rng.standard_normal((3, size, size)).astype(np.float32) * 0.3
            w = rng.uniform(0.2, 0.4)
            x, y = rng.uniform(0.1, 0.9 - w, 2)
            a, b = int(x * size), int(y * size)
            img[:, b:b + int(w * size), a:a + int(w * size)] = 2.0
            return img, np.array([a / size, b / size, int(w * size) / size, int(w * size) / size], np.float32)

        t_img, t_box = image(c.template_size)
        x_img, x_box = image(c.search_size)
        return {"template": torch.from_numpy(t_img), "search": torch.from_numpy(x_img),
                "template_box": torch.from_numpy(t_box), "search_box": torch.from_numpy(x_box),
                "heatmap": torch.from_numpy(gaussian_heatmap(x_box, c.search_feat)), "source": torch.tensor(0)}


def section_train(r: Report, device: str, dry: bool, steps: int, workdir: Path) -> None:
    import torch

    from dytrack_ros.model import get_config
    from dytrack_ros.model_io.model_file import save_model_file
    from dytrack_ros.train.config import train_config_from_dict
    from dytrack_ros.train.trainer import train

    dev = "cpu" if dry else device
    batch = 4 if dry else 16
    teacher = workdir / "teacher.safetensors"
    save_model_file(_net("ostrack_tiny"), teacher)
    cases = {"dytrack": {"model": {"name": "dytrack_tiny"}},
             "compress": {"model": {"name": "ostrack_tiny"},
                          "compress": {"teacher": str(teacher), "student_depth": 2}}}
    for method, extra in cases.items():
        d = {"method": method, "seed": 0,
             "data": {"sources": [{"format": "got10k", "root": str(workdir), "split": "train"}],
                      "samples_per_epoch": steps * batch},
             "optim": {"batch_size": batch, "epochs": 1, "lr": 1e-4, "max_steps": steps, "amp": True},
             "log_every": max(1, steps), "checkpoint_every": 10 ** 6}
        d.update(extra)
        cfg = train_config_from_dict(d)
        arch = extra["model"]["name"]
        data = _PairData(get_config(arch), steps * batch)
        t0 = time.perf_counter()
        res = train(cfg, workdir / f"train_{method}", device=dev, dataset=data, progress=False)
        dt = time.perf_counter() - t0
        finite = all(np.isfinite(res.losses))
        if dev == "cpu":
            amp = "off (CPU)"
        else:
            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16+GradScaler"
        r.add("train", f"{method}: {res.step} AMP steps on {arch}", "ok" if finite and res.step == steps else "FAIL",
              dt, "s", detail=f"loss {res.losses[0]:.3f} -> {res.losses[-1]:.3f}; autocast {amp}")


def section_ddp(r: Report, device: str, dry: bool) -> None:
    import copy
    import socket

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    backend = "gloo" if dry else "nccl"
    if not dry and not dist.is_nccl_available():
        r.add("ddp", "single-process NCCL DDP step", "FAIL", detail="this torch build has no NCCL")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        dev = torch.device("cpu" if dry else device)
        net = _net("dytrack_tiny").train().to(dev)
        plain = copy.deepcopy(net)
        ddp = DDP(net, device_ids=None if dry else [dev.index or 0], find_unused_parameters=True)
        t = torch.randn(2, 3, 64, 64, device=dev)
        x = torch.randn(2, 3, 128, 128, device=dev)
        # one step through DDP.forward (its hooks all-reduce the gradients) and the same step without DDP
        ddp(t, x).score_map.mean().backward()
        plain(t, x).score_map.mean().backward()
        diff = max(float((a.grad - b.grad).abs().max()) for a, b in zip(net.parameters(), plain.parameters())
                   if a.grad is not None and b.grad is not None)
        r.measured("ddp", f"single-process {backend.upper()} DDP step: max |grad DDP - plain|", diff, "", 1e-5)
    finally:
        dist.destroy_process_group()


# --- main -------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON results (default gpu_check.json)")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--cpu-dry-run", action="store_true", help="CPU only, tiny sizes: exercises the plumbing")
    ap.add_argument("--budget-s", type=float, default=450.0, help="start no new section after this many seconds")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per latency (default 100; dry 3)")
    ap.add_argument("--frames", type=int, default=None, help="clip frames (default 40; dry 6)")
    ap.add_argument("--train-steps", type=int, default=None, help="training steps per objective (default 50; dry 2)")
    ap.add_argument("--only", default="", help="comma-separated sections to run (default: all)")
    args = ap.parse_args(argv)
    dry = args.cpu_dry_run
    iters = args.iters or (3 if dry else 100)
    frames = args.frames or (6 if dry else 40)
    steps = args.train_steps or (2 if dry else 50)
    import torch

    if not dry and not torch.cuda.is_available():
        print("gpu_check: torch.cuda.is_available() is False: no usable GPU (use --cpu-dry-run to test the "
              "script itself)", file=sys.stderr)
        return 2
    if dry:
        torch.set_num_threads(1)  # a dry run checks plumbing, often on a shared CPU: no OpenMP barrier stalls
    torch.manual_seed(0)
    r = Report()
    sections = {
        "env": lambda w: section_env(r, args.device),
        "clip": lambda w: section_clip(r, args.device, frames, dry),
        "latency": lambda w: section_latency(r, args.device, dry, iters),
        "ort": lambda w: section_ort(r, args.device, dry, min(iters, 50), w),
        "train": lambda w: section_train(r, args.device, dry, steps, w),
        "ddp": lambda w: section_ddp(r, args.device, dry),
        # last: engine builds take the longest, and a budget cut should fall on them
        "tensorrt": lambda w: section_tensorrt(r, args.device, dry, min(iters, 50), w),
    }
    only = [s for s in args.only.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name, run in sections.items():
            if only and name not in only:
                continue
            if time.time() - r.started > args.budget_s:
                r.add(name, "section", "skip", detail=f"time budget {args.budget_s:.0f} s used up")
                continue
            t0 = time.time()
            try:
                work = Path(tmp) / name
                work.mkdir()
                run(work)
            except Exception as exc:  # one broken path must not hide the others
                r.add(name, "section error", "FAIL", detail=f"{type(exc).__name__}: {exc}"[:300])
                traceback.print_exc()
            print(f"[gpu_check] {name} done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    print(r.table())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r.to_dict(), indent=1, default=str))
    print(f"wrote {args.out}")
    return 1 if any(c.status == "FAIL" for c in r.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
