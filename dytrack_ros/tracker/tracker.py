"""Single-object tracker runtime: explicit state around an inference backend.

Pipeline per frame: crop/normalise (preprocess) -> backend (network, early
exit) -> decode + map back + clip (postprocess) -> status update.
Frames are RGB uint8 numpy arrays of shape (H, W, 3); convert BGR at the edges.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..backends import Backend, BackendOutput, load_backend
from ..config import TrackerConfig
from ..exit_policy import ExitPolicy
from ..runtime_options import RuntimeOptions
from .budget import BudgetConfig, BudgetController, BudgetState, ExitSweep
from .postprocess import box_iou, clip_box, decode, map_box_back, update_size
from .preprocess import Crop, normalize, sample_target
from .recovery import Recovery, RecoveryCounts
from .status import StatusWindow, TrackStatus


class TrackerInputError(ValueError):
    """A frame or box given to the tracker is unusable; the tracker state is unchanged."""


class TrackerStateError(RuntimeError):
    """The call is not valid in the tracker's current state (e.g. track() before initialize())."""


class TrackerOutputError(RuntimeError):
    """The network answered with non-finite numbers (NaN/inf), typically from broken weights; the tracker
    state is unchanged and nothing of that frame may be reported as a box or score."""


# Init boxes: a side below one pixel gives no crop to learn a template from (1e-300 underflowed to a
# zero-pixel crop); a side far beyond the image is not a target in it (1e200 overflowed the crop
# arithmetic, 30000 px asked for a 10 GB crop). The factor leaves room for a close-up target that
# extends past the image borders.
MIN_BOX_SIDE = 1.0
MAX_BOX_TO_IMAGE = 10.0


@dataclass(frozen=True)
class ExitCandidate:
    """What one exit would answer on a frame (trace mode): its predicted IoU and its box, before clipping."""

    exit_index: int
    exit_layer: int
    pred_iou: float | None
    box: tuple[float, float, float, float]
    score: float


@dataclass(frozen=True)
class TrackResult:
    box: tuple[float, float, float, float]  # x, y, w, h in image pixels
    score: float  # confidence: max of the un-windowed score map, in [0, 1]
    status: TrackStatus
    exit_layer: int  # 1-based layer where inference stopped
    num_layers: int
    pred_iou: float | None = None  # decisioner's predicted IoU at the exit that fired
    timings: dict[str, float] = field(default_factory=dict)  # ms: preprocess, inference, postprocess, total
    frame_index: int = 0
    exit_index: int = 0  # 0-based exit that answered
    stage_ms: tuple[float, ...] = ()  # wall ms of each executed stage
    candidates: tuple[ExitCandidate, ...] = ()  # trace mode only: every exit's answer on this frame
    thresholds: tuple[float, ...] = ()  # exit thresholds in force for this frame
    cut_by_deadline: bool = False  # the deadline gate answered before the exit rule did
    budget: BudgetState | None = None  # the budget controller's state after this frame (when a budget is set)
    lost_frames: int = 0  # frames since the target was declared lost (0 unless status is lost/searching)
    last_confident_box: tuple[float, float, float, float] | None = None  # latest box at >= uncertain_threshold
    redetect_windows: int = 0  # re-detection windows evaluated on this frame


