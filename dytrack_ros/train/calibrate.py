"""Exit-threshold calibration: pick DyTrack thresholds that meet a mean-depth or latency budget.

Procedure (our design):

1. Track every validation sequence once at full depth with the product's own
   :class:`~dytrack_ros.tracker.Tracker` in trace mode, which evaluates *every*
   exit on every frame (exits k < L do not depend on later stages, so this is
   exactly what the early-exit tracker would compute up to its exit), and
   record each exit's predicted IoU ``q_k`` and the IoU its box has with the GT.
2. One shared threshold ``τ`` for all non-final exits (the last exit always
   answers). For each ``τ`` on a 0.01 grid apply the exit rule of
   :class:`~dytrack_ros.exit_policy.ExitPolicy` to the recorded frames: mean executed depth,
   expected latency (measured per-stage cost on this machine) and the mean
   IoU of the boxes that would have answered.
3. Choose the *largest* ``τ`` (most accurate) whose mean depth / latency is
   within the target; then re-run the tracker with it to measure the depth it
   really gets (the trajectory changes when an early exit answers).

The result goes into ``ModelConfig.exit_thresholds`` and, with the table and
the validation data, into the model file's ``info['calibration']``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence as Seq

import numpy as np

from ..backends import Backend, load_backend
from ..data.sequence import Sequence
from ..eval.metrics import iou_continuous
from ..exit_policy import ExitPolicy
from ..model.tracker_net import TrackerNet
from ..runtime_options import RuntimeOptions
from ..tracker import Tracker
from ..tracker.postprocess import box_iou
from .pairs import read_rgb

TAU_GRID = np.round(np.arange(0.0, 1.0001, 0.01), 2)


class CalibrationError(ValueError):
    """Calibration asked for a model without exits, no data, or an unreachable target."""


@dataclass
class SequenceTrace:
    """Per frame (frames 2..n): each exit's predicted IoU and true IoU, the answering exit, the output box."""

    name: str
    pred_iou: np.ndarray  # (n-1, K)
    true_iou: np.ndarray  # (n-1, K)
    exit_index: np.ndarray  # (n-1,)
    boxes: np.ndarray  # (n, 4), frame 1 = init box
    seconds: float = 0.0
    agreement: np.ndarray | None = None  # (n-1, K): IoU of each exit's box with the previous frame's box


def as_tracker(model: TrackerNet | Backend | Tracker, device: str | None = None,
               options: RuntimeOptions | None = None) -> Tracker:
    """The product's own Tracker around ``model`` (a network is loaded like any model, on the torch backend);
    ``device`` overrides ``options.device``."""
    if isinstance(model, Tracker):
        return model
    if isinstance(model, TrackerNet):
        model = load_backend(model, (options or RuntimeOptions()).replace(device=device))
    return Tracker(model)


def trace_sequence(model: TrackerNet | Backend | Tracker, seq: Sequence, thresholds: Seq[float] | None = None,
                   device: str | None = None) -> SequenceTrace:
    """Track ``seq`` with the real :class:`Tracker` in trace mode: the trajectory follows the exit rule at
    ``thresholds`` (None = full depth) while every exit's answer is recorded. Lost-target recovery is off while
    tracing (its lost frames run no exit rule); the tracker's configuration is restored afterwards."""
    tracker = as_tracker(model, device)
    policy = ExitPolicy.for_model(tracker.exit_layers, thresholds)
    saved, saved_config = tracker.exit_policy, tracker.config
    tracker.backend.exit_policy = policy
    # the plain tracking trajectory: recovery's lost frames run no exit rule, so they would record no exits
    tracker.set_config(saved_config.replace(recovery=False))
    try:
        tracker.initialize(read_rgb(seq.frames[0]), seq.init_box)
        pq, tq, ag, ex, boxes = [], [], [], [], [tuple(seq.init_box)]
        t0 = time.perf_counter()
        for i in range(1, len(seq)):
            res = tracker.track(read_rgb(seq.frames[i]), trace=True)
            gt = seq.gt[i] if seq.has_full_gt and seq.visible[i] else None
            pq.append([1.0 if c.pred_iou is None else c.pred_iou for c in res.candidates])
            # continuous IoU, the quantity the decisioners are trained to predict
            tq.append(iou_continuous([c.box for c in res.candidates], [gt] * len(res.candidates)) if gt is not None
                      else [np.nan] * len(res.candidates))
            ag.append([box_iou(c.box, boxes[-1]) for c in res.candidates])
            ex.append(res.exit_index)
            boxes.append(res.box)
        seconds = time.perf_counter() - t0
    finally:
        tracker.backend.exit_policy = saved
        tracker.set_config(saved_config)
    k = policy.num_stages
    return SequenceTrace(seq.name, np.asarray(pq, dtype=np.float64).reshape(-1, k),
                         np.asarray(tq, dtype=np.float64).reshape(-1, k), np.asarray(ex, dtype=np.int64),
                         np.asarray(boxes, dtype=np.float64), seconds, np.asarray(ag, dtype=np.float64).reshape(-1, k))


