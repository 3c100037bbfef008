"""The DyTrack exit rule and its thresholds, owned by one object.

A DyTrack model has exits after some transformer layers (``exit_layers``); each
exit's decisioner predicts the IoU of that exit's box. The rule, used by every
backend, by calibration and by analysis code alike:

    answer with the first exit k whose predicted IoU >= threshold[k];
    the last exit always answers.

Threshold convention (CLI ``--exit-thresholds``, node parameter
``exit_thresholds``, Python API): either one value per exit (the last one is
kept but never consulted), or a single value applied to every early exit.
Each value lies in [0, 1]: 1.0 = never exit early (full depth), 0.0 = always
answer at the first exit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .config import ConfigError

THRESHOLD_CONVENTION = ("one value per exit, or a single value for every early exit; each in [0, 1] "
                        "(1 = full depth, 0 = always the first exit)")


class ExitPolicyError(ConfigError):
    """Thresholds that do not fit the model's exits (count, range, non-finite values)."""


def parse_thresholds(values: Iterable[float] | float | str | None, num_exits: int) -> tuple[float, ...]:
    """Validate ``values`` against a model with ``num_exits`` exits and expand them to one per exit.

    Accepts a sequence (or one number, or a comma-separated string); raises
    :class:`ExitPolicyError` with the reason. ``num_exits == 0`` (a model
    without exits) accepts only an empty sequence.
    """
    if values is None:
        raise ExitPolicyError("no exit thresholds given")
    if isinstance(values, str):
        try:
            values = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ExitPolicyError(f"exit thresholds must be comma-separated numbers, got {values!r}") from None
    elif isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    try:
        vals = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ExitPolicyError(f"exit thresholds must be numbers, got {values!r}") from None
    if num_exits == 0:
        if vals:
            raise ExitPolicyError("exit thresholds given, but the model has no early exits")
        return ()
    bad = [v for v in vals if not math.isfinite(v) or not 0.0 <= v <= 1.0]
    if bad:
        raise ExitPolicyError(f"exit thresholds must lie in [0, 1], got {vals}")
    if len(vals) == 1 and num_exits > 1:
        return tuple([vals[0]] * (num_exits - 1) + [0.0])
    if len(vals) != num_exits:
        raise ExitPolicyError(f"the model has {num_exits} exits: give {num_exits} exit thresholds (one per exit) "
                              f"or a single value for every early exit; got {len(vals)}")
    return tuple(vals)


@dataclass(frozen=True)
class ExitPolicy:
    """Per-exit thresholds of one model plus the first-exit rule (immutable: swap the whole object to change)."""

    exit_layers: tuple[int, ...]  # 1-based layer of each exit; () for a model without exits
    thresholds: tuple[float, ...]  # one per exit (same length as exit_layers)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exit_layers", tuple(int(v) for v in self.exit_layers))
        object.__setattr__(self, "thresholds", parse_thresholds(self.thresholds, len(self.exit_layers)))

    @classmethod
    def for_model(cls, exit_layers: Sequence[int], thresholds: Iterable[float] | float | None = None) -> "ExitPolicy":
        """Policy for a model; ``thresholds=None`` means full depth (1.0 at every early exit)."""
        layers = tuple(exit_layers)
        if thresholds is not None and not isinstance(thresholds, (int, float, str)):
            thresholds = list(thresholds)  # once: a generator would be used up by the check below
        if thresholds is None or (isinstance(thresholds, list) and not thresholds):
            thresholds = [1.0] * (len(layers) - 1) + [0.0] if layers else []
        return cls(layers, thresholds)

    def with_thresholds(self, thresholds: Iterable[float] | float | str) -> "ExitPolicy":
        return ExitPolicy(self.exit_layers, thresholds)

    # --- the rule ------------------------------------------------------------------------------
    @property
    def num_exits(self) -> int:
        return len(self.exit_layers)

    @property
    def num_stages(self) -> int:
        """Stages the network runs in: one per exit, or one for a model without exits."""
        return max(1, self.num_exits)

    def is_last(self, k: int) -> bool:
        return k >= self.num_stages - 1

    def should_exit(self, k: int, pred_iou: float | None) -> bool:
        """Whether exit ``k`` answers, given its predicted IoU (the last stage always answers)."""
        if self.is_last(k):
            return True
        return pred_iou is not None and float(pred_iou) >= self.thresholds[k]

    def first_exit(self, pred_ious: Sequence[float], accepted: Sequence[bool] | None = None) -> int:
        """Index of the exit that answers, given every exit's predicted IoU for one frame; ``accepted[k]``
        False vetoes early exit k (the tracker's agreement check)."""
        for k in range(self.num_stages):
            if self.should_exit(k, pred_ious[k] if k < len(pred_ious) else None) and (
                    accepted is None or self.is_last(k) or accepted[k]):
                return k
        raise AssertionError("unreachable: the last stage always answers")

    def first_exits(self, pred_ious: np.ndarray, accepted: np.ndarray | None = None) -> np.ndarray:
        """Vectorised :meth:`first_exit` over recorded frames: ``(frames, K)`` -> exit index per frame;
        ``accepted`` (frames, K) bool, False vetoes that early exit on that frame."""
        q = np.asarray(pred_ious, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != self.num_stages:
            raise ExitPolicyError(f"expected predicted IoUs of shape (frames, {self.num_stages}), got {q.shape}")
        passed = (q >= np.asarray(self.thresholds, dtype=np.float64)[None, :] if self.num_exits
                  else np.ones_like(q, bool))
        if accepted is not None:
            acc = np.asarray(accepted, dtype=bool)
            if acc.shape != q.shape:
                raise ExitPolicyError(f"accepted must have the shape of the predicted IoUs {q.shape}, got {acc.shape}")
            passed &= acc
        passed[:, -1] = True
        return passed.argmax(axis=1)

    def layer_of(self, k: int, depth: int) -> int:
        """1-based transformer layer where exit ``k`` sits (``depth`` for a model without exits)."""
        return self.exit_layers[k] if self.exit_layers else int(depth)

    def describe(self) -> str:
        if not self.exit_layers:
            return "no early exits"
        return ", ".join(f"L{layer}>={t:g}" for layer, t in zip(self.exit_layers[:-1], self.thresholds[:-1])) \
            + f", L{self.exit_layers[-1]} always"


__all__ = ["THRESHOLD_CONVENTION", "ExitPolicy", "ExitPolicyError", "parse_thresholds"]
