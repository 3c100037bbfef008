"""Box area over time, with and without the box size update: finds the worst runaway and plots it.

Reads two ``dytrack eval`` result folders of the same GOT-10k set (e.g. ``--max-scale-change 0 --size-lr 1``
and the defaults), prints per run the OPE AUC / P@20, the share of visible frames whose box area is more
than 4x the ground truth's, and, on the sequence where the first run's area ratio gets worst, the tracked
area / GT area every 10 frames for both runs; plots that sequence's box area against the frame.

    python benchmarks/size_runaway.py --root outputs/size/striped --split val \\
        --run without=outputs/size/eval/striped_off --run with=outputs/size/eval/striped_on \\
        --plot docs/size_runaway.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dytrack_ros.data import load_dataset
from dytrack_ros.eval.metrics import ope_scores
from dytrack_ros.eval.result_files import read_boxes


def area_ratio(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """Tracked box area / GT area per frame (NaN where the target is not visible)."""
    ga = gt[:, 2] * gt[:, 3]
    ok = visible & (ga > 0)
    out = np.full(len(gt), np.nan)
    out[ok] = pred[ok, 2] * pred[ok, 3] / ga[ok]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--split", default=None)
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=DIR", help="two or more result folders")
    ap.add_argument("--plot", default=None, help="PNG of the worst sequence's box area per frame")
    ap.add_argument("--sequence", default=None, help="plot this sequence instead of the worst one")
    args = ap.parse_args(argv)
    seqs = load_dataset("got10k", args.root, split=args.split)
    runs = [(lab, Path(d)) for lab, _, d in (r.partition("=") for r in args.run)]
    ratios: dict[str, dict[str, np.ndarray]] = {}
    boxes: dict[str, dict[str, np.ndarray]] = {}
    print(f"{'run':>10} {'AUC':>5} {'P@20':>5} {'area>4x':>7} {'area<1/4':>8}  (share of visible frames)")
    for lab, folder in runs:
        preds = [read_boxes(folder / f"{s.name}.txt") for s in seqs]
        boxes[lab] = {s.name: p for s, p in zip(seqs, preds)}
        ope = ope_scores(preds, [s.gt for s in seqs], [s.visible for s in seqs])
        ratios[lab] = {s.name: area_ratio(p, s.gt, s.visible) for s, p in zip(seqs, preds)}
        allr = np.concatenate(list(ratios[lab].values()))
        allr = allr[np.isfinite(allr)]
        print(f"{lab:>10} {ope.auc:>5.1f} {ope.precision:>5.1f} {np.mean(allr > 4) * 100:>6.1f}% "
              f"{np.mean(allr < 0.25) * 100:>7.1f}%")
    first = runs[0][0]
    worst = args.sequence or max(ratios[first], key=lambda n: np.nanmax(ratios[first][n]))
    n = len(ratios[first][worst])
    print(f"\ntracked area / GT area on {worst} (worst max ratio in '{first}'):")
    print("   frame " + " ".join(f"{t + 1:>6}" for t in range(0, n, 10)))
    for lab, _ in runs:
        r = ratios[lab][worst]
        print(f"{lab:>8} " + " ".join(f"{r[t]:>6.2f}" for t in range(0, n, 10)))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        seq = next(s for s in seqs if s.name == worst)
        fig, ax = plt.subplots(figsize=(5.6, 3.2))
        frames = np.arange(1, n + 1)
        ax.plot(frames, np.where(seq.visible, seq.gt[:, 2] * seq.gt[:, 3], np.nan), "k-", lw=1.5, label="ground truth")
        for lab, _ in runs:
            p = boxes[lab][worst]
            ax.plot(frames, p[:, 2] * p[:, 3], lw=1.2, label=lab)
        ax.set_yscale("log")
        ax.set_xlabel("frame")
        ax.set_ylabel("box area (px²)")
        ax.set_title(worst, fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=80)
        plt.close(fig)
        print(f"wrote {args.plot} ({Path(args.plot).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