def stage_latency_ms(model: TrackerNet | Backend | Tracker, repeats: int = 20,
                     device: str | None = None) -> list[float]:
    """Median batch-1 wall time of each stage through the backend (stage 0 includes the embedding)."""
    backend = as_tracker(model, device).backend
    backend.warmup(2)
    search = np.zeros((1, 3, backend.config.search_size, backend.config.search_size), np.float32)
    samples = [backend.infer_all(search)[-1].stage_ms for _ in range(repeats)]
    return [float(v) for v in np.median(np.asarray(samples), axis=0)]


@dataclass
class CalibrationResult:
    thresholds: list[float]
    target_depth: float | None
    target_latency_ms: float | None
    predicted_depth: float
    predicted_latency_ms: float
    predicted_mean_iou: float
    measured_depth: float | None = None
    measured_exit_fractions: list[float] | None = None
    stage_ms: list[float] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)  # tau, depth, latency_ms, mean_iou, exit fractions
    data: str = ""
    num_sequences: int = 0
    num_frames: int = 0
    exit_agreement: float = 0.0  # the agreement IoU the thresholds were chosen with (stored with them)
    agreement_table: list[dict] = field(default_factory=list)  # agreement, depth, ... (when it was chosen)
    max_iou_drop: float | None = None  # the accuracy budget, when that was the target

    def to_dict(self) -> dict:
        return asdict(self)


def sweep(traces: Seq[SequenceTrace], exit_layers: Seq[int], stage_ms: Seq[float], taus=TAU_GRID,
          agreement: float = 0.0) -> list[dict]:
    """Depth / latency / IoU of the exit rule at each shared threshold, on recorded traces; ``agreement`` > 0
    also vetoes early exits whose box overlaps the previous frame's box by less (the tracker's rule)."""
    q = np.concatenate([t.pred_iou for t in traces])
    tiou = np.concatenate([t.true_iou for t in traces])
    accepted = np.concatenate([t.agreement for t in traces]) >= agreement if agreement > 0 else None
    layers = np.asarray(exit_layers, dtype=np.float64)
    cum_ms = np.cumsum(stage_ms)
    rows = []
    for tau in taus:
        e = ExitPolicy.for_model(exit_layers, float(tau)).first_exits(q, accepted)
        chosen_iou = tiou[np.arange(len(e)), e]
        rows.append({
            "tau": float(tau), "depth": float(layers[e].mean()), "latency_ms": float(cum_ms[e].mean()),
            "mean_iou": float(np.nanmean(chosen_iou)) if np.isfinite(chosen_iou).any() else float("nan"),
            "exit_fractions": [float((e == k).mean()) for k in range(q.shape[1])],
        })
    return rows


