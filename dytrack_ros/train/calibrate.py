"""Exit-threshold calibration: pick DyTrack thresholds that meet a mean-depth or latency budget.

Procedure (our design):

1. Track every validation sequence once at full depth, evaluating *every*
   exit on every frame (exits k < L do not depend on later stages, so this is
   exactly what the early-exit tracker would compute up to its exit), and
   record each exit's predicted IoU ``q_k`` and the IoU its box has with the GT.
2. One shared threshold ``τ`` for all non-final exits (the last exit always
   answers, ``τ_L = 0``). For each ``τ`` on a 0.01 grid simulate the exit rule
   (first k with ``q_k ≥ τ``) on the recorded frames: mean executed depth,
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
import torch

from ..data.sequence import Sequence
from ..model.tracker_net import TrackerNet
from ..tracker.postprocess import clip_box, decode, map_box_back
from ..tracker.preprocess import normalize, sample_target
from .pairs import read_rgb

TAU_GRID = np.round(np.arange(0.0, 1.0001, 0.01), 2)


class CalibrationError(ValueError):
    """Calibration asked for a model without exits, no data, or an unreachable target."""


def _iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class SequenceTrace:
    """Per frame (frames 2..n): each exit's predicted IoU and true IoU, the answering exit, the output box."""

    name: str
    pred_iou: np.ndarray  # (n-1, K)
    true_iou: np.ndarray  # (n-1, K)
    exit_index: np.ndarray  # (n-1,)
    boxes: np.ndarray  # (n, 4), frame 1 = init box
    seconds: float = 0.0


@torch.inference_mode()
def trace_sequence(model: TrackerNet, seq: Sequence, thresholds: Seq[float] | None = None,
                   device: str | torch.device = "cpu", use_window: bool = True, clip_margin: int = 10) -> SequenceTrace:
    """Track ``seq`` with the exit rule at ``thresholds`` (None = full depth) while evaluating all exits."""
    cfg = model.cfg
    k_exits = model.num_stages
    th = [1.0] * (k_exits - 1) + [0.0] if thresholds is None else list(thresholds)
    first = read_rgb(seq.frames[0])
    state = seq.init_box
    z = torch.from_numpy(normalize(sample_target(first, state, cfg.template_factor, cfg.template_size).patch)).to(device)
    pq, tq, ex, boxes = [], [], [], [state]
    t0 = time.perf_counter()
    for i in range(1, len(seq)):
        frame = read_rgb(seq.frames[i])
        H, W = frame.shape[:2]
        crop = sample_target(frame, state, cfg.search_factor, cfg.search_size)
        x = torch.from_numpy(normalize(crop.patch)).to(device)
        outs = model.forward_all_exits(z, x)
        qs, cand = [], []
        for out in outs:
            box_n, _ = decode(out.score_map.float().cpu().numpy(), out.size_map.float().cpu().numpy(),
                              out.offset_map.float().cpu().numpy(), use_window)
            cand.append(map_box_back(box_n, state, cfg.search_size / crop.resize_factor))
            qs.append(float(out.pred_iou[0]) if out.iou_logit is not None else 1.0)
        chosen = next(k for k in range(k_exits) if k == k_exits - 1 or qs[k] >= th[k])
        gt = seq.gt[i] if seq.has_full_gt else None
        tq.append([_iou(c, gt) if gt is not None and seq.visible[i] else np.nan for c in cand])
        pq.append(qs)
        ex.append(chosen)
        state = clip_box(cand[chosen], H, W, clip_margin)
        boxes.append(state)
    return SequenceTrace(seq.name, np.asarray(pq).reshape(-1, k_exits), np.asarray(tq).reshape(-1, k_exits),
                         np.asarray(ex, dtype=np.int64), np.asarray(boxes, dtype=np.float64),
                         time.perf_counter() - t0)


def simulate_exits(pred_iou: np.ndarray, thresholds: Seq[float]) -> np.ndarray:
    """Exit index per frame for recorded (frames, K) predicted IoUs under the first-pass rule."""
    k = pred_iou.shape[1]
    passed = pred_iou >= np.asarray(thresholds)[None, :]
    passed[:, -1] = True
    return passed.argmax(axis=1)


@torch.inference_mode()
def stage_latency_ms(model: TrackerNet, repeats: int = 20, device: str | torch.device = "cpu") -> list[float]:
    """Median batch-1 time of each stage (stage 0 includes the embedding), forward only."""
    cfg = model.cfg
    z = torch.zeros(1, 3, cfg.template_size, cfg.template_size, device=device)
    x = torch.zeros(1, 3, cfg.search_size, cfg.search_size, device=device)
    times = [[] for _ in range(model.num_stages)]
    for r in range(repeats + 3):
        t = time.perf_counter()
        tokens = model.embed(z, x)
        for k in range(model.num_stages):
            tokens, _ = model.forward_stage(k, tokens)
            now = time.perf_counter()
            if r >= 3:
                times[k].append((now - t) * 1000.0)
            t = now
    return [float(np.median(v)) for v in times]


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

    def to_dict(self) -> dict:
        return asdict(self)


