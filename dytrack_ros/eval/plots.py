"""PNG plots of scored result sets: success/precision curves side by side, and speed/accuracy trade-offs.

matplotlib runs on the Agg backend (no display needed). Each function returns
the series it drew ({label: (x, y)}), so callers and tests can check what a
plot contains without reading pixels.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence as Seq

import numpy as np

from dytrack_ros.eval import metrics as M
from dytrack_ros.eval.score import ResultSetScore


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_path: str | Path, title: str | None) -> None:
    """Title, tight layout, write PNG (parent folders created), free the figure."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    _pyplot().close(fig)


def plot_curves(scores: Seq[ResultSetScore], out_path: str | Path, title: str = "") -> dict[str, dict]:
    """Success, precision and normalised-precision curves of several result sets in one PNG.

    Legends carry AUC, precision@20px and normalised precision@0.20 (OPE),
    sorted best first as in the usual benchmark plots.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    drawn: dict[str, dict] = {"success": {}, "precision": {}, "norm_precision": {}}
    panels = [
        ("success", "Success plot (OPE)", "Overlap threshold", M.OVERLAP_THRESHOLDS, lambda s: s.ope.success_curve,
         lambda s: s.ope.auc, "AUC"),
        ("precision", "Precision plot (OPE)", "Location error threshold [px]", M.PRECISION_THRESHOLDS,
         lambda s: s.ope.precision_curve, lambda s: s.ope.precision, "P@20"),
        ("norm_precision", "Normalised precision plot (OPE)", "Normalised location error threshold",
         M.NORM_PRECISION_THRESHOLDS, lambda s: s.ope.norm_precision_curve, lambda s: s.ope.norm_precision, "NP@0.2"),
    ]
    for ax, (key, ptitle, xlabel, xs, curve, value, tag) in zip(axes, panels):
        for s in sorted(scores, key=value, reverse=True):
            ys = np.asarray(curve(s))
            ax.plot(xs, ys, linewidth=2, label=f"{s.label} [{tag} {value(s):.1f}]")
            drawn[key][s.label] = (np.asarray(xs), ys)
        ax.set_title(ptitle)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Success rate" if key == "success" else "Precision")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(xs[0], xs[-1])
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left" if key == "success" else "lower right", fontsize=8)
    _save(fig, out_path, title)
    return drawn


def _group_by_model(scores: Seq[ResultSetScore]) -> dict[str, list[ResultSetScore]]:
    groups: dict[str, list[ResultSetScore]] = defaultdict(list)
    for s in scores:
        groups[s.model].append(s)
    return groups


def _point_label(s: ResultSetScore) -> str:
    thr = s.exit_thresholds
    return f"t={thr[0]:g}" if thr else ""


def plot_tradeoff(scores: Seq[ResultSetScore], out_path: str | Path, title: str = "") -> dict[str, dict]:
    """AUC vs fps and AUC vs mean executed layers; the operating points of one model (a sweep) are joined."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    drawn: dict[str, dict] = {"fps": {}, "depth": {}}
    for model, group in _group_by_model(scores).items():
        name = Path(model).stem if not model.startswith("opencv") else group[0].label
        for ax, key in zip(axes, ("fps", "depth")):
            pts = [(s.speed.fps if key == "fps" else s.speed.mean_layers, s.ope.auc, s) for s in group]
            pts = [p for p in pts if p[0] is not None and p[0] > 0]
            if not pts:
                continue
            pts.sort(key=lambda p: p[0])
            xs = np.array([p[0] for p in pts])
            ys = np.array([p[1] for p in pts])
            ax.plot(xs, ys, "o-" if len(pts) > 1 else "o", markersize=6, label=name)
            for x, y, s in pts:
                lab = _point_label(s)
                if lab:
                    ax.annotate(lab, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
            drawn[key][name] = (xs, ys)
    axes[0].set_xlabel("Speed [fps]")
    axes[0].set_title("Accuracy vs speed")
    axes[1].set_xlabel("Mean executed transformer layers")
    axes[1].set_title("Accuracy vs depth (early exits)")
    for ax in axes:
        ax.set_ylabel("Success AUC [%]")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    _save(fig, out_path, title)
    return drawn
