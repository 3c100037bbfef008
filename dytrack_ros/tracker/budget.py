"""Holding a latency budget with DyTrack's exits: a threshold controller and a deadline (anytime) gate.

Fixed exit thresholds are calibrated offline on one data distribution, while a
robot's available compute changes at run time. The :class:`BudgetController`
turns a *per-frame latency budget* (the p95 of the tracker's time per frame)
and/or a *target mean depth* into one shared early-exit threshold ``tau``,
re-chosen on every frame:

- **cost model (feed-forward from measurements)**: per-stage costs are the
  relative stage costs (from warm-up) times a *load scale* measured on every
  frame from the stages that ran, plus the pre/post-processing overhead. A
  load step shows up in the scale within a few frames, so the deepest exit that
  fits the budget, ``k_B``, follows the load immediately.
- **exit statistics: feed-forward from calibration, feedback from the live
  frames**. The controller picks the largest ``tau`` (most accurate) whose
  estimated fraction of frames needing an exit deeper than ``k_B`` is at most
  5 % (that is what p95 <= budget means), and whose estimated mean depth meets
  the target depth. The estimate for a candidate ``tau'`` replays the exit rule
  on the predicted IoUs the decisioners produced on the last ``window_frames``
  frames times ten (they depend neither on the threshold nor on the load, so
  the replay is exact as far
  as those stages ran); where a frame stopped before the stages that would
  decide, the model file's calibration sweep (fraction of frames answering at
  each exit, per ``tau``) fills in, and it also stands in for ``prior_frames``
  frames of evidence. No gain is integrated, so nothing oscillates around the
  goal; ``tau`` moves by at most ``max_step`` per frame. One slow outer
  correction remains: when more than 5 % of the remembered frames went
  deeper than affordable and really exceeded the budget, the tail share
  aimed at is lowered in proportion.
- **accuracy floor**: ``tau`` never goes below ``min_threshold``; when the
  budget cannot be met above it, the controller says so (``budget_met``) and
  only the deadline gate (if enabled) cuts deeper stages.

Without a calibration sweep (a model that was never calibrated) the same loop
runs on a neutral prior (exit fractions linear in ``tau``) and the feedback
term does the work.

The **deadline gate** answers, before each further stage, whether the time
spent so far plus the predicted cost of that stage (at the measured load, with
a safety margin) still fits the budget; if not, the current exit answers even
when its predicted IoU is below its threshold.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..config import ConfigError, _from_mapping
from ..exit_policy import ExitPolicy

P95_TAIL = 0.05  # p95 <= budget  <=>  at most 5 % of frames may take longer
TAIL_TARGET = 0.04  # what the controller aims at: a little under P95_TAIL, for the estimate's sampling error
STATS_WINDOW_FACTOR = 10  # exit statistics remember this many times window_frames (costs: one window)


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of a short window (numpy's percentile costs far more per call here)."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


@dataclass(frozen=True)
class BudgetConfig:
    """What the user asks of the tracker's time per frame. Zero values switch a goal off.

    ``latency_budget_ms``: p95 of the tracker's time per frame (preprocess + network + postprocess).
    ``target_depth``: mean executed transformer layers. ``deadline``: also cut a frame's deeper stages when
    the time spent plus the next stage's predicted cost would exceed the budget. ``min_threshold``: the
    accuracy floor; the controller never relaxes the early-exit threshold below it. ``window_frames``:
    frames over which achieved statistics and the feedback average are taken (about one second of video).
    """

    latency_budget_ms: float = 0.0
    target_depth: float = 0.0
    deadline: bool = False
    min_threshold: float = 0.0
    max_threshold: float = 1.0
    window_frames: int = 30
    prior_frames: int = 5
    max_step: float = 0.1
    deadline_margin: float = 0.1

    def __post_init__(self) -> None:
        for key in ("latency_budget_ms", "target_depth"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"{key} must be a finite number >= 0 (0 = off), got {v!r}")
        if not 0.0 <= self.min_threshold <= self.max_threshold <= 1.0:
            raise ConfigError(f"need 0 <= min_threshold <= max_threshold <= 1, got {self.min_threshold}, "
                              f"{self.max_threshold}")
        if int(self.window_frames) < 2 or int(self.prior_frames) < 0:
            raise ConfigError(f"need window_frames >= 2 and prior_frames >= 0, got {self.window_frames}, "
                              f"{self.prior_frames}")
        if not 0.0 < self.max_step <= 1.0:
            raise ConfigError(f"max_step must be in (0, 1], got {self.max_step}")
        if not 0.0 <= self.deadline_margin < 1.0:
            raise ConfigError(f"deadline_margin must be in [0, 1), got {self.deadline_margin}")
        if self.deadline and not self.latency_budget_ms:
            raise ConfigError("deadline mode needs a latency budget (latency_budget_ms > 0)")

    @property
    def active(self) -> bool:
        return bool(self.latency_budget_ms or self.target_depth)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "BudgetConfig":
        return _from_mapping(cls, data)


@dataclass
class ExitSweep:
    """Calibration sweep: for each shared threshold ``tau``, the fraction of frames answering at each exit."""

    taus: np.ndarray  # (T,) increasing
    fractions: np.ndarray  # (T, K), rows sum to 1

    @classmethod
    def from_calibration(cls, table: Sequence[Mapping[str, Any]] | None, num_exits: int) -> "ExitSweep":
        rows = [r for r in (table or []) if "tau" in r and len(r.get("exit_fractions", [])) == num_exits]
        if len(rows) < 2:
            return cls.neutral(num_exits)
        rows.sort(key=lambda r: float(r["tau"]))
        taus = np.asarray([float(r["tau"]) for r in rows])
        fr = np.clip(np.asarray([r["exit_fractions"] for r in rows], dtype=np.float64), 0.0, 1.0)
        fr /= np.maximum(fr.sum(axis=1, keepdims=True), 1e-12)
        return cls(taus, fr)

    @classmethod
    def neutral(cls, num_exits: int) -> "ExitSweep":
        """No calibration: tau = 0 answers at the first exit, tau = 1 at the last, linear in between."""
        taus = np.linspace(0.0, 1.0, 21)
        fr = np.zeros((taus.size, num_exits))
        if num_exits == 1:
            fr[:, 0] = 1.0
        else:
            fr[:, 0] = 1.0 - taus
            fr[:, -1] = taus
        return cls(taus, fr)

    def tail_beyond(self, k: int) -> np.ndarray:
        """Per tau: fraction of frames answering at an exit deeper than ``k``."""
        return self.fractions[:, k + 1:].sum(axis=1)

    def mean_depth(self, exit_layers: Sequence[int]) -> np.ndarray:
        return self.fractions @ np.asarray(exit_layers, dtype=np.float64)


@dataclass
class BudgetState:
    """What the controller is doing, for results, diagnostics and per-frame statistics."""

    tau: float
    thresholds: tuple[float, ...]
    deepest_affordable_exit: int | None  # k_B; None: not even the first exit fits the budget
    load_scale: float
    budget_met: bool
    achieved_p95_ms: float | None
    achieved_mean_depth: float | None
    cut_by_deadline: int = 0  # frames in the window answered early by the deadline gate


@dataclass
class BudgetController:
    """Chooses the shared early-exit threshold frame by frame (see the module docstring)."""

    config: BudgetConfig
    exit_layers: tuple[int, ...]
    stage_base_ms: tuple[float, ...]  # relative stage costs at no load (warm-up measurement)
    sweep: ExitSweep
    tau: float = 1.0
    tau_grid: np.ndarray = field(default_factory=lambda: np.round(np.arange(0.0, 1.0001, 0.02), 2))
    _scales: deque = field(default_factory=deque)
    _overheads: deque = field(default_factory=deque)
    _times: deque = field(default_factory=deque)
    _depths: deque = field(default_factory=deque)
    _cuts: deque = field(default_factory=deque)
    _k_budget: int | None = None
    _cost: tuple[float, float, float] = (1.0, 0.0, 0.0)  # load scale p90, overhead p90, overhead median

    def __post_init__(self) -> None:
        self.exit_layers = tuple(int(v) for v in self.exit_layers)
        if len(self.stage_base_ms) != len(self.exit_layers) or min(self.stage_base_ms) <= 0:
            raise ConfigError(f"need one positive base cost per exit, got {self.stage_base_ms}")
        w = int(self.config.window_frames)
        for name in ("_scales", "_overheads", "_times", "_depths", "_cuts"):
            setattr(self, name, deque(maxlen=w))
        # the decisioners' outputs do not depend on the load: a longer memory estimates a 5 % tail better
        self._frame_dists: deque = deque(maxlen=w * STATS_WINDOW_FACTOR)  # per frame: frame_distribution()
        self._prior = self._prior_on_grid()
        self._dist_sum = np.zeros_like(self._prior)
        self._over = deque(maxlen=w * STATS_WINDOW_FACTOR)  # per frame: took longer than the budget
        self.tau = float(np.clip(self.tau, self.config.min_threshold, self.config.max_threshold))
        self._refresh_costs()
        self._k_budget = self._deepest_affordable()

    # --- cost model ---------------------------------------------------------------------------------
    def load_scale(self) -> float:
        """High quantile (p90) of the recent per-frame load scales: plan for the slow frames, not the mean."""
        return self._cost[0]

    def overhead_ms(self) -> float:
        """p90 of the recent non-network time per frame (crop, normalise, decode)."""
        return self._cost[1]

    def _refresh_costs(self) -> None:
        """Quantiles of the cost window, once per frame (they are read many times per decision)."""
        scale = _quantile(self._scales, 0.9) if self._scales else 1.0
        over = self._overheads or (0.0,)
        self._cost = (scale, _quantile(over, 0.9), _quantile(over, 0.5))

    def predicted_stage_ms(self, k: int) -> float:
        return self.stage_base_ms[k] * self.load_scale()

    def predicted_frame_ms(self, k: int) -> float:
        """Predicted time of a frame answering at exit ``k`` at the current load."""
        return self.overhead_ms() + self.load_scale() * float(sum(self.stage_base_ms[:k + 1]))

    def _deepest_affordable(self) -> int | None:
        budget = self.config.latency_budget_ms
        if not budget:
            return len(self.exit_layers) - 1
        fits = [k for k in range(len(self.exit_layers)) if self.predicted_frame_ms(k) <= budget]
        return fits[-1] if fits else None

    # --- estimating the exit distribution for candidate thresholds -------------------------------------
    def _prior_on_grid(self) -> np.ndarray:
        """(T, K) calibration sweep read at the controller's candidate thresholds (nearest tau at or above)."""
        idx = np.clip(np.searchsorted(self.sweep.taus, self.tau_grid - 1e-9), 0, len(self.sweep.taus) - 1)
        return self.sweep.fractions[idx]

    def frame_distribution(self, pred_iou: np.ndarray) -> np.ndarray:
        """(T, K): where one recorded frame would answer under each candidate threshold.

        The exit rule is replayed on its predicted IoUs (NaN for stages that did not run); where every
        executed exit is below a threshold, the exits after the last executed one answer with the calibration
        sweep's distribution restricted to them.
        """
        k_exits = len(self.exit_layers)
        q = np.asarray(pred_iou, dtype=np.float64)
        ran = int((~np.isnan(q)).sum())
        passed = q[None, :] >= self.tau_grid[:, None]  # NaN compares False
        if ran == k_exits:
            passed[:, -1] = True  # a last stage that ran always answers
        out = np.zeros((len(self.tau_grid), k_exits))
        decided = passed.any(axis=1)
        out[decided, passed[decided].argmax(axis=1)] = 1.0
        if ran < k_exits and not decided.all():
            tail = self._prior[:, ran:]
            norm = tail.sum(axis=1, keepdims=True)
            fill = np.where(norm > 1e-12, tail / np.maximum(norm, 1e-12), 0.0)
            fill[norm[:, 0] <= 1e-12, -1] = 1.0
            out[~decided, ran:] = fill[~decided]
        return out

    def exit_distribution(self) -> np.ndarray:
        """(T, K): estimated fraction of frames answering at each exit under each candidate threshold."""
        n0 = float(self.config.prior_frames)
        n = len(self._frame_dists)
        return (n0 * self._prior + self._dist_sum) / max(n0 + n, 1e-12)

    # --- choosing tau -----------------------------------------------------------------------------------
    def choose(self) -> float:
        """The threshold for the next frame: the most accurate feasible one, else the floor."""
        c = self.config
        taus = self.tau_grid
        dist = self.exit_distribution()
        ok = (taus >= c.min_threshold - 1e-9) & (taus <= c.max_threshold + 1e-9)
        if c.latency_budget_ms:
            k = self._k_budget
            if k is None:
                ok[:] = False
            elif k < len(self.exit_layers) - 1:
                ok &= dist[:, k + 1:].sum(axis=1) <= self.tail_target() + 1e-9
        if c.target_depth:
            ok &= dist @ np.asarray(self.exit_layers, dtype=np.float64) <= c.target_depth + 1e-9
        target = float(taus[ok].max()) if ok.any() else c.min_threshold
        step = float(np.clip(target - self.tau, -c.max_step, c.max_step))
        self.tau = float(np.clip(self.tau + step, c.min_threshold, c.max_threshold))
        return self.tau

    def tail_target(self) -> float:
        """Share of frames the controller lets go deeper than the budget allows: :data:`TAIL_TARGET`, tightened
        in proportion when more than 5 % of the remembered frames went deeper than affordable and took longer
        than the budget (the replayed statistics can be optimistic where frames stopped early and the
        calibration data was easier). Frames over budget at an affordable exit (a load spike) do not count."""
        if len(self._over) < self.config.window_frames:
            return TAIL_TARGET
        realized = sum(self._over) / len(self._over)
        return TAIL_TARGET * min(1.0, P95_TAIL / realized) if realized > P95_TAIL else TAIL_TARGET

    def policy(self) -> ExitPolicy:
        return ExitPolicy.for_model(self.exit_layers, self.tau)

    # --- feedback ---------------------------------------------------------------------------------------
    def update(self, stage_ms: Sequence[float], total_ms: float, exit_index: int,
               stage_pred_iou: Sequence[float | None] = (), cut_by_deadline: bool = False) -> None:
        """Record one tracked frame: executed stages' times and predicted IoUs, total time, exit."""
        ran = len(stage_ms)
        if ran:
            measured = float(sum(stage_ms))
            base = float(sum(self.stage_base_ms[:ran]))
            self._scales.append(measured / base)
            self._overheads.append(max(0.0, float(total_ms) - measured))
        q = np.full(len(self.exit_layers), np.nan)
        for k, v in enumerate(list(stage_pred_iou)[:len(q)]):
            q[k] = np.nan if v is None else float(v)
        if len(self._frame_dists) == self._frame_dists.maxlen:
            self._dist_sum -= self._frame_dists[0]
        d = self.frame_distribution(q)
        self._frame_dists.append(d)
        self._dist_sum += d
        self._times.append(float(total_ms))
        if self.config.latency_budget_ms:
            # only misses the thresholds could have avoided: an exit deeper than the affordable one
            k_used = self._k_budget
            deeper = k_used is not None and exit_index > k_used
            self._over.append(deeper and float(total_ms) > self.config.latency_budget_ms)
        self._depths.append(self.exit_layers[exit_index])
        self._cuts.append(bool(cut_by_deadline))
        self._refresh_costs()
        self._k_budget = self._deepest_affordable()

    def gate(self, elapsed_ms: float, next_stage: int) -> bool:
        """Deadline mode: may stage ``next_stage`` still run, given ``elapsed_ms`` spent on this frame?

        The rest of the frame (postprocessing) is estimated as half the median non-network overhead.
        """
        budget = self.config.latency_budget_ms
        if not (self.config.deadline and budget):
            return True
        post = 0.5 * self._cost[2]
        need = self.predicted_stage_ms(next_stage) * (1.0 + self.config.deadline_margin)
        return elapsed_ms + need + post <= budget

    # --- reporting --------------------------------------------------------------------------------------
    def state(self) -> BudgetState:
        p95 = _quantile(self._times, 0.95) if self._times else None
        depth = sum(self._depths) / len(self._depths) if self._depths else None
        met = True
        if self.config.latency_budget_ms and p95 is not None:
            met = p95 <= self.config.latency_budget_ms
        if self.config.target_depth and depth is not None:
            met = met and depth <= self.config.target_depth + 1e-9
        return BudgetState(self.tau, self.policy().thresholds, self._k_budget, self.load_scale(), met, p95, depth,
                           int(sum(self._cuts)))


__all__ = ["BudgetConfig", "BudgetController", "BudgetState", "ExitSweep", "P95_TAIL", "TAIL_TARGET"]
