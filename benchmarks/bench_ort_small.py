"""Why ONNX Runtime is slower than torch on the small model: per-variant timings, interleaved in one process.

The shipped model (dytrack_small, 81 tokens of width 192, 3 exit stages) is run at full depth by
the torch backend and by several ONNX Runtime configurations of the same per-stage export:

- ``ort backend``: the product's OnnxBackend (3 sessions, IO binding, ORT_ENABLE_ALL);
- ``ort run()``: the same sessions fed with numpy through ``InferenceSession.run`` (no IO binding);
- ``ort no-spin``: thread pool spinning off (``session.intra_op.allow_spinning = 0``);
- ``ort basic-opt`` / ``ort no-opt``: graph optimisation ORT_ENABLE_BASIC / ORT_DISABLE_ALL;
- ``ort per-stage call``: the fixed cost of one session call (a stage graph of one Identity-like node
  is not ours to build, so this is measured as the time of the smallest real stage minus its op time
  from ORT's own profiler).

It also reports ORT's profile of one forward: time per operator type, and the count of nodes (the
per-node dispatch cost is what dominates a model whose matrices are this small).

    python benchmarks/bench_ort_small.py --threads 1 --iters 60 [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from dytrack_ros.backends import load_backend
from dytrack_ros.backends.onnx_export import export_onnx
from dytrack_ros.bench import time_interleaved
from dytrack_ros.model_io.model_file import load_model_file
from dytrack_ros.runtime_options import RuntimeOptions

MODEL = Path(__file__).resolve().parent.parent / "models" / "dytrack_small.safetensors"


def _sessions(paths: list[Path], threads: int, level: str, spinning: bool, profile_dir: Path | None = None):
    import onnxruntime as ort

    out = []
    for p in paths:
        o = ort.SessionOptions()
        o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        o.intra_op_num_threads = threads
        o.inter_op_num_threads = 1
        o.log_severity_level = 3
        if not spinning:
            o.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if profile_dir is not None:
            o.enable_profiling = True
            o.profile_file_prefix = str(profile_dir / p.stem)
        out.append(ort.InferenceSession(str(p), sess_options=o, providers=["CPUExecutionProvider"]))
    return out


def _run_chain(sessions, template, search):
    tokens = None
    for k, s in enumerate(sessions):
        feed = {"template": template, "search": search} if k == 0 else {"tokens": tokens}
        outs = s.run(None, feed)
        tokens = outs[0] if k < len(sessions) - 1 else None


def _profile(paths, threads, template, search, workdir: Path) -> dict:
    sessions = _sessions(paths, threads, "ORT_ENABLE_ALL", True, workdir)
    for _ in range(20):
        _run_chain(sessions, template, search)
    per_op: dict[str, float] = defaultdict(float)
    per_stage_model_us, per_stage_nodes = [], []
    for s in sessions:
        events = json.loads(Path(s.end_profiling()).read_text())
        runs = [e for e in events if e.get("name") == "model_run"]
        nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
        n_runs = max(1, len(runs))
        per_stage_model_us.append(statistics.median([e["dur"] for e in runs[5:]]) if len(runs) > 5 else 0.0)
        per_stage_nodes.append(len({e["name"] for e in nodes}))
        for e in nodes:
            per_op[e["args"].get("op_name", "?")] += e["dur"] / n_runs
    return {"model_run_us_per_stage": per_stage_model_us, "kernel_us_per_forward_by_op":
            dict(sorted(per_op.items(), key=lambda kv: -kv[1])), "nodes_per_stage": per_stage_nodes,
            "kernel_us_per_forward": sum(per_op.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    net, _ = load_model_file(MODEL)
    cfg = net.cfg
    rng = np.random.default_rng(0)
    template = rng.standard_normal((1, 3, cfg.template_size, cfg.template_size)).astype(np.float32)
    search = rng.standard_normal((1, 3, cfg.search_size, cfg.search_size)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="ort_small_") as tmp:
        tmp = Path(tmp)
        paths = export_onnx(net, tmp / "m.onnx")
        t = args.threads
        torch_b = load_backend(MODEL, RuntimeOptions(threads=t))
        ort_b = load_backend(paths[0], RuntimeOptions(threads=t))
        for b in (torch_b, ort_b):
            b.set_template(template)
        last = torch_b.num_stages - 1
        variants = {
            "torch backend": lambda: torch_b.infer_to_exit(search, last),
            "ort backend (IO binding)": lambda: ort_b.infer_to_exit(search, last),
        }
        for name, level, spin in (("ort run() ENABLE_ALL", "ORT_ENABLE_ALL", True),
                                  ("ort run() no-spin", "ORT_ENABLE_ALL", False),
                                  ("ort run() ENABLE_BASIC", "ORT_ENABLE_BASIC", True),
                                  ("ort run() DISABLE_ALL", "ORT_DISABLE_ALL", True)):
            sess = _sessions(paths, t, level, spin)
            variants[name] = lambda s=sess: _run_chain(s, template, search)
        samples = time_interleaved(list(variants.values()), args.iters, args.warmup)
        result = {"threads": t, "iters": args.iters,
                  "median_ms": {n: statistics.median(s) for n, s in zip(variants, samples)}}
        result["profile"] = _profile(paths, t, template, search, tmp)
    base = result["median_ms"]["torch backend"]
    for name, ms in result["median_ms"].items():
        print(f"{name:28s} {ms:8.2f} ms  ({ms / base:4.2f}x torch)")
    prof = result["profile"]
    print(f"ORT profile: kernel time {prof['kernel_us_per_forward'] / 1e3:.2f} ms per forward; model_run per stage "
          f"{[round(u / 1e3, 2) for u in prof['model_run_us_per_stage']]} ms; "
          f"nodes per stage {prof['nodes_per_stage']}")
    for op, us in list(prof["kernel_us_per_forward_by_op"].items())[:10]:
        print(f"  {op:28s} {us / 1e3:7.3f} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
