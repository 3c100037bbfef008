"""How the network's size answer depends on the crop scale: the cause of a box that grows frame after frame.

The tracker crops the search region at ``search_factor`` (4) times the last box, so a wrong size changes how
large the target appears in the next crop. This script makes crops with a deliberately wrong scale: crop side
= 4 * sqrt(w*h) * k for the ground-truth box (w, h), the crop centred on the target or with a jittered centre,
and measures each exit's predicted size / true size (width, height, area) against k, i.e. against the
target's fraction of the crop side, 1 / (4k). Decoding is the tracker's (Hann-windowed argmax).

Closed loop: if the network answers r(k) * true size on a crop at scale k, the next crop has scale
k' = sqrt(r_w * r_h)(k). The loop settles where k' = k; it runs away when k' > k at k = 1 and above.
The table prints k' per k and the settling point per exit.

    python benchmarks/size_bias.py --data outputs/size/bias:val --data outputs/size/striped:val \\
        --out outputs/size/bias_report --threads 1
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from dytrack_ros.backends import load_backend
from dytrack_ros.data import load_dataset
from dytrack_ros.paths import default_model_path
from dytrack_ros.tracker.postprocess import decode
from dytrack_ros.tracker.preprocess import normalize, sample_target

SCALES = (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5)


def crop_box(gt: np.ndarray, k: float, shift: np.ndarray) -> tuple[float, float, float, float]:
    """The box whose search crop has side 4 * sqrt(w*h) * k, centred on the GT centre + ``shift`` (px)."""
    x, y, w, h = (float(v) for v in gt)
    cx, cy = x + 0.5 * w + float(shift[0]), y + 0.5 * h + float(shift[1])
    return (cx - 0.5 * w * k, cy - 0.5 * h * k, w * k, h * k)


def usable(seq, i: int, width: int, height: int) -> bool:
    """Visible, fully inside the frame and (where labelled) not occluded: size errors are the network's alone."""
    x, y, w, h = seq.gt[i]
    if not seq.visible[i] or w < 8 or h < 8 or x < 0 or y < 0 or x + w > width or y + h > height:
        return False
    cover = seq.flags.get("cover")
    return cover is None or int(cover[i]) >= 8


def measure(backend, seqs, frames_per_seq: int, jitter: float, rng: np.random.Generator) -> list[dict]:
    """One row per (sequence, frame, mode, k, exit): predicted/true width, height, area; IoU."""
    from dytrack_ros.image_io import read_image

    cfg = backend.config
    rows = []
    for seq in seqs:
        first = read_image(seq.frames[0], "rgb")
        t = sample_target(first, seq.gt[0], cfg.template_factor, cfg.template_size)
        backend.set_template(normalize(t.patch))
        h_img, w_img = first.shape[:2]
        cand = [i for i in range(1, len(seq.frames)) if usable(seq, i, w_img, h_img)]
        if not cand:
            continue
        picks = [cand[j] for j in np.linspace(0, len(cand) - 1, min(frames_per_seq, len(cand))).round().astype(int)]
        for i in picks:
            frame = read_image(seq.frames[i], "rgb")
            gt = seq.gt[i]
            side = math.sqrt(gt[2] * gt[3])
            for mode in ("centred", "jittered"):
                shift = np.zeros(2) if mode == "centred" else (rng.random(2) - 0.5) * 2 * jitter * side
                for k in SCALES:
                    box = crop_box(gt, k, shift)
                    crop = sample_target(frame, box, cfg.search_factor, cfg.search_size)
                    outs = backend.infer_all(normalize(crop.patch))
                    for out in outs:
                        norm, score = decode(out.score_map, out.size_map, out.offset_map, True)
                        pw, ph = float(norm[2]) * crop.crop_size, float(norm[3]) * crop.crop_size
                        rows.append({"dataset": seq.dataset, "seq": seq.name, "frame": i, "mode": mode, "k": k,
                                     "fraction": side / crop.crop_size, "exit": out.exit_layer,
                                     "rw": pw / gt[2], "rh": ph / gt[3], "ra": pw * ph / (gt[2] * gt[3]),
                                     "score": score})
    return rows


def settle_point(ks: np.ndarray, kn: np.ndarray) -> float | None:
    """Where the closed loop k -> k' settles: the largest k with k' crossing k from above (log interpolation)."""
    d = np.log(kn) - np.log(ks)
    cross = None
    for j in range(len(ks) - 1):
        if d[j] >= 0 > d[j + 1]:
            a, b = np.log(ks[j]), np.log(ks[j + 1])
            cross = float(np.exp(a + (b - a) * d[j] / (d[j] - d[j + 1])))
    if cross is None and d[-1] >= 0:
        return float("inf")  # still growing at the largest scale measured
    return cross


