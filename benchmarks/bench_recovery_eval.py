"""Accuracy of lost-target recovery: AUC with vs without, per difficulty and attribute; lost-status score.

Generates (or reuses) ``dytrack synth`` sets, one per preset, with a seed the
training configs never use, runs the shipped model over each with recovery on
and off (resumable result folders, one thread) and prints:

- OPE AUC per preset and per attribute, with and without recovery, and the difference;
- the lost-status score (precision / recall of lost+searching against the absence labels);
- the tracker's time per frame from ``<seq>_time.txt``: p50 / p99 / max over frames in normal
  tracking vs frames spent lost/searching (what the eval machine measured while running).

    python benchmarks/bench_recovery_eval.py --root outputs/recovery_data --results outputs/recovery_runs \
        [--presets hard,easy] [--sequences 8] [--frames 150] [--seed 2026] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dytrack_ros.config import TrackerConfig
from dytrack_ros.data import load_dataset
from dytrack_ros.data.synth import generate_dataset
from dytrack_ros.eval.lost_status import read_statuses
from dytrack_ros.eval.runner import TrackerSpec, run_tracker
from dytrack_ros.eval.score import score_results
from dytrack_ros.paths import default_model_path

MODES = {"recovery": TrackerConfig(recovery=True), "no-recovery": TrackerConfig(recovery=False)}


def frame_times(seqs, folder: Path) -> dict[str, np.ndarray]:
    """Tracker ms per frame, split into normal frames and frames spent lost/searching (init frames dropped)."""
    normal, lost = [], []
    for seq in seqs:
        t = np.loadtxt(folder / f"{seq.name}_time.txt")[1:] * 1e3
        st = read_statuses(folder / f"{seq.name}_status.txt", len(seq))[1:]
        for v, s in zip(t, st):
            (lost if s in ("lost", "searching") else normal).append(v)
    return {"normal": np.asarray(normal), "lost": np.asarray(lost)}


def summary(v: np.ndarray) -> dict:
    if not len(v):
        return {"frames": 0}
    return {"frames": int(len(v)), "p50_ms": float(np.median(v)), "p99_ms": float(np.percentile(v, 99)),
            "max_ms": float(v.max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="dataset root (one sub-folder per preset; generated if missing)")
    ap.add_argument("--results", required=True)
    ap.add_argument("--presets", default="hard,easy")
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out: dict = {"seed": args.seed, "model": args.model, "presets": {}}
    for preset in args.presets.split(","):
        root = Path(args.root) / preset
        if not (root / "val" / "list.txt").is_file():
            generate_dataset(root, args.sequences, preset=preset, seed=args.seed, frames=args.frames,
                             size=(640, 480), progress=False)
        seqs = load_dataset("got10k", root, "val")
        res = {}
        for mode, cfg in MODES.items():
            folder = Path(args.results) / f"{preset}-{mode}"
            run_tracker(TrackerSpec(args.model, threads=1, tracker_config=cfg), seqs, folder, progress=False)
            score = score_results(seqs, folder)
            res[mode] = {"auc": score.ope.auc, "per_attribute": {a: v["auc"] for a, v in score.per_attribute.items()},
                         "lost_status": score.lost_status, "times": {k: summary(v) for k, v in
                                                                      frame_times(seqs, folder).items()}}
        out["presets"][preset] = res
        on, off = res["recovery"], res["no-recovery"]
        print(f"\n== {preset}: {len(seqs)} sequences x {args.frames} frames, seed {args.seed}")
        print(f"{'':28s} {'recovery':>9s} {'no-rec.':>9s} {'diff':>7s}")
        print(f"{'AUC (all)':28s} {on['auc']:9.1f} {off['auc']:9.1f} {on['auc'] - off['auc']:+7.1f}")
        for attr in sorted(on["per_attribute"]):
            a, b = on["per_attribute"][attr], off["per_attribute"][attr]
            print(f"{'  ' + attr:28s} {a:9.1f} {b:9.1f} {a - b:+7.1f}")
        for mode in MODES:
            ls = res[mode]["lost_status"] or {}
            fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
            print(f"lost status ({mode}): precision {fmt(ls.get('precision'))}%, recall {fmt(ls.get('recall'))}% "
                  f"({ls.get('absent', 0)} absent of {ls.get('frames', 0)} frames)")
            tm = res[mode]["times"]
            print(f"  time/frame ({mode}): normal {tm['normal']}, lost/searching {tm['lost']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