def calibrate(model: TrackerNet | Backend | Tracker, sequences: Seq[Sequence], target_depth: float | None = None,
              target_latency_ms: float | None = None, device: str | None = None, data_label: str = "",
              verify: bool = True, progress: bool = True, agreement: float | None = None,
              choose_agreement: bool = False, max_iou_drop: float | None = None) -> CalibrationResult:
    """Choose thresholds for a mean-depth or latency target, or for an accuracy budget (exactly one of the
    three), under the early-exit agreement ``agreement`` (default: the tracker's; see
    TrackerConfig.exit_agreement).

    ``max_iou_drop``: the accuracy budget. Of the rules whose mean IoU on the validation frames is at most this
    much below full depth's (absolute IoU, e.g. 0.01), the one with the least mean depth; so a user states what
    accuracy the exits may cost and gets the speed that buys, instead of guessing a depth.

    ``choose_agreement``: choose the agreement IoU instead (the largest on a 0.01 grid that meets the target),
    with every early-exit threshold at 0, so that only the footage-level agreement decides; the result's
    ``agreement_table`` holds that sweep. Depth chosen this way transfers across data far better than depth
    chosen on the learned exit scores (see TrackerConfig.exit_agreement).
    """
    tracker = as_tracker(model, device)
    saved_config = tracker.config
    try:
        return _calibrate(tracker, sequences, target_depth, target_latency_ms, data_label, verify, progress,
                          agreement, choose_agreement, max_iou_drop)
    finally:
        tracker.set_config(saved_config)


def _calibrate(tracker: Tracker, sequences, target_depth, target_latency_ms, data_label, verify, progress,
               agreement, choose_agreement, max_iou_drop) -> CalibrationResult:
    if agreement is not None and not choose_agreement:
        tracker.set_config(tracker.config.replace(exit_agreement=float(agreement)))
    agreement = tracker.exit_agreement
    exit_layers = tracker.exit_layers
    if not exit_layers:
        raise CalibrationError("calibration needs a model with DyTrack exits")
    if sum(t is not None for t in (target_depth, target_latency_ms, max_iou_drop)) != 1:
        raise CalibrationError("give exactly one of target_depth, target_latency_ms or max_iou_drop")
    if max_iou_drop is not None and not 0.0 <= max_iou_drop <= 1.0:
        raise CalibrationError(f"max_iou_drop must be an IoU difference in [0, 1], got {max_iou_drop}")
    seqs = [s for s in sequences if len(s) > 1 and s.has_full_gt]
    if not seqs:
        raise CalibrationError("no validation sequence with at least 2 annotated frames")
    from tqdm import tqdm

    traces = [trace_sequence(tracker, s, None) for s in tqdm(seqs, desc="calibration trace", disable=not progress)]
    stage_ms = stage_latency_ms(tracker)
    if max_iou_drop is not None:  # accuracy budget: the least depth within max_iou_drop of full depth
        floor = sweep(traces, exit_layers, stage_ms, taus=[1.0])[0]["mean_iou"] - max_iou_drop

        def fits(r: dict) -> bool:
            return r["mean_iou"] >= floor - 1e-9

        def best(rs: list[dict], by: str) -> dict:
            return min(rs, key=lambda r: (r["depth"], -r["mean_iou"]))

        def miss(what: str, r: dict) -> str:  # not reached in practice: full depth itself always fits
            return f"no exit rule keeps the mean IoU within {max_iou_drop} of full depth"
    else:
        key, target = ("depth", target_depth) if target_depth is not None else ("latency_ms", target_latency_ms)

        def fits(r: dict) -> bool:
            return r[key] <= target + 1e-9

        def best(rs: list[dict], by: str) -> dict:  # the most accurate rule (largest threshold or IoU) that fits
            return max(rs, key=lambda r: r[by])

        def miss(what: str, r: dict) -> str:
            return f"target {key} {target} is unreachable: {what} {r[key]:.3f}"
    agreement_rows = []
    if choose_agreement:
        agreement_rows = [{"agreement": float(g), **sweep(traces, exit_layers, stage_ms, taus=[0.0], agreement=g)[0]}
                          for g in TAU_GRID]
        feasible = [r for r in agreement_rows if fits(r)]
        if not feasible:
            raise CalibrationError(miss("the first exit alone gives", agreement_rows[0]))
        agreement = best(feasible, "agreement")["agreement"]
        tracker.set_config(tracker.config.replace(exit_agreement=agreement))
    rows = sweep(traces, exit_layers, stage_ms, agreement=agreement)
    feasible = [r for r in rows if fits(r)]
    if not feasible:
        raise CalibrationError(miss("the most aggressive threshold gives", rows[0]))
    # with a chosen agreement the thresholds stay 0: only the agreement decides
    pick = min(feasible, key=lambda r: r["tau"]) if choose_agreement else best(feasible, "tau")
    th = list(ExitPolicy.for_model(exit_layers, pick["tau"]).thresholds)
    res = CalibrationResult(th, target_depth, target_latency_ms, pick["depth"], pick["latency_ms"], pick["mean_iou"],
                            stage_ms=stage_ms, table=rows, data=data_label, num_sequences=len(seqs),
                            num_frames=int(sum(len(s) - 1 for s in seqs)), exit_agreement=agreement,
                            agreement_table=agreement_rows, max_iou_drop=max_iou_drop)
    if verify:
        checks = [trace_sequence(tracker, s, th) for s in seqs]
        e = np.concatenate([c.exit_index for c in checks])
        res.measured_depth = float(np.asarray(exit_layers)[e].mean())
        res.measured_exit_fractions = [float((e == k).mean()) for k in range(len(exit_layers))]
    return res