def summarise(rows: list[dict]) -> list[dict]:
    """Median ratios per (dataset, mode, exit, k) and the next-crop scale k' = k_measured * sqrt(r_area)."""
    out = []
    keys = sorted({(r["dataset"], r["mode"], r["exit"]) for r in rows})
    for ds, mode, ex in keys:
        sel = [r for r in rows if r["dataset"] == ds and r["mode"] == mode and r["exit"] == ex]
        for k in SCALES:
            rk = [r for r in sel if r["k"] == k]
            if not rk:
                continue
            ra = np.array([r["ra"] for r in rk])
            out.append({"dataset": ds, "mode": mode, "exit": ex, "k": k, "n": len(rk),
                        "fraction": float(np.median([r["fraction"] for r in rk])),
                        "rw": float(np.median([r["rw"] for r in rk])), "rh": float(np.median([r["rh"] for r in rk])),
                        "ra": float(np.median(ra)), "ra_q25": float(np.quantile(ra, 0.25)),
                        "ra_q75": float(np.quantile(ra, 0.75)), "k_next": float(math.sqrt(np.median(ra))),
                        "score": float(np.median([r["score"] for r in rk]))})
    return out


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(s["dataset"], s["mode"]) for s in summary})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.8), squeeze=False, sharey=True)
    for ax, (ds, mode) in zip(axes[0], groups):
        for ex in sorted({s["exit"] for s in summary}):
            sel = [s for s in summary if s["dataset"] == ds and s["mode"] == mode and s["exit"] == ex]
            ks = [s["k"] for s in sel]
            ax.plot(ks, [s["k_next"] for s in sel], marker="o", ms=3, label=f"exit layer {ex}")
            ax.fill_between(ks, [math.sqrt(s["ra_q25"]) for s in sel], [math.sqrt(s["ra_q75"]) for s in sel],
                            alpha=0.12)
        ax.plot([SCALES[0], SCALES[-1]], [SCALES[0], SCALES[-1]], "k--", lw=0.8, label="k' = k (settles)")
        ax.axhline(1.0, color="grey", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("crop scale k (target side = crop side / 4k)")
        ax.set_title(f"{ds}, {mode}", fontsize=9)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("predicted / true size, sqrt(area) = next k'")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--data", action="append", required=True, metavar="ROOT:SPLIT",
                    help="GOT-10k folder and split (repeatable); the folder name labels the rows")
    ap.add_argument("--frames-per-seq", type=int, default=6)
    ap.add_argument("--jitter", type=float, default=0.25, help="centre jitter, +- this times sqrt(w*h)")
    ap.add_argument("--out", default="outputs/size/bias_report")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    backend = load_backend(args.model, threads=args.threads)
    rng = np.random.default_rng(args.seed)
    rows = []
    for spec in args.data:
        root, _, split = spec.rpartition(":") if ":" in spec else (spec, "", "")
        seqs = load_dataset("got10k", root, split=split or None)
        for s in seqs:
            s.dataset = Path(root).name
        rows += measure(backend, seqs, args.frames_per_seq, args.jitter, rng)
    summary = summarise(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rows.json").write_text(json.dumps(rows))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("median predicted / true size on crops of side 4*sqrt(w*h)*k; k' = sqrt(area ratio) = next crop scale")
    print(f"{'dataset':>10} {'mode':>8} {'exit':>4} {'k':>5} {'frac':>5} {'n':>4} {'w':>5} {'h':>5} {'area':>5} "
          f"{'area IQR':>11} {'k_next':>6} {'score':>5}")
    for s in summary:
        print(f"{s['dataset']:>10} {s['mode']:>8} {s['exit']:>4} {s['k']:>5.3g} {s['fraction']:>5.3f} {s['n']:>4} "
              f"{s['rw']:>5.2f} {s['rh']:>5.2f} {s['ra']:>5.2f} {s['ra_q25']:>5.2f}-{s['ra_q75']:<5.2f} "
              f"{s['k_next']:>6.2f} {s['score']:>5.2f}")
    print("\nclosed loop: k' at k = 1 and where k -> k' settles (inf: still growing at k = 2.5)")
    for ds, mode, ex in sorted({(s["dataset"], s["mode"], s["exit"]) for s in summary}):
        sel = [s for s in summary if s["dataset"] == ds and s["mode"] == mode and s["exit"] == ex]
        ks = np.array([s["k"] for s in sel])
        kn = np.array([s["k_next"] for s in sel])
        k1 = [s["k_next"] for s in sel if s["k"] == 1.0]
        pt = settle_point(ks, kn)
        print(f"{ds:>10} {mode:>8} exit {ex}: k'(1) = {k1[0]:.2f}, settles at k = "
              f"{'none' if pt is None else f'{pt:.2f}'}")
    plot(summary, out / "size_bias.png")
    print(f"\nwrote {out / 'summary.json'} and {out / 'size_bias.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
