"""Holding a deadline under a CPU-load step: fixed thresholds vs the budget controller vs deadline mode.

One long generated clip with exact ground truth (``dytrack synth``, a seed the shipped model never saw) is
tracked once per mode, single-threaded. A CPU burner (busy-loop processes, one per core) starts at a known
frame and stops later. Per mode and phase (before / during / after the load) the table gives the tracker's
p50 / p95 / max time per frame, the mean executed depth and the share of frames over the budget; accuracy
(OPE AUC, mean IoU) is over the whole clip, against full depth.

    python benchmarks/bench_budget.py [--frames 450] [--load-start 150] [--load-stop 300] [--burners 1] [--budget-ms B]
                                      [--json out.json] [--plot out.png]

The tracker and the burners share one CPU (``--cpu``), so the load step has a known size: one burner halves the
tracker's share. Default budget: 1.6x the no-load time of a full-depth frame (``--budget-factor``, measured here
first). At no load full depth fits; under the load step it lies between the first exit and full depth, which is
the regime the controller is for. A budget the first exit cannot meet
under the load cannot be held by any threshold; then only the deadline gate limits the damage.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dytrack_ros.data.synth import generate_sequence
from dytrack_ros.eval.metrics import iou_pixel, ope_scores
from dytrack_ros.paths import default_model_path
from dytrack_ros.runtime_options import RuntimeOptions
from dytrack_ros.tracker import Tracker
from dytrack_ros.tracker.budget import BudgetConfig

MODES = ("full depth", "fixed", "controller", "deadline")
BURN = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def start_burners(n: int, cpu: int | None) -> list[subprocess.Popen]:
    """Busy-loop processes, on the tracker's CPU when it is pinned (a load step of known size)."""
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    return [subprocess.Popen([sys.executable, "-c", BURN], preexec_fn=pin) for _ in range(n)]