def sweep(traces: Seq[SequenceTrace], exit_layers: Seq[int], stage_ms: Seq[float], taus=TAU_GRID) -> list[dict]:
    """Depth / latency / IoU of the exit rule at each shared threshold, on recorded traces."""
    q = np.concatenate([t.pred_iou for t in traces])
    tiou = np.concatenate([t.true_iou for t in traces])
    layers = np.asarray(exit_layers, dtype=np.float64)
    cum_ms = np.cumsum(stage_ms)
    rows = []
    for tau in taus:
        th = [float(tau)] * (q.shape[1] - 1) + [0.0]
        e = simulate_exits(q, th)
        chosen_iou = tiou[np.arange(len(e)), e]
        rows.append({
            "tau": float(tau), "depth": float(layers[e].mean()), "latency_ms": float(cum_ms[e].mean()),
            "mean_iou": float(np.nanmean(chosen_iou)) if np.isfinite(chosen_iou).any() else float("nan"),
            "exit_fractions": [float((e == k).mean()) for k in range(q.shape[1])],
        })
    return rows


def calibrate(model: TrackerNet, sequences: Seq[Sequence], target_depth: float | None = None,
              target_latency_ms: float | None = None, device: str | torch.device = "cpu", data_label: str = "",
              verify: bool = True, progress: bool = True) -> CalibrationResult:
    """Choose thresholds for a mean-depth or latency target (exactly one of the two)."""
    if not model.cfg.has_exits:
        raise CalibrationError("calibration needs a model with DyTrack exits")
    if (target_depth is None) == (target_latency_ms is None):
        raise CalibrationError("give exactly one of target_depth or target_latency_ms")
    seqs = [s for s in sequences if len(s) > 1 and s.has_full_gt]
    if not seqs:
        raise CalibrationError("no validation sequence with at least 2 annotated frames")
    model.eval()
    from tqdm import tqdm

    traces = [trace_sequence(model, s, None, device) for s in tqdm(seqs, desc="calibration trace", disable=not progress)]
    stage_ms = stage_latency_ms(model, device=device)
    rows = sweep(traces, model.cfg.exit_layers, stage_ms)
    key, target = ("depth", target_depth) if target_depth is not None else ("latency_ms", target_latency_ms)
    feasible = [r for r in rows if r[key] <= target + 1e-9]
    if not feasible:
        best = min(rows, key=lambda r: r[key])
        raise CalibrationError(f"target {key} {target} is unreachable: the most aggressive threshold gives {best[key]:.3f}")
    pick = max(feasible, key=lambda r: r["tau"])
    th = [pick["tau"]] * (model.num_stages - 1) + [0.0]
    res = CalibrationResult(th, target_depth, target_latency_ms, pick["depth"], pick["latency_ms"], pick["mean_iou"],
                            stage_ms=stage_ms, table=rows, data=data_label, num_sequences=len(seqs),
                            num_frames=int(sum(len(s) - 1 for s in seqs)))
    if verify:
        checks = [trace_sequence(model, s, th, device) for s in seqs]
        e = np.concatenate([c.exit_index for c in checks])
        res.measured_depth = float(np.asarray(model.cfg.exit_layers)[e].mean())
        res.measured_exit_fractions = [float((e == k).mean()) for k in range(model.num_stages)]
    return res


def apply_calibration(model: TrackerNet, result: CalibrationResult, path: str | Path, info: dict | None = None) -> Path:
    """Set the thresholds on ``model`` and write it with ``info['calibration']``."""
    from ..model_io.model_file import save_model_file

    model.set_exit_thresholds(result.thresholds)
    info = dict(info or {})
    cal = result.to_dict()
    cal["table"] = [r for r in cal["table"] if round(r["tau"] * 100) % 5 == 0]  # keep the file small: 0.05 steps
    info["calibration"] = cal
    return save_model_file(model, path, info=info)


__all__ = ["CalibrationError", "CalibrationResult", "apply_calibration", "calibrate", "simulate_exits",
           "stage_latency_ms", "sweep", "trace_sequence"]


def calibrate_from_config(model_path, cal, out=None, device="cpu", return_result: bool = False):
    """Load a model file, calibrate on ``cal.data`` (a DataSource), write the result (default: in place)."""
    from ..model_io.model_file import load_model_file
    from .pairs import load_source

    if cal.data is None:
        raise CalibrationError("calibration.data (validation sequences) is not set")
    model, info = load_model_file(model_path, device=device)
    seqs = load_source(cal.data)[: cal.max_sequences]
    result = calibrate(model, seqs, target_depth=cal.target_depth or None,
                       target_latency_ms=cal.target_latency_ms or None, device=device,
                       data_label=f"{cal.data.format}:{cal.data.root}:{cal.data.split or ''}")
    path = apply_calibration(model, result, out or model_path, info)
    return (path, result) if return_result else path
