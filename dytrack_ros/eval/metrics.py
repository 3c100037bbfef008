"""Tracking accuracy metrics (pure numpy): OPE success/precision as in pytracking/OSTrack, GOT-10k AO/SR.

Two protocols, each reproduced exactly as its reference toolkit computes it:

**OPE (pytracking ``extract_results`` semantics)** -- success AUC, precision@20px
and normalised precision@0.20, as OSTrack-family papers report them on LaSOT,
TrackingNet, OTB:

- IoU is pixel-inclusive: ``br = xy + wh - 1``, ``inter = prod(max(min(br) - max(tl) + 1, 0))``,
  ``union = w*h + w'*h' - inter``, clipped to ``[0, 1]``. (Algebraically this
  is the continuous box IoU, so it equals got10k's ``rect_iou`` on the same
  boxes. On float boxes the ``- 1 ... + 1`` rounds, so identical boxes can
  give ``1 + 1e-15``; unclipped, that would pass the strict ``IoU > 1``
  threshold that no prediction may pass.)
- Centre = ``xy + 0.5*(wh - 1)``; centre error = Euclidean pixel distance.
  Normalised centre error divides both centres by the GT ``(w, h)`` per axis.
- **Frame 1**: the prediction of the first frame is replaced by the GT box
  (a tracker is initialised on it), and the frame *stays in the
  denominator* -- it counts as a success at every threshold below 1.
  This is how "the first frame is excluded" in pytracking: excluded from
  being judged, not from the count. (GOT-10k instead drops frame 1, below.)
- A prediction with ``w == 0`` or ``h == 0`` is replaced by the previous
  frame's prediction. Non-finite values and negative widths or heights are
  refused (their centres and overlaps would be meaningless).
- Valid frames: GT ``w > 0 and h > 0`` and, when the dataset supplies it,
  the visibility mask (LaSOT ``!full_occlusion & !out_of_view``; GOT-10k-layout
  ``!absence & cover > 0``). Invalid frames get IoU = -1 and centre error =
  +inf and **stay in the denominator**, so they count as failures at every
  threshold. (pytracking applies the visibility mask for LaSOT only; for
  GOT-10k layouts whose absent frames carry an empty GT box -- our synthetic
  sequences, the GOT-10k convention -- the two are identical.)
- Success curve: 21 thresholds ``0, 0.05, ..., 1.0`` with strict ``IoU > t``;
  precision: 0..50 px with ``err <= t``; normalised precision: 0..0.50 step
  0.01 with ``err <= t``. Per-sequence rate = count / sequence length;
  curves are averaged over sequences (sequence-weighted); AUC = mean of the
  21 success points x 100; precision = value at 20 px x 100; normalised
  precision = value at 0.20 x 100.

**GOT-10k (official ``got10k`` toolkit semantics)** -- AO, SR0.5, SR0.75:
per sequence frame 1 is dropped; only frames with ``cover > 0`` (or, without
cover labels, the visible frames) are kept; IoU is the continuous box IoU
after clipping both boxes to the image (``bound = (W, H)``), with ``eps``
added to the union and the result clipped to ``[0, 1]``. IoUs are pooled
over all frames of all sequences (frame-weighted): AO = mean IoU, SR_t =
mean(IoU > t); the 101-point success curve is for plots only. AO is not the
21-point AUC: always report the protocol with the number.

**Units**: every score (AUC, precision, normalised precision, AO, SR) is a
percentage in ``[0, 100]`` (the got10k toolkit prints AO/SR as fractions;
x100 here so one result holds one unit); curves are fractions of frames in
``[0, 1]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable
from typing import Sequence as Seq

import numpy as np

OVERLAP_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
GOT10K_THRESHOLDS = np.linspace(0.0, 1.0, 101)
PRECISION_AT = 20  # index into PRECISION_THRESHOLDS (20 px)
NORM_PRECISION_AT = 20  # index into NORM_PRECISION_THRESHOLDS (0.20)


class MetricInputError(ValueError):
    """Predictions and ground truth do not fit together (shape, length, non-finite values)."""


def _as_boxes(boxes, what: str) -> np.ndarray:
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 4:
        arr = arr.reshape(1, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise MetricInputError(f"{what}: expected an (N, 4) array of x,y,w,h boxes, got shape {arr.shape}")
    return arr


# ----------------------------------------------------------------------------- per-frame measures
def iou_pixel(pred, gt) -> np.ndarray:
    """Pixel-inclusive IoU of paired boxes (pytracking ``calc_iou_overlap``)."""
    a, b = _as_boxes(pred, "pred"), _as_boxes(gt, "gt")
    tl = np.maximum(a[:, :2], b[:, :2])
    br = np.minimum(a[:, :2] + a[:, 2:] - 1.0, b[:, :2] + b[:, 2:] - 1.0)
    sz = np.clip(br - tl + 1.0, 0.0, None)
    inter = sz.prod(axis=1)
    union = a[:, 2:].prod(axis=1) + b[:, 2:].prod(axis=1) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(inter / union, 0.0, 1.0)


def clip_boxes(boxes, bound: tuple[float, float]) -> np.ndarray:
    """Clip boxes to the image ``[0, W] x [0, H]`` the way the got10k toolkit does."""
    b = _as_boxes(boxes, "boxes").copy()
    w_img, h_img = float(bound[0]), float(bound[1])
    b[:, 0] = np.clip(b[:, 0], 0.0, w_img)
    b[:, 1] = np.clip(b[:, 1], 0.0, h_img)
    b[:, 2] = np.clip(b[:, 2], 0.0, w_img - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0.0, h_img - b[:, 1])
    return b


def iou_continuous(pred, gt, bound: tuple[float, float] | None = None) -> np.ndarray:
    """Continuous box IoU in [0, 1] (got10k ``rect_iou``), optionally after clipping both to ``bound=(W, H)``."""
    a, b = _as_boxes(pred, "pred"), _as_boxes(gt, "gt")
    if bound is not None:
        a, b = clip_boxes(a, bound), clip_boxes(b, bound)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0.0, None) * np.clip(y2 - y1, 0.0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def centres(boxes) -> np.ndarray:
    """Pixel-inclusive box centres ``xy + 0.5*(wh - 1)``."""
    b = _as_boxes(boxes, "boxes")
    return b[:, :2] + 0.5 * (b[:, 2:] - 1.0)


def centre_error(pred, gt) -> np.ndarray:
    """Euclidean distance between pixel-inclusive centres, in pixels."""
    return np.linalg.norm(centres(pred) - centres(gt), axis=1)


def normalized_centre_error(pred, gt) -> np.ndarray:
    """Centre distance after dividing both centres by the GT (w, h) per axis (pytracking normalised precision)."""
    g = _as_boxes(gt, "gt")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.linalg.norm(centres(pred) / g[:, 2:] - centres(g) / g[:, 2:], axis=1)


# ----------------------------------------------------------------------------- OPE
@dataclass
class SequenceErrors:
    """Per-frame OPE measures of one sequence (invalid frames: overlap -1, errors +inf)."""

    overlaps: np.ndarray
    centre_errors: np.ndarray
    norm_centre_errors: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return len(self.overlaps)


def check_predictions(pred, frames: int) -> None:
    """Refuse predictions that cannot be scored: wrong count, non-finite values, negative width or height."""
    p = _as_boxes(pred, "pred")
    if len(p) != frames:
        raise MetricInputError(f"{len(p)} predicted boxes for {frames} ground-truth boxes")
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        raise MetricInputError(f"predictions contain NaN or infinite values (frame {int(np.argmax(bad)) + 1})")
    neg = (p[:, 2] < 0) | (p[:, 3] < 0)
    if neg.any():
        raise MetricInputError(f"prediction with negative width or height (frame {int(np.argmax(neg)) + 1})")


def prepare_predictions(pred, gt) -> np.ndarray:
    """Apply the pytracking rules to raw predictions: frame 1 := GT, zero-size boxes := previous box."""
    p = _as_boxes(pred, "pred").copy()
    g = _as_boxes(gt, "gt")
    check_predictions(p, len(g))
    p[0] = g[0]
    for i in range(1, len(p)):
        if p[i, 2] == 0.0 or p[i, 3] == 0.0:
            p[i] = p[i - 1]
    return p


def sequence_errors(pred, gt, visible=None) -> SequenceErrors:
    """OPE per-frame overlaps and centre errors of one sequence (module docstring for the rules)."""
    g = _as_boxes(gt, "gt")
    p = prepare_predictions(pred, g)
    valid = np.isfinite(g).all(axis=1) & (g[:, 2] > 0) & (g[:, 3] > 0)
    if visible is not None:
        vis = np.asarray(visible, dtype=bool).reshape(-1)
        if len(vis) != len(g):
            raise MetricInputError(f"visible mask has {len(vis)} entries for {len(g)} frames")
        valid &= vis
    g_safe = np.where(valid[:, None], g, 1.0)
    overlaps = np.where(valid, iou_pixel(p, g_safe), -1.0)
    errors = np.where(valid, centre_error(p, g_safe), np.inf)
    norm_errors = np.where(valid, normalized_centre_error(p, g_safe), np.inf)
    return SequenceErrors(overlaps, errors, norm_errors, valid)


def success_curve(overlaps, thresholds=OVERLAP_THRESHOLDS, length: int | None = None) -> np.ndarray:
    """Fraction of frames with overlap strictly above each threshold (denominator ``length`` or all frames)."""
    o = np.asarray(overlaps, dtype=np.float64).reshape(-1)
    n = len(o) if length is None else length
    return (o[:, None] > np.asarray(thresholds)[None, :]).sum(axis=0) / max(n, 1)


def precision_curve(errors, thresholds=PRECISION_THRESHOLDS, length: int | None = None) -> np.ndarray:
    """Fraction of frames with centre error at most each threshold."""
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    n = len(e) if length is None else length
    return (e[:, None] <= np.asarray(thresholds)[None, :]).sum(axis=0) / max(n, 1)


@dataclass
class OPEResult:
    """OPE scores over a set of sequences (percentages) plus the mean curves (fractions)."""

    auc: float
    precision: float
    norm_precision: float
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    per_sequence_auc: np.ndarray
    num_sequences: int
    num_frames: int

    def to_dict(self) -> dict:
        return {
            "auc": self.auc,
            "precision": self.precision,
            "norm_precision": self.norm_precision,
            "num_sequences": self.num_sequences,
            "num_frames": self.num_frames,
            "success_curve": {"thresholds": OVERLAP_THRESHOLDS.tolist(), "values": self.success_curve.tolist()},
            "precision_curve": {"thresholds": PRECISION_THRESHOLDS.tolist(), "values": self.precision_curve.tolist()},
            "norm_precision_curve": {
                "thresholds": NORM_PRECISION_THRESHOLDS.tolist(),
                "values": self.norm_precision_curve.tolist(),
            },
        }


def ope_from_errors(errors: Seq[SequenceErrors]) -> OPEResult:
    """Average per-sequence curves (sequence-weighted) into OPE scores."""
    if not errors:
        raise MetricInputError("no sequences to score")
    succ = np.stack([success_curve(e.overlaps) for e in errors])
    prec = np.stack([precision_curve(e.centre_errors) for e in errors])
    nprec = np.stack([precision_curve(e.norm_centre_errors, NORM_PRECISION_THRESHOLDS) for e in errors])
    s, p, n = succ.mean(axis=0), prec.mean(axis=0), nprec.mean(axis=0)
    return OPEResult(
        auc=float(s.mean() * 100.0),
        precision=float(p[PRECISION_AT] * 100.0),
        norm_precision=float(n[NORM_PRECISION_AT] * 100.0),
        success_curve=s,
        precision_curve=p,
        norm_precision_curve=n,
        per_sequence_auc=succ.mean(axis=1) * 100.0,
        num_sequences=len(errors),
        num_frames=int(sum(len(e) for e in errors)),
    )


def ope_scores(preds: Iterable, gts: Iterable, visibles: Iterable | None = None) -> OPEResult:
    """OPE AUC / precision / normalised precision of paired prediction and GT box arrays."""
    preds, gts = list(preds), list(gts)
    vis = list(visibles) if visibles is not None else [None] * len(gts)
    if not (len(preds) == len(gts) == len(vis)):
        raise MetricInputError(f"{len(preds)} prediction sets, {len(gts)} GT sets, {len(vis)} visibility masks")
    return ope_from_errors([sequence_errors(p, g, v) for p, g, v in zip(preds, gts, vis)])


# ----------------------------------------------------------------------------- GOT-10k
def got10k_sequence_ious(pred, gt, bound: tuple[float, float], cover=None, visible=None) -> np.ndarray:
    """The IoUs one GOT-10k sequence contributes: frame 1 dropped, frames with cover > 0 (or visible) kept."""
    p, g = _as_boxes(pred, "pred"), _as_boxes(gt, "gt")
    check_predictions(p, len(g))
    ious = iou_continuous(p[1:], g[1:], bound=bound)
    if cover is not None:
        keep = np.asarray(cover).reshape(-1)[1:] > 0
    elif visible is not None:
        keep = np.asarray(visible, dtype=bool).reshape(-1)[1:]
    else:
        keep = np.ones(len(ious), dtype=bool)
    return ious[keep]


@dataclass
class GOT10kResult:
    """GOT-10k scores over pooled frames: AO, SR in percent; the success curve in fractions of frames."""

    ao: float
    sr50: float
    sr75: float
    success_curve: np.ndarray
    per_sequence_ao: np.ndarray
    num_frames: int

    def to_dict(self) -> dict:
        return {
            "ao": self.ao,
            "sr50": self.sr50,
            "sr75": self.sr75,
            "num_frames": self.num_frames,
            "success_curve": {"thresholds": GOT10K_THRESHOLDS.tolist(), "values": self.success_curve.tolist()},
        }


def got10k_from_ious(per_sequence: Seq[np.ndarray]) -> GOT10kResult:
    """Pool per-sequence IoU arrays (frame-weighted) into AO / SR0.5 / SR0.75 (percent)."""
    if not per_sequence:
        raise MetricInputError("no sequences to score")
    pooled = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in per_sequence])
    if pooled.size == 0:
        raise MetricInputError("no valid frames to score")
    per_ao = np.array([np.mean(x) * 100.0 if len(x) else np.nan for x in per_sequence])
    return GOT10kResult(
        ao=float(pooled.mean() * 100.0),
        sr50=float((pooled > 0.5).mean() * 100.0),
        sr75=float((pooled > 0.75).mean() * 100.0),
        success_curve=(pooled[:, None] > GOT10K_THRESHOLDS[None, :]).mean(axis=0),
        per_sequence_ao=per_ao,
        num_frames=int(pooled.size),
    )


# ----------------------------------------------------------------------------- speed and depth
@dataclass
class SpeedDepth:
    """Speed over tracked frames (init frame excluded) and early-exit depth statistics; None where unmeasured."""

    fps: float | None
    ms_per_frame: float | None
    mean_layers: float | None
    exit_histogram: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "fps": self.fps,
            "ms_per_frame": self.ms_per_frame,
            "mean_layers": self.mean_layers,
            "exit_histogram": {str(k): v for k, v in sorted(self.exit_histogram.items())},
        }


def speed_and_depth(times: Seq[np.ndarray], exits: Seq[np.ndarray] | None = None) -> SpeedDepth:
    """Pooled fps over tracked frames (frame 1 = initialisation is left out) and exit-layer statistics.

    ``times`` are seconds per frame (finite, >= 0). ``exits`` holds one 1-based
    exit layer per frame with 0 for the initialisation frame (which runs no
    exit); zeros are ignored. Without times (or tracked frames) fps and
    ms/frame are None: unmeasured, not infinitely slow.
    """
    t = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1)[1:] for x in times]) if times else np.array([])
    if not (np.isfinite(t) & (t >= 0)).all():
        raise MetricInputError("per-frame times must be finite and >= 0")
    total = float(t.sum())
    fps = float(len(t) / total) if total > 0 else None
    ms = float(total / len(t) * 1000.0) if len(t) else None
    mean_layers, hist = None, {}
    if exits:
        e = np.concatenate([np.asarray(x, dtype=np.int64).reshape(-1) for x in exits])
        if (e < 0).any():
            raise MetricInputError("exit layers must be >= 0")
        e = e[e > 0]
        if e.size:
            mean_layers = float(e.mean())
            values, counts = np.unique(e, return_counts=True)
            hist = {int(v): int(c) for v, c in zip(values, counts)}
    return SpeedDepth(fps=fps, ms_per_frame=ms, mean_layers=mean_layers, exit_histogram=hist)
