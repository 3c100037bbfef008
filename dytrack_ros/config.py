"""Typed configuration: one dataclass per concern, loaded from YAML.

Every default lives here and nowhere else; the CLI, the ROS node and the
training scripts all read these dataclasses (or YAML files that fill them).
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


def _brief(value: Any, limit: int = 40) -> str:
    """A bounded description of a config value for error messages (values may come from untrusted files)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = repr(value)
        return (text if len(text) <= limit else text[:limit] + "...") + f" ({type(value).__name__})"
    return f"a {type(value).__name__}" + (f" {value!r}" if isinstance(value, bool) or value is None else "")


def _from_mapping(cls, data: Mapping[str, Any] | None):
    """Build dataclass ``cls`` from a mapping, refusing unknown keys (typos)."""
    data = dict(data or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        ftype = names[key].type
        if isinstance(value, list) and "tuple" in str(ftype):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an OSTrack-family one-stream ViT tracker.

    The defaults are OSTrack-256 (ViT-B/16, no candidate elimination, no exits).
    ``exit_layers`` lists 1-based block indices after which an exit branch
    (box head + IoU decisioner) sits; the last entry must equal ``depth``.
    An empty tuple means a plain OSTrack/CompressTracker model.
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    template_size: int = 128
    search_size: int = 256
    template_factor: float = 2.0
    search_factor: float = 4.0
    head_channels: int = 256
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    # Candidate elimination (OSTrack-CE): 0-based block indices and keep ratio.
    ce_loc: tuple[int, ...] = ()
    ce_keep_ratio: float = 0.7
    ce_template_centre: bool = True
    # DyTrack exits (1-based layer indices) and decisioner width.
    exit_layers: tuple[int, ...] = ()
    decision_hidden: int = 256
    # Default per-exit thresholds on the predicted IoU (the last exit always answers).
    exit_thresholds: tuple[float, ...] = ()
    # Default early-exit agreement (TrackerConfig.exit_agreement): an early exit also needs its box to overlap
    # the previous frame's box by this IoU; calibrated together with the thresholds. 0: off.
    exit_agreement: float = 0.0
    name: str = "ostrack256"

    def __post_init__(self) -> None:
        # Types first: values come from YAML and from model files' JSON, where 'abc' or NaN can appear.
        for key in ("embed_dim", "depth", "num_heads", "patch_size", "template_size", "search_size", "head_channels",
                    "decision_hidden"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ConfigError(f"ModelConfig.{key} must be an integer, got {_brief(value)}")
            if value <= 0:
                raise ConfigError(f"ModelConfig.{key} must be positive, got {value}")
        if isinstance(self.exit_agreement, bool) or not isinstance(self.exit_agreement, numbers.Real) \
                or not 0.0 <= self.exit_agreement <= 1.0:
            raise ConfigError(f"ModelConfig.exit_agreement must be an IoU in [0, 1] (0: off), "
                              f"got {_brief(self.exit_agreement)}")
        for key in ("mlp_ratio", "template_factor", "search_factor", "norm_eps", "ce_keep_ratio"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
                raise ConfigError(f"ModelConfig.{key} must be a finite positive number, got {_brief(value)}")
        for key in ("qkv_bias", "ce_template_centre"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"ModelConfig.{key} must be true or false, got {_brief(getattr(self, key))}")
        for key in ("ce_loc", "exit_layers"):  # exit_thresholds are checked below
            value = getattr(self, key)
            if isinstance(value, list):  # frozen dataclass: tuples keep it hashable and comparable
                object.__setattr__(self, key, value := tuple(value))
            if not isinstance(value, tuple) or any(isinstance(i, bool) or not isinstance(i, numbers.Integral)
                                                   for i in value):
                raise ConfigError(f"ModelConfig.{key} must be a list of integers, got {_brief(value)}")
        if not isinstance(self.name, str):
            raise ConfigError(f"ModelConfig.name must be a string, got {_brief(self.name)}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for size_key in ("template_size", "search_size"):
            if getattr(self, size_key) % self.patch_size:
                raise ConfigError(f"{size_key} {getattr(self, size_key)} is not a multiple of "
                                  f"patch_size {self.patch_size}")
        if self.head_channels % 8:
            raise ConfigError(f"head_channels must be a multiple of 8, got {self.head_channels}")
        if any(not 0 <= i < self.depth for i in self.ce_loc):
            raise ConfigError(f"ce_loc {self.ce_loc} must be 0-based block indices < depth {self.depth}")
        if not 0.0 < self.ce_keep_ratio <= 1.0:
            raise ConfigError(f"ce_keep_ratio must be in (0, 1], got {self.ce_keep_ratio}")
        if self.exit_layers:
            if list(self.exit_layers) != sorted(set(self.exit_layers)):
                raise ConfigError(f"exit_layers must be strictly increasing, got {self.exit_layers}")
            if self.exit_layers[0] < 1 or self.exit_layers[-1] != self.depth:
                raise ConfigError(f"exit_layers are 1-based and the last must equal depth={self.depth}, "
                                  f"got {self.exit_layers}")
            if self.ce_loc:
                raise ConfigError("candidate elimination cannot be combined with exits (DyTrack runs without CE)")
        if self.exit_thresholds:
            from .exit_policy import parse_thresholds  # the one validation of thresholds

            object.__setattr__(self, "exit_thresholds", parse_thresholds(self.exit_thresholds, len(self.exit_layers)))

    # Derived sizes -------------------------------------------------------
    @property
    def template_feat(self) -> int:
        return self.template_size // self.patch_size

    @property
    def search_feat(self) -> int:
        return self.search_size // self.patch_size

    @property
    def num_template_tokens(self) -> int:
        return self.template_feat ** 2

    @property
    def num_search_tokens(self) -> int:
        return self.search_feat ** 2

    @property
    def has_exits(self) -> bool:
        return bool(self.exit_layers)

    @property
    def default_thresholds(self) -> tuple[float, ...]:
        """Thresholds to use when none are given: stored ones, else 1.0 (= full depth)."""
        if not self.exit_layers:
            return ()
        if self.exit_thresholds:
            return tuple(float(t) for t in self.exit_thresholds)
        return tuple(1.0 for _ in self.exit_layers)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        return _from_mapping(cls, data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


TRACK_STATUSES = ("tracking", "uncertain", "lost", "searching", "redetected")


@dataclass(frozen=True)
class TrackerConfig:
    """Runtime behaviour of the tracker around the network.

    ``uncertain_threshold`` / ``lost_threshold`` apply to the confidence
    (max of the un-windowed score map). A frame below ``uncertain_threshold``
    is *uncertain*; the target is *lost* while at least ``lost_after_frames``
    of the last ``2 * lost_after_frames`` frames lie below ``lost_threshold``
    (:mod:`dytrack_ros.tracker.status`).
    """

    uncertain_threshold: float = 0.5
    lost_threshold: float = 0.25
    lost_after_frames: int = 3
    use_hann_window: bool = True
    # Before LOST, a frame below lost_threshold also holds the last confident box. Off by default: on the tuning
    # set (dytrack synth seed 3030) holding on single low frames gained nothing, and it freezes the box on a
    # target that is present but scores low (measured -10 AUC on one sequence).
    hold_low_scores: bool = False
    clip_margin: int = 10
    # Lost-target recovery (tracker/recovery.py): hold, enlarge, re-detect, re-acquire.
    recovery: bool = True
    hold_frames: int = 10  # frames the held box keeps moving at the last confident velocity
    search_growth: float = 1.25  # search-region growth per lost frame (same network input size)
    max_search_scale: float = 2.0  # largest search region, relative to the normal one
    redetect_after_frames: int = 4  # lost frames before the global re-detection starts
    redetect_windows: int = 3  # re-detection windows per frame (the per-frame compute budget)
    redetect_scales: tuple[float, ...] = (1.0, 0.75, 1.33)  # window scales, relative to the last target size
    reacquire_threshold: float = 0.4  # confidence a re-detected box needs (each agreeing frame)
    reacquire_frames: int = 2  # consecutive agreeing frames that re-acquire the target
    # Box size update (tracker/postprocess.py update_size): the centre follows the network; the size moves
    # towards the prediction by size_lr (times the confidence with size_lr_by_score), then changes by at most
    # the factor max_scale_change per frame. Why: the search region is search_factor times the last box, and the
    # network over-estimates small targets in the crop, so an unbounded size feeds on itself.
    # Defaults chosen with dytrack eval on a tuning set (dytrack synth seeds 7101-7103, 8 easy/medium/hard
    # sequences each; AUC 52.8 unbounded): a bound of 1.02 gave 55.9, 1.05 55.5, 1.1 53.3; smoothing alone
    # 49.9-53.5 (lr 0.7-0.3), confidence-weighted 52.9-54.8. Ground-truth sizes there change by <= 3 % per
    # frame on 95 % of frames.
    max_scale_change: float = 1.02  # largest new/old (and old/new) ratio of width and of height per frame; 0: none
    size_lr: float = 1.0  # new size = old + size_lr * (predicted - old); 1: take the prediction
    size_lr_by_score: bool = False  # multiply size_lr by the frame's confidence (SiamFC/SiamRPN)
    # Size from early exits (DyTrack models): an answer from an exit before the last changes the size with
    # size_lr times this; 0: early exits move the box only and the size changes on full-depth frames. Why: the
    # shallow exits place the target well but measure its size poorly, and in closed loop their size errors
    # compound through the search region. Chosen on calib_sway (shipped model, default exit rule, --threads 1):
    # AUC 22.8 at 0 (full depth 22.0), 18.9 at 0.3, 18.7 at 0.6, 19.2 at 1 (the rule before). On the unseen photo
    # set: 44.6 at 2.89 layers with 1, 49.7 at 3.04 layers with 0 (full depth 48.9).
    early_exit_size_lr: float = 0.0
    # Early-exit agreement (DyTrack models): an early exit answers only when its box also overlaps the previous
    # frame's box by IoU >= exit_agreement (besides its predicted IoU meeting its threshold); else the next stage
    # runs. Why: the decisioners' predicted IoU is learned on the training distribution and is over-confident
    # elsewhere (shipped model, calibration vs unseen photo sources: threshold 0.75 alone gave 2.06 vs 3.84
    # layers), while "the shallow answer stays where the target was" is a property of the footage: agreement
    # 0.6 alone gave 3.87 vs 3.86 layers. Fast motion, jumps to a distractor and size changes go deeper.
    # -1: the model file's value (ModelConfig.exit_agreement, calibrated with its thresholds); 0: off. Not applied
    # while a latency budget or target depth (BudgetConfig) chooses the thresholds: that controller owns the rule.
    exit_agreement: float = -1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.lost_threshold <= self.uncertain_threshold <= 1.0:
            raise ConfigError(
                "need 0 <= lost_threshold <= uncertain_threshold <= 1, got "
                f"lost={self.lost_threshold}, uncertain={self.uncertain_threshold}"
            )
        if int(self.lost_after_frames) < 1:
            raise ConfigError(f"lost_after_frames must be >= 1, got {self.lost_after_frames}")
        if int(self.clip_margin) < 0:
            raise ConfigError(f"clip_margin must be >= 0, got {self.clip_margin}")
        for key in ("recovery", "hold_low_scores", "size_lr_by_score"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key} must be true or false, got {_brief(getattr(self, key))}")
        for key, low in (("hold_frames", 0), ("redetect_after_frames", 0), ("redetect_windows", 0),
                         ("reacquire_frames", 1)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ConfigError(f"{key} must be an integer >= {low}, got {_brief(value)}")
        for key, low in (("search_growth", 1.0), ("max_search_scale", 1.0)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or not low <= value <= 10.0:
                raise ConfigError(f"{key} must be a number in [{low:g}, 10], got {_brief(value)}")
        value = self.max_scale_change
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                or not (value == 0 or 1.0 <= value <= 10.0):
            raise ConfigError(f"max_scale_change must be 0 (no bound) or a number in [1, 10] (largest per-frame "
                              f"ratio of new to old width and height), got {_brief(value)}")
        value = self.size_lr
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
            raise ConfigError(f"size_lr must be a number in (0, 1] (1: the size follows the network), "
                              f"got {_brief(value)}")
        value = self.early_exit_size_lr
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"early_exit_size_lr must be a number in [0, 1] (0: early exits keep the size; 1: "
                              f"they change it like the last exit), got {_brief(value)}")
        value = self.exit_agreement
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (value == -1 or 0.0 <= value <= 1.0):
            raise ConfigError(f"exit_agreement must be an IoU in [0, 1] (0: off) or -1 (the model file's value), "
                              f"got {_brief(value)}")
        value = self.reacquire_threshold
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"reacquire_threshold must be in [0, 1], got {_brief(value)}")
        scales = self.redetect_scales
        if isinstance(scales, list):
            object.__setattr__(self, "redetect_scales", scales := tuple(scales))
        if not isinstance(scales, tuple) or not scales or any(
                isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.1 <= v <= 10.0 for v in scales):
            raise ConfigError(f"redetect_scales must be a non-empty list of numbers in [0.1, 10], got {_brief(scales)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "TrackerConfig":
        return _from_mapping(cls, data)

    def replace(self, **changes: Any) -> "TrackerConfig":
        return dataclasses.replace(self, **changes)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a clear error for missing/invalid files."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {p}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return data


__all__ = ["ConfigError", "ModelConfig", "TrackerConfig", "TRACK_STATUSES", "load_yaml"]