def stop_burners(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait(timeout=10)


def run_mode(mode: str, model: Path, seq, budget: BudgetConfig, base_ms: list[float], load: tuple[int, int],
             burners: int, cpu: int | None) -> dict:
    tracker = Tracker.from_model(model, RuntimeOptions(threads=1))
    if mode == "full depth":
        tracker.set_exit_thresholds(1.0)
    elif mode in ("controller", "deadline"):
        cfg = BudgetConfig(latency_budget_ms=budget.latency_budget_ms, deadline=mode == "deadline",
                           min_threshold=budget.min_threshold)
        tracker.set_budget(cfg, stage_base_ms=base_ms)
    tracker.initialize(seq.frames[0], seq.gt[0])
    boxes, times, layers, taus, cuts = [tuple(seq.gt[0])], [], [], [], []
    procs: list[subprocess.Popen] = []
    try:
        for i in range(1, len(seq.frames)):
            if i == load[0]:
                procs = start_burners(burners, cpu)
                time.sleep(0.2)  # let the scheduler see them
            if i == load[1]:
                stop_burners(procs)
                procs = []
            r = tracker.track(seq.frames[i])
            boxes.append(r.box)
            times.append(r.timings["total"])
            layers.append(r.exit_layer)
            taus.append(r.thresholds[0] if r.thresholds else 1.0)
            cuts.append(r.cut_by_deadline)
    finally:
        stop_burners(procs)
    return {"boxes": np.asarray(boxes), "times": np.asarray(times), "layers": np.asarray(layers),
            "taus": np.asarray(taus), "cuts": np.asarray(cuts)}


def phase_rows(res: dict, load: tuple[int, int], budget_ms: float) -> dict[str, dict]:
    idx = np.arange(1, len(res["times"]) + 1)
    phases = {"before": idx < load[0], "during": (idx >= load[0]) & (idx < load[1]), "after": idx >= load[1]}
    out = {}
    for name, m in phases.items():
        t = res["times"][m]
        out[name] = {"p50": float(np.percentile(t, 50)), "p95": float(np.percentile(t, 95)), "max": float(t.max()),
                     "over_budget": float((t > budget_ms).mean()), "mean_depth": float(res["layers"][m].mean()),
                     "frames": int(m.sum())}
    return out


def plot(results: dict, load: tuple[int, int], budget_ms: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    colors = {"full depth": "#999999", "fixed": "#d62728", "controller": "#1f77b4", "deadline": "#2ca02c"}
    for mode, res in results.items():
        x = np.arange(1, len(res["times"]) + 1)
        ax1.plot(x, res["times"], lw=0.8, color=colors[mode], label=mode, alpha=0.85)
        if mode in ("controller", "deadline"):
            ax2.plot(x, res["taus"], lw=1.2, color=colors[mode], label=f"{mode}: threshold")
        elif mode == "fixed":
            ax2.plot(x, res["taus"], lw=1.2, color=colors[mode], ls="--", label="fixed: threshold")
    for ax in (ax1, ax2):
        ax.axvspan(load[0], load[1], color="orange", alpha=0.12, lw=0)
    ax1.axhline(budget_ms, color="black", ls=":", lw=1.2, label=f"budget {budget_ms:.1f} ms (p95)")
    ax1.set_ylabel("tracker ms / frame")
    ax1.set_title("CPU load step (shaded): fixed thresholds vs budget controller vs deadline mode")
    ax1.legend(loc="upper left", ncol=3, fontsize=8)
    ax1.set_ylim(0, max(np.percentile(r["times"], 99.5) for r in results.values()) * 1.1)
    ax2.set_ylabel("exit threshold")
    ax2.set_xlabel("frame")
    ax2.set_ylim(-0.05, 1.05)
    ax2.legend(loc="lower left", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--frames", type=int, default=450)
    ap.add_argument("--load-start", type=int, default=150)
    ap.add_argument("--load-stop", type=int, default=300)
    ap.add_argument("--burners", type=int, default=1, help="busy-loop processes during the load (default 1)")
    ap.add_argument("--cpu", type=int, default=0,
                    help="pin the tracker and the burners to this CPU, so n burners slow the tracker about (n+1)x "
                         "whatever else runs on the machine (-1: no pinning)")
    ap.add_argument("--budget-ms", type=float, default=None,
                    help="the p95 budget; default: --budget-factor x the no-load full-depth time")
    ap.add_argument("--budget-factor", type=float, default=1.6,
                    help="default budget = F x the full-depth time per frame measured at no load (default 1.6)")
    ap.add_argument("--floor", type=float, default=0.0, help="accuracy floor of the controller")
    ap.add_argument("--seed", type=int, default=9001, help="synth seed (not one used for training)")
    ap.add_argument("--preset", default="easy")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    if not 1 <= args.load_start < args.load_stop < args.frames:
        ap.error("need 1 <= --load-start < --load-stop < --frames")

    cpu = None if args.cpu < 0 else args.cpu
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    w, h = (int(v) for v in args.size.split("x"))
    print(f"generating a {args.frames}-frame {args.preset} clip (seed {args.seed}, {w}x{h}) ...", flush=True)
    seq = generate_sequence(0, args.preset, args.seed, args.frames, (w, h))
    probe = Tracker.from_model(args.model, RuntimeOptions(threads=1))
    base = probe.measure_stage_ms(repeats=20)
    probe.initialize(seq.frames[0], seq.gt[0])
    overhead = []
    for f in seq.frames[1:21]:
        r = probe.track(f)
        overhead.append(r.timings["total"] - sum(r.stage_ms))
    over = float(np.median(overhead))
    first, full = over + base[0], over + sum(base)
    budget_ms = args.budget_ms or round(args.budget_factor * full, 2)
    budget = BudgetConfig(latency_budget_ms=budget_ms, min_threshold=args.floor)
    print(f"no-load stage ms {[round(b, 2) for b in base]}, overhead {over:.2f} ms: first exit {first:.2f} ms, "
          f"full depth {full:.2f} ms -> budget {budget_ms:.2f} ms (p95)", flush=True)

    load = (args.load_start, args.load_stop)
    results = {}
    for mode in MODES:
        print(f"  running {mode} ...", flush=True)
        results[mode] = run_mode(mode, args.model, seq, budget, base, load, args.burners, cpu)

    ref_boxes = results["full depth"]["boxes"]
    print(f"\n{Path(args.model).name}, 1 thread{'' if cpu is None else f' on CPU {cpu}'}, {len(seq.frames)} frames, "
          f"load step {load[0]}-{load[1]} with {args.burners} burner(s), budget {budget_ms:.2f} ms (p95); tracker ms "
          "per frame")
    head = f"{'mode':12s}{'phase':8s}{'p50':>7s}{'p95':>7s}{'max':>7s}{'p95/B':>7s}{'>B':>7s}{'depth':>7s}"
    print(head + f"{'AUC':>7s}{'mIoU':>7s}{'cuts':>6s}")
    summary = {"budget_ms": budget_ms, "stage_ms": base, "overhead_ms": over, "load": list(load),
               "burners": args.burners, "frames": len(seq.frames), "modes": {}}
    for mode, res in results.items():
        rows = phase_rows(res, load, budget_ms)
        ope = ope_scores([res["boxes"]], [seq.gt], [seq.visible])
        miou = float(np.mean(iou_pixel(res["boxes"][1:], seq.gt[1:])))
        agree = float(np.mean(iou_pixel(res["boxes"][1:], ref_boxes[1:])))
        summary["modes"][mode] = {"phases": rows, "auc": ope.auc, "mean_iou": miou, "iou_vs_full_depth": agree,
                                  "deadline_cuts": int(res["cuts"].sum())}
        for i, (phase, r) in enumerate(rows.items()):
            tail = f"{ope.auc:7.1f}{miou:7.3f}{int(res['cuts'].sum()):6d}" if i == 0 else ""
            print(f"{mode if i == 0 else '':12s}{phase:8s}{r['p50']:7.2f}{r['p95']:7.2f}{r['max']:7.2f}"
                  f"{r['p95'] / budget_ms:7.2f}{100 * r['over_budget']:6.1f}%{r['mean_depth']:7.2f}{tail}")
    ctrl_during = summary["modes"]["controller"]["phases"]["during"]["p95"] / budget_ms
    fixed_during = summary["modes"]["fixed"]["phases"]["during"]["p95"] / budget_ms
    print(f"\nacceptance: controller p95 during the load = {ctrl_during:.2f} x budget (<= 1.10: "
          f"{'yes' if ctrl_during <= 1.10 else 'NO'}); fixed thresholds {fixed_during:.2f} x budget "
          f"({'exceeds' if fixed_during > 1.0 else 'does not exceed'}); AUC cost vs full depth: controller "
          f"{summary['modes']['controller']['auc'] - summary['modes']['full depth']['auc']:+.1f}, deadline "
          f"{summary['modes']['deadline']['auc'] - summary['modes']['full depth']['auc']:+.1f} points")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
        print(f"wrote {args.json}")
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(results, load, budget_ms, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
