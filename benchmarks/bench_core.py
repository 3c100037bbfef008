"""Latency of the core models on this machine, torch vs ONNX Runtime, in one table.

For each architecture (random weights: latency does not depend on them) and
backend, runs the ``dytrack bench`` measurement (``dytrack_ros.bench``):
preprocess of a 640x480 frame, inference to every exit, postprocess and the
full ``track()`` step. Then checks the two deployment targets:

- DyTrack-256 exit after layer 2 costs <= 30 % of the full 12-layer inference
  (both of its own full depth and of a plain OSTrack-256 forward);
- preprocessing one 640x480 frame (search crop + resize + normalise) <= 2 ms.

    python benchmarks/bench_core.py --iters 10 --threads 2 [--json out.json] [--plot out.png]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from dytrack_ros.backends.onnx_export import OnnxExportError
from dytrack_ros.bench import BenchResult, bench_backend, create_backend, format_result
from dytrack_ros.runtime_options import RuntimeOptions

ARCHS = ("ostrack256", "ostrack256_ce", "ct4", "dytrack256", "dytrack_small")
BACKENDS = ("torch", "onnxruntime")
EXIT2_BUDGET_PCT = 30.0
PREPROCESS_BUDGET_MS = 2.0


def exit_rows(r: BenchResult):
    return [row for row in r.rows if row.name.startswith("inference to exit")]


def summary_table(results: dict[tuple[str, str], BenchResult | str]) -> str:
    lines = [f"{'model':15s}{'backend':13s}{'exit layer: median ms (% of full)':52s}{'track() med':>12s}{'p90':>8s}"
             f"{'preproc':>9s}"]
    for (arch, backend), r in results.items():
        if isinstance(r, str):
            lines.append(f"{arch:15s}{backend:13s}{r}")
            continue
        exits = "  ".join(f"L{row.name.split('layer ')[1].split('/')[0]}: {row.median:.1f} ({row.pct_of_full:.0f}%)"
                          for row in exit_rows(r))
        track = r.row("track() step")
        pre = r.row("preprocess search (crop+resize+normalise)").median
        lines.append(f"{arch:15s}{backend:13s}{exits:52s}{track.median:12.1f}{track.p90:8.1f}{pre:9.2f}")
    return "\n".join(lines)


def checks(results) -> list[str]:
    out = []
    for backend in BACKENDS:
        dy = results.get(("dytrack256", backend))
        if not isinstance(dy, BenchResult):
            continue
        rows = exit_rows(dy)
        own = rows[0].median / rows[-1].median * 100
        line = f"dytrack256 [{backend}] exit@L2 = {rows[0].median:.1f} ms = {own:.1f}% of its full 12 layers"
        base = results.get(("ostrack256", backend))
        if isinstance(base, BenchResult):
            line += f", {rows[0].median / exit_rows(base)[-1].median * 100:.1f}% of a plain OSTrack-256 forward"
        out.append(f"{line}  -> {'OK' if own <= EXIT2_BUDGET_PCT else 'ABOVE'} (target <= {EXIT2_BUDGET_PCT:.0f}%)")
    for r in results.values():
        if isinstance(r, BenchResult) and r.arch == "ostrack256":
            pre = r.row("preprocess search (crop+resize+normalise)")
            parts = ", ".join(f"{p}: {r.row(f'  search: {p}').median:.3f}" for p in ("crop/pad", "resize", "normalise"))
            t = r.row("preprocess template (crop+resize+normalise)")
            out.append(f"preprocess 640x480 search 256 px: median {pre.median:.3f} ms (p90 {pre.p90:.3f}; {parts}); "
                       f"template 128 px {t.median:.3f} ms -> {'OK' if pre.p90 <= PREPROCESS_BUDGET_MS else 'ABOVE'} "
                       f"(target <= {PREPROCESS_BUDGET_MS} ms)")
            break
    return out


def plot(results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels, xs = [], 0
    for (arch, backend), r in results.items():
        if isinstance(r, str):
            continue
        for row in exit_rows(r):
            ax.bar(xs, row.median, color="tab:blue" if backend == "torch" else "tab:orange",
                   alpha=0.5 + 0.5 * (row.pct_of_full / 100))
            labels.append(f"{arch}\n{'ort' if backend == 'onnxruntime' else backend} "
                          f"L{row.name.split('layer ')[1].split('/')[0]}")
            xs += 1
        xs += 0.5
    ax.set_ylabel("median inference ms (CPU)")
    ax.set_title("Inference to each exit: torch (blue) vs ONNX Runtime (orange)")
    ax.set_xticks(_tick_positions(results))
    ax.set_xticklabels(labels, rotation=90, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _tick_positions(results) -> list[float]:
    pos, xs = [], 0.0
    for r in results.values():
        if isinstance(r, str):
            continue
        for _ in exit_rows(r):
            pos.append(xs)
            xs += 1
        xs += 0.5
    return pos


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", nargs="+", default=list(ARCHS))
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--iters", type=int, default=10, help="keep small for ViT-B on shared CPUs (10-20)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--verbose", action="store_true", help="print each model's full table too")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None, help="bar chart of the per-exit latencies (PNG)")
    args = ap.parse_args()

    results: dict[tuple[str, str], BenchResult | str] = {}
    with tempfile.TemporaryDirectory(prefix="dytrack_bench_core_") as tmp:
        for arch in args.archs:
            for backend in args.backends:
                try:
                    b = create_backend(None, arch, RuntimeOptions(backend=backend, threads=args.threads), Path(tmp))
                except OnnxExportError as exc:
                    results[(arch, backend)] = f"refused: {exc}"[:200]
                    continue
                r = bench_backend(b, arch, (640, 480), args.iters, args.warmup, args.threads)
                results[(arch, backend)] = r
                if args.verbose:
                    print(format_result(r), "\n", flush=True)
                del b
                for f in Path(tmp).iterdir():  # ViT-B exports are ~350 MB each
                    f.unlink()
    env = next((r.environment for r in results.values() if isinstance(r, BenchResult)), {})
    print(f"CPU latency, random weights, 640x480 frame, {args.threads} thread(s), {args.iters} iters; median ms "
          f"(torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}, {env.get('cpu_count')} cores)")
    print(summary_table(results))
    for line in checks(results):
        print(line)
    if args.json:
        args.json.write_text(json.dumps({f"{a}/{b}": (r if isinstance(r, str) else r.to_dict())
                                         for (a, b), r in results.items()}, indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