def apply_calibration(model: TrackerNet, result: CalibrationResult, path: str | Path, info: dict | None = None) -> Path:
    """Store the thresholds as ``model``'s default (its config) and write it with ``info['calibration']``."""
    from ..model_io.model_file import save_model_file

    model.cfg = model.cfg.replace(exit_thresholds=tuple(result.thresholds), exit_agreement=result.exit_agreement)
    info = dict(info or {})
    cal = result.to_dict()
    cal["table"] = [r for r in cal["table"] if round(r["tau"] * 100) % 5 == 0]  # keep the file small: 0.05 steps
    cal["agreement_table"] = [r for r in cal["agreement_table"] if round(r["agreement"] * 100) % 5 == 0]
    info["calibration"] = cal
    return save_model_file(model, path, info=info)


__all__ = ["CalibrationError", "CalibrationResult", "apply_calibration", "as_tracker", "calibrate",
           "stage_latency_ms", "sweep", "trace_sequence"]


def calibrate_from_config(model_path, cal, out=None, options: RuntimeOptions | None = None,
                          return_result: bool = False, device: str | None = None):
    """Load a model file, calibrate on ``cal.data`` (a DataSource), write the result (default: in place).

    ``options`` say how the model runs while calibrating (device, threads; latency targets are measured
    with them); ``device`` alone is the older spelling of ``options.device``.
    """
    from ..model_io.model_file import load_model_file
    from .pairs import load_source

    if cal.data is None:
        raise CalibrationError("calibration.data (validation sequences) is not set")
    options = (options or RuntimeOptions()).replace(device=device)
    model, info = load_model_file(model_path, device=options.device)
    seqs = load_source(cal.data)[: cal.max_sequences]
    result = calibrate(as_tracker(model, options=options), seqs, target_depth=cal.target_depth or None,
                       target_latency_ms=cal.target_latency_ms or None,
                       max_iou_drop=None if cal.max_iou_drop < 0 else cal.max_iou_drop,
                       data_label=f"{cal.data.format}:{cal.data.root}:{cal.data.split or ''}",
                       agreement=None if cal.exit_agreement < 0 else cal.exit_agreement,
                       choose_agreement=cal.choose_agreement)
    path = apply_calibration(model, result, out or model_path, info)
    return (path, result) if return_result else path
