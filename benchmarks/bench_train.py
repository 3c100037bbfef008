"""Small-scale proof of the training pipelines on this CPU (minutes, synthetic sequences from real photos).

1. DyTrack (``dytrack_tiny``: dim 64, 4 layers, exits after 1/2/4) trained for ``--steps`` steps
   (default 1500 x 16 pairs):
   loss first vs last, AUC on held-out synthetic sequences, trained vs the same
   network untrained.
2. Depth vs threshold: the trained DyTrack tracked at shared thresholds
   1.0 ... 0.0 (measured mean executed depth, AUC, exit fractions), and whether
   early exits fire on the easy frames (IoU of frames that exited early vs frames
   that went on; exit rate on the 'easy' vs 'medium' preset).
3. CompressTracker: a plain 4-layer teacher trained on ground truth (``--teacher-steps``); two 2-layer
   students with the same skip init and the same steps/data: (a) replacement
   training + prediction guidance + feature mimicking (progressive schedule), (b)
   ground truth only (``--student-steps`` each, 10 short epochs so the progressive schedule runs
   from p = 0.5 to 1.0). AUC of both on the held-out sequences.

Measured on the 2-core shared CPU (about 9 min in all): see models/MODEL_CARD.md, "Training pipeline proof".

    python benchmarks/bench_train.py --out outputs/bench_train --threads 1 [--json results.json]

All randomness is seeded; the data are generated on first use under ``OUT/data``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dytrack_ros.data import load_dataset
from dytrack_ros.data.synth import generate_dataset
from dytrack_ros.eval.metrics import ope_scores
from dytrack_ros.model import create_model
from dytrack_ros.model_io.model_file import load_model_file
from dytrack_ros.train.calibrate import trace_sequence
from dytrack_ros.train.config import train_config_from_dict
from dytrack_ros.train.trainer import set_score_prior, train

SIZE = (320, 240)
TAUS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.0)


def make_data(root: Path, train_seqs: int, test_seqs: int, frames: int) -> dict[str, Path]:
    parts = {
        "train_easy": ("easy", 101, train_seqs, "train"), "train_medium": ("medium", 102, train_seqs, "train"),
        "test_easy": ("easy", 201, test_seqs, "val"), "test_medium": ("medium", 202, test_seqs, "val"),
    }
    out = {}
    for name, (preset, seed, n, split) in parts.items():
        generate_dataset(root / name, n, preset, seed=seed, frames=frames, size=SIZE, split=split,
                         photo_dir="data/media/photos" if Path("data/media/photos").is_dir() else None, progress=False)
        out[name] = root / name
    return out


def train_cfg(data: dict[str, Path], method: str, model: str | None, steps: int, batch: int, **extra) -> dict:
    spe = steps * batch // extra.pop("epochs", 1)
    d = {
        "method": method, "seed": 0,
        "data": {"sources": [{"format": "got10k", "root": str(data["train_easy"]), "split": "train"},
                             {"format": "got10k", "root": str(data["train_medium"]), "split": "train"}],
                 "samples_per_epoch": spe, "max_gap": 50, "num_workers": 1},
        "optim": {"batch_size": batch, "epochs": max(1, steps * batch // spe), "lr": 1e-3, "backbone_lr_mult": 1.0,
                  "grad_clip": 1.0, "drop_path": 0.0, "lr_drop_epoch": 1000},
        "log_every": 10, "checkpoint_every": 0,
    }
    if model:
        d["model"] = {"name": model}
    for k, v in extra.items():
        d.setdefault(k, {}).update(v)
    return d


def evaluate(model, seqs, thresholds=None) -> dict:
    traces = [trace_sequence(model, s, thresholds) for s in seqs]
    ope = ope_scores([t.boxes for t in traces], [s.gt for s in seqs], [s.visible for s in seqs])
    layers = np.asarray(model.cfg.exit_layers or (model.cfg.depth,))
    e = np.concatenate([t.exit_index for t in traces])
    return {"auc": ope.auc, "precision": ope.precision, "depth": float(layers[e].mean()),
            "exit_fractions": [float((e == k).mean()) for k in range(len(layers))], "traces": traces}


def fmt_row(cols, widths):
    return "".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, w) in enumerate(zip(cols, widths)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/bench_train")
    ap.add_argument("--steps", type=int, default=1500, help="optimiser steps of the DyTrack run")
    ap.add_argument("--teacher-steps", type=int, default=2500, help="optimiser steps of the CompressTracker teacher")
    ap.add_argument("--student-steps", type=int, default=600, help="optimiser steps of each CompressTracker student")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--train-seqs", type=int, default=24, help="training sequences per preset (easy, medium)")
    ap.add_argument("--test-seqs", type=int, default=8, help="held-out sequences per preset")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    t_start = time.time()
    data = make_data(out / "data", args.train_seqs, args.test_seqs, args.frames)
    test = {p: load_dataset("got10k", data[f"test_{p}"], split="val") for p in ("easy", "medium")}
    test_all = test["easy"] + test["medium"]
    results: dict = {"args": vars(args)}

    # 1. DyTrack learns -------------------------------------------------------------------------
    torch.manual_seed(0)  # the trainer builds its model under the same seed: identical initial weights
    untrained = create_model("dytrack_tiny").eval()
    set_score_prior(untrained)
    cfg = train_config_from_dict(train_cfg(data, "dytrack", "dytrack_tiny", args.steps, args.batch))
    t0 = time.time()
    res = train(cfg, out / "dytrack_tiny", progress=True)
    dy_time = time.time() - t0
    dy, _ = load_model_file(out / "dytrack_tiny" / "model.safetensors")
    ev_un = evaluate(untrained, test_all, [1.0, 1.0, 0.0])
    ev_tr = evaluate(dy, test_all, [1.0, 1.0, 0.0])
    results["dytrack"] = {
        "train_seconds": dy_time, "loss_first10": float(np.mean(res.losses[:10])),
        "loss_last10": float(np.mean(res.losses[-10:])),
        "auc_untrained": ev_un["auc"], "auc_trained": ev_tr["auc"],
        "prec_untrained": ev_un["precision"], "prec_trained": ev_tr["precision"],
    }

    # 2. depth vs thresholds --------------------------------------------------------------------
    rows = []
    n_easy = len(test["easy"])
    for tau in TAUS:
        th = [tau, tau, 0.0]
        ev = evaluate(dy, test_all, th)
        tr = ev["traces"]
        per = {p: np.concatenate([t.exit_index for t in part]) for p, part in
               (("easy", tr[:n_easy]), ("medium", tr[n_easy:]))}
        q_iou = np.concatenate([t.true_iou for t in tr])
        ex = np.concatenate([t.exit_index for t in tr])
        early = ex < 2
        rows.append({
            "tau": tau, "depth": ev["depth"], "auc": ev["auc"], "exit_fractions": ev["exit_fractions"],
            "early_rate_easy": float((per["easy"] < 2).mean()),
            "early_rate_medium": float((per["medium"] < 2).mean()),
            "iou_final_exit_on_early_frames": float(np.nanmean(q_iou[early, 2])) if early.any() else None,
            "iou_final_exit_on_deep_frames": float(np.nanmean(q_iou[~early, 2])) if (~early).any() else None,
        })
    results["depth_vs_threshold"] = rows

    # 3. CompressTracker with vs without replacement + guidance --------------------------------
    tcfg = train_config_from_dict(train_cfg(data, "ostrack", "ostrack_tiny", args.teacher_steps, args.batch))
    train(tcfg, out / "teacher", progress=True)
    teacher, _ = load_model_file(out / "teacher" / "model.safetensors")
    ct = {"teacher_auc": evaluate(teacher, test_all)["auc"]}
    from dytrack_ros.train.compress import init_student_from_teacher

    init_student, _ = init_student_from_teacher(teacher, 2)
    ct["student_init_auc"] = evaluate(init_student.eval(), test_all)["auc"]
    variants = {
        "replacement+guidance+mimic": {"replacement": True, "guidance": 1.0, "feature_mimic": 0.2},
        "ground truth only": {"replacement": False, "guidance": 0.0, "feature_mimic": 0.0},
    }
    for name, comp in variants.items():
        c = train_cfg(data, "compress", None, args.student_steps, args.batch, epochs=10,
                      compress={"teacher": str(out / "teacher" / "model.safetensors"), "student_depth": 2, **comp})
        d = out / ("ct2_" + ("full" if comp["replacement"] else "gt"))
        r = train(train_config_from_dict(c), d, progress=True)
        m, _ = load_model_file(d / "model.safetensors")
        ct[name] = {"auc": evaluate(m, test_all)["auc"], "loss_last10": float(np.mean(r.losses[-10:]))}
    results["compress"] = ct
    results["total_seconds"] = time.time() - t_start

    # report ------------------------------------------------------------------------------------
    d = results["dytrack"]
    print(f"\n== DyTrack tiny, {args.steps} steps x {args.batch} pairs ({d['train_seconds']:.0f} s) ==")
    print(f"loss first10 {d['loss_first10']:.2f} -> last10 {d['loss_last10']:.2f}")
    print(f"held-out AUC: untrained {d['auc_untrained']:.1f}  trained {d['auc_trained']:.1f}   "
          f"(P@20: {d['prec_untrained']:.1f} -> {d['prec_trained']:.1f}; {len(test_all)} sequences)")
    print("\n== depth vs threshold (trained DyTrack tiny, exits after layers 1/2/4) ==")
    w = (6, 8, 7, 20, 11, 11, 12, 12)
    print(fmt_row(["tau", "depth", "AUC", "exit frac 1/2/4", "early easy", "early med", "IoU@early", "IoU@deep"], w))
    for r in rows:
        f = "/".join(f"{x:.2f}" for x in r["exit_fractions"])
        ie = "-" if r["iou_final_exit_on_early_frames"] is None else f"{r['iou_final_exit_on_early_frames']:.3f}"
        idp = "-" if r["iou_final_exit_on_deep_frames"] is None else f"{r['iou_final_exit_on_deep_frames']:.3f}"
        print(fmt_row([f"{r['tau']:.1f}", f"{r['depth']:.2f}", f"{r['auc']:.1f}", f, f"{r['early_rate_easy']:.2f}",
                       f"{r['early_rate_medium']:.2f}", ie, idp], w))
    print("(IoU@early / IoU@deep: IoU of the final exit's box on frames where an early exit fired / did not)")
    print(f"\n== CompressTracker: 4-layer teacher ({args.teacher_steps} steps) -> 2-layer student, "
          f"{args.student_steps} steps each ==")
    print(f"teacher AUC {ct['teacher_auc']:.1f}; student at skip init {ct['student_init_auc']:.1f}")
    for name in variants:
        print(f"  {name:28s} AUC {ct[name]['auc']:.1f}")
    print(f"\ntotal {results['total_seconds'] / 60:.1f} min")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