def validate_frame(frame) -> np.ndarray:
    """Return ``frame`` if it is an RGB uint8 (H, W, 3) array, else raise TrackerInputError."""
    if frame is None:
        raise TrackerInputError("frame is None")
    if not isinstance(frame, np.ndarray):
        raise TrackerInputError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise TrackerInputError(f"frame must be uint8 RGB (H, W, 3), got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        hint = (" (convert greyscale/RGBA to RGB first)"
                if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 4)) else "")
        raise TrackerInputError(f"frame must have shape (H, W, 3), got {frame.shape}{hint}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise TrackerInputError(f"frame is empty: shape {frame.shape}")
    return frame


def validate_box(box, height: int, width: int) -> tuple[float, float, float, float]:
    """Init box (x, y, w, h): finite, positive size, at least partly inside the image."""
    try:
        values = tuple(float(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise TrackerInputError(f"box must be 4 numbers (x, y, w, h), got {box!r}") from exc
    if len(values) != 4:
        raise TrackerInputError(f"box must be 4 numbers (x, y, w, h), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise TrackerInputError(f"box has non-finite values: {values}")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise TrackerInputError(f"box width and height must be positive, got w={w:g}, h={h:g}")
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise TrackerInputError(f"box width and height must be at least {MIN_BOX_SIDE:g} pixel, got w={w:g}, h={h:g}")
    if w > MAX_BOX_TO_IMAGE * width or h > MAX_BOX_TO_IMAGE * height:
        raise TrackerInputError(f"box size {w:g}x{h:g} is more than {MAX_BOX_TO_IMAGE:g} times the "
                                f"{width}x{height} image")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise TrackerInputError(f"box ({x:g}, {y:g}, {w:g}, {h:g}) lies entirely outside the {width}x{height} image")
    return values


class Tracker:
    """initialize(frame, box) once, then track(frame) per frame."""

    def __init__(self, backend: Backend, config: TrackerConfig | None = None) -> None:
        self.backend = backend
        self.config = config or TrackerConfig()
        self.model_config = backend.config
        self._state: tuple[float, float, float, float] | None = None
        self._frame_index = 0
        self._status = StatusWindow()
        self._budget: BudgetController | None = None
        self._recovery = Recovery()

    @classmethod
    def from_model(cls, model: str | Path, options: RuntimeOptions | None = None, config: TrackerConfig | None = None,
                   ce: bool | None = None, **option_overrides) -> "Tracker":
        """Load ``model`` as ``options`` say (backend ``auto``: see :func:`~dytrack_ros.backends.load_backend`).

        ``option_overrides`` (``backend=``, ``device=``, ``precision=``, ``threads=``) replace single fields
        of ``options``; ``ce`` only matters for official OSTrack checkpoints (None: detect).
        """
        return cls(load_backend(model, options, ce=ce, **option_overrides), config)

    # properties ---------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self._state is not None

    @property
    def state(self) -> tuple[float, float, float, float] | None:
        return self._state

    @property
    def exit_layers(self) -> tuple[int, ...]:
        return self.backend.exit_layers

    @property
    def exit_policy(self) -> ExitPolicy:
        return self.backend.exit_policy

    @property
    def exit_thresholds(self) -> tuple[float, ...]:
        return self.backend.exit_thresholds

    @property
    def exit_agreement(self) -> float:
        """IoU an early exit's box needs with the previous frame's box (0: off): the tracker config's value, or
        with -1 there the model file's (calibrated with its thresholds)."""
        value = float(self.config.exit_agreement)
        if value < 0:
            value = float(self.model_config.exit_agreement)
        return value if self.exit_layers else 0.0

    def set_exit_thresholds(self, thresholds: Sequence[float] | float | str) -> None:
        """Validate and apply exit thresholds (one per exit, or one for every early exit); raises
        :class:`~dytrack_ros.exit_policy.ExitPolicyError` and keeps the old ones on bad input."""
        self.backend.set_exit_thresholds(thresholds)

    def set_config(self, config: TrackerConfig) -> None:
        """Apply a new tracker configuration now. Switching recovery off while the target is lost ends the lost
        state (tracking resumes from the held box); the recovery counts are kept."""
        if self.config.recovery and not config.recovery and self._recovery.lost:
            self._recovery.reset(self._state)
        self.config = config

    # latency budget -------------------------------------------------------------
    @property
    def budget(self) -> BudgetController | None:
        return self._budget

    def set_budget(self, config: BudgetConfig | None, stage_base_ms: Sequence[float] | None = None) -> None:
        """Hold a per-frame latency budget and/or a target mean depth (``None`` or an inactive config: off).

        While a budget is set, a :class:`BudgetController` chooses the exit thresholds on every frame
        (the thresholds set with :meth:`set_exit_thresholds` apply again when it is switched off).
        ``stage_base_ms``: the stages' costs at no load; measured here by a short warm-up when omitted
        (before :meth:`initialize`, or it replaces the template). A change of goals keeps the learned state.
        """
        if config is None or not config.active:
            self._budget = None
            return
        if not self.exit_layers:
            raise TrackerStateError("a latency budget needs a model with early exits")
        if self._budget is not None and stage_base_ms is None:
            self._budget.config = config
            self._budget.tau = min(max(self._budget.tau, config.min_threshold), config.max_threshold)
            return
        if stage_base_ms is None:
            if self.initialized:
                raise TrackerStateError("set the first budget before initialize(), or pass stage_base_ms")
            stage_base_ms = self.measure_stage_ms()
        table = (self.backend.model_info.get("calibration") or {}).get("table")
        sweep = ExitSweep.from_calibration(table, len(self.exit_layers))
        tau = max(self.exit_thresholds[:-1] or (1.0,))
        self._budget = BudgetController(config, tuple(self.exit_layers), tuple(float(v) for v in stage_base_ms),
                                        sweep, tau=tau)

    def measure_stage_ms(self, repeats: int = 5) -> list[float]:
        """Median time of each stage on zero inputs (replaces the template: call before initialize)."""
        self.backend.warmup(1)
        cfg = self.model_config
        search = np.zeros((1, 3, cfg.search_size, cfg.search_size), np.float32)
        samples = [self.backend.infer_all(search)[-1].stage_ms for _ in range(max(1, repeats))]
        return [float(v) for v in np.median(np.asarray(samples), axis=0)]

    @property
    def model_name(self) -> str:
        return self.backend.model_name

    @property
    def num_layers(self) -> int:
        return self.model_config.depth

    @property
    def backend_info(self) -> dict[str, str]:
        return self.backend.info()

    # API ------------------------------------------------------------------------
    @property
    def recovery_counts(self) -> RecoveryCounts:
        """Losses, re-detection frames/windows, candidates and re-acquisitions since :meth:`initialize`."""
        return self._recovery.counts

    @property
    def lost(self) -> bool:
        """True while the target is lost and recovery searches for it."""
        return self._recovery.lost

    def reset(self) -> None:
        self._state = None
        self._frame_index = 0
        self._status.reset()
        self._recovery = Recovery()

    def initialize(self, frame: np.ndarray, box_xywh: Sequence[float]) -> None:
        frame = validate_frame(frame)
        box = validate_box(box_xywh, frame.shape[0], frame.shape[1])
        cfg = self.model_config
        crop = sample_target(frame, box, cfg.template_factor, cfg.template_size)
        self.backend.set_template(normalize(crop.patch))
        self._state = box
        self._frame_index = 0
        self._status.reset()
        self._recovery = Recovery()
        self._recovery.reset(box)

    def track(self, frame: np.ndarray, trace: bool = False) -> TrackResult:
        """Track one frame. ``trace=True`` evaluates every exit (no compute saved) and reports each exit's
        answer in ``TrackResult.candidates``; the state still follows the exit that the policy picks, so a
        traced run follows exactly the trajectory of a normal run (calibration and analysis use this)."""
        if self._state is None:
            raise TrackerStateError("track() called before initialize()")
        frame = validate_frame(frame)
        cfg = self.model_config
        t0 = time.perf_counter()
        if self.config.recovery and self._recovery.lost:
            return self._track_lost(frame, t0)
        crop = sample_target(frame, self._state, cfg.search_factor, cfg.search_size)
        search = normalize(crop.patch)
        t1 = time.perf_counter()
        ctrl = self._budget
        policy = self.exit_policy
        if ctrl is not None:
            ctrl.choose()
            policy = ctrl.policy()
        decoded: dict[int, tuple] = {}  # exit index -> (box, score): each exit's maps are decoded once

        def decode_exit(k: int, o: BackendOutput) -> tuple:
            if k not in decoded:
                decoded[k] = self._decode(o, crop)
            return decoded[k]

        accept = None
        # a latency budget / target depth owns the exit decision: its controller replays the threshold rule
        agree_iou = self.exit_agreement if ctrl is None else 0.0
        if agree_iou > 0:
            accept = lambda k, o: box_iou(decode_exit(k, o)[0], self._state) >= agree_iou  # noqa: E731
        if trace:
            outs = self.backend.infer_all(search)
            accepted = None if accept is None else [accept(k, o) for k, o in enumerate(outs)]
            out = outs[policy.first_exit([o.pred_iou for o in outs], accepted)]
        else:
            gate = None
            if ctrl is not None and ctrl.config.deadline:
                gate = lambda k: ctrl.gate((time.perf_counter() - t0) * 1e3, k)  # noqa: E731
            outs, out = (), self.backend.infer(search, policy, gate, accept)
        t2 = time.perf_counter()
        box, score = decode_exit(out.exit_index, out)
        if not (math.isfinite(score) and all(math.isfinite(v) for v in box)):
            raise TrackerOutputError(
                f"the network gave a non-finite result at exit layer {out.exit_layer} (score {score}, "
                f"box {tuple(float(v) for v in box)}): the model weights are likely broken; nothing is reported "
                "for this frame and the target state is kept")
        candidates = ()
        if trace:
            candidates = tuple(ExitCandidate(o.exit_index, o.exit_layer, o.pred_iou, *decode_exit(k, o))
                               for k, o in enumerate(outs))
        box = self._smoothed_size(box, score, early=out.exit_index < self.backend.num_stages - 1)
        box = clip_box(box, frame.shape[0], frame.shape[1], self.config.clip_margin)
        status = self._status.update(score, self.config)
        self._state = box
        box, status = self._recover_after_track(frame, box, score, status)
        self._frame_index += 1
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                   "postprocess": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        state = None
        if ctrl is not None:
            ctrl.update(out.stage_ms, timings["total"], out.exit_index, out.stage_pred_iou, out.cut_by_deadline)
            state = ctrl.state()
        return TrackResult(tuple(float(v) for v in box), score, status, out.exit_layer, cfg.depth,
                           out.pred_iou, timings, self._frame_index, out.exit_index, tuple(out.stage_ms), candidates,
                           policy.thresholds, out.cut_by_deadline, state, self._recovery.lost_frames,
                           self._recovery.last_confident)

    def _smoothed_size(self, box, score: float, early: bool = False) -> tuple[float, float, float, float]:
        """The network's box with the size update of the config (smoothing, per-frame bound) against the state;
        ``early``: the answer came from an exit before the last (``early_exit_size_lr`` applies).
        Only frames tracked from the state go through it: a re-acquisition takes the re-detected size as it is."""
        tc = self.config
        lr = float(tc.size_lr) * (min(max(score, 0.0), 1.0) if tc.size_lr_by_score else 1.0)
        if early:
            lr *= float(tc.early_exit_size_lr)
        if lr == 1.0 and not tc.max_scale_change:
            return box  # the network's box unchanged (no rounding through the centre)
        return update_size(box, self._state, lr, float(tc.max_scale_change))

    # lost-target recovery -------------------------------------------------------------------------
    def _recover_after_track(self, frame: np.ndarray, box, score: float, status: TrackStatus):
        """Hold instead of following low-confidence boxes; declare the target lost (see tracker/recovery.py).
        Returns the box to report and the status. Without recovery only the last confident box is kept."""
        rec, tc = self._recovery, self.config
        h, w = frame.shape[:2]
        rec.since_confident += 1
        if score >= tc.uncertain_threshold:
            rec.confident(box)
        if not tc.recovery:
            return box, status
        if tc.hold_low_scores and score < tc.lost_threshold:
            box = self._state = rec.held_box(tc, w, h)
        if status is TrackStatus.LOST:
            box = self._state = rec.held_box(tc, w, h)
            rec.declare_lost(frame.shape, tc, self.model_config.search_factor)
        return box, status

    def _track_lost(self, frame: np.ndarray, t0: float) -> TrackResult:
        """One lost frame: verify a candidate, or search (enlarged local crop + this frame's windows)."""
        rec, tc, cfg = self._recovery, self.config, self.model_config
        h, w = frame.shape[:2]
        held = rec.held_box(tc, w, h)
        windows: list = []
        reacquired = False
        ctrl = self._budget
        policy = ctrl.policy() if ctrl is not None else self.exit_policy
        if rec.candidate is not None:
            crop = sample_target(frame, rec.candidate, cfg.search_factor, cfg.search_size)
            t1 = time.perf_counter()
            out = self.backend.infer(normalize(crop.patch), policy)
            t2 = time.perf_counter()
            found, score = self._decode_at(out, crop, rec.candidate, tc.use_hann_window)
            _check_finite(found, score, "verifying a re-detected candidate")
            found = clip_box(found, h, w, tc.clip_margin)
            reacquired = rec.verify(found, score, tc)
            exit_layer, exit_index, stage_ms = out.exit_layer, out.exit_index, tuple(out.stage_ms)
        else:
            factor = cfg.search_factor * rec.search_scale(tc)
            windows = rec.next_windows(tc)
            crops = [sample_target(frame, held, factor, cfg.search_size)]
            crops += [sample_target(frame, wbox, cfg.search_factor, cfg.search_size) for wbox in windows]
            batch = np.concatenate([normalize(c.patch) for c in crops])
            t1 = time.perf_counter()
            outs = self.backend.infer_batch(batch, 0)
            t2 = time.perf_counter()
            decoded = [self._decode_at(o, c, b, tc.use_hann_window and i == 0)
                       for i, (o, c, b) in enumerate(zip(outs, crops, [held] + windows))]
            best = max(range(len(decoded)), key=lambda i: decoded[i][1])
            found, score = decoded[best]
            _check_finite(found, score, "searching")
            found = clip_box(found, h, w, tc.clip_margin)
            reacquired = rec.propose(found, score, tc)
            exit_layer, exit_index = outs[best].exit_layer, outs[best].exit_index
            stage_ms = (sum(o.stage_ms[-1] for o in outs),)
        if reacquired:
            rec.reacquired(found)
            self._status.reset()
            self._status.update(score, tc)
            box, status, lost_frames = found, TrackStatus.REDETECTED, 0
        else:
            searching = rec.lost_frames >= int(tc.redetect_after_frames) and int(tc.redetect_windows) > 0
            status = TrackStatus.SEARCHING if searching else TrackStatus.LOST
            rec.end_frame_lost()
            box, lost_frames = rec.held_box(tc, w, h), rec.lost_frames
        self._state = box
        self._frame_index += 1
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3,
                   "postprocess": (t3 - t2) * 1e3, "total": (t3 - t0) * 1e3}
        return TrackResult(tuple(float(v) for v in box), float(score), status, exit_layer, cfg.depth, None, timings,
                           self._frame_index, exit_index, stage_ms, (), policy.thresholds, False,
                           ctrl.state() if ctrl is not None else None, lost_frames, rec.last_confident, len(windows))

    def _decode_at(self, out: BackendOutput, crop: Crop, centre_box, use_window: bool):
        """Like :meth:`_decode`, for a crop centred on ``centre_box`` instead of the state."""
        box_norm, score = decode(out.score_map, out.size_map, out.offset_map, use_window)
        box = map_box_back(box_norm, centre_box, self.model_config.search_size / crop.resize_factor)
        return box, score

    def _decode(self, out: BackendOutput, crop: Crop) -> tuple[tuple[float, float, float, float], float]:
        """Exit maps -> image box around the current state (not yet clipped) and confidence."""
        box_norm, score = decode(out.score_map, out.size_map, out.offset_map, self.config.use_hann_window)
        box = map_box_back(box_norm, self._state, self.model_config.search_size / crop.resize_factor)
        return box, score


def _check_finite(box, score: float, doing: str) -> None:
    """Refuse a non-finite network answer before it changes any state (broken weights)."""
    if not all(math.isfinite(v) for v in (*box, score)):
        raise TrackerOutputError(f"the network gave a non-finite result while {doing} (score {score}); the model "
                                 "weights are likely broken; the target state is kept")
