"""Typed training configuration (one YAML file per experiment under ``config/train/``).

A YAML file has the sections ``model``, ``data``, ``optim``, ``loss``,
``compress`` and ``calibration`` plus top-level ``method``/``seed``. Command-line
overrides use dotted keys, e.g. ``optim.lr=1e-3`` or ``data.samples_per_epoch=64``;
values are parsed as YAML scalars/lists.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..config import ConfigError, _from_mapping, load_yaml


@dataclass(frozen=True)
class DataSource:
    """One dataset and its share of the sampled pairs.

    ``format``: got10k | lasot | trackingnet | otb (video readers of
    :mod:`dytrack_ros.data`), ``coco`` (still images as one-frame pseudo-videos;
    ``root`` holds ``annotations/instances_<split>.json`` and ``images/<split>/``),
    or ``synth`` (a GOT-10k-layout folder written by ``dytrack synth``; generated
    on first use when ``generate`` is set), or ``composite`` (pairs composed on the
    fly from a media bank folder, :mod:`dytrack_ros.data.composite`; ``split`` is the
    bank's split, ``options`` its :class:`~dytrack_ros.data.composite.CompositeOptions`).
    """

    format: str
    root: str
    split: str | None = None
    weight: float = 1.0
    sequences: tuple[str, ...] | None = None
    generate: dict | None = None  # synth only: kwargs for generate_dataset when root is missing
    options: dict | None = None  # composite only: CompositeOptions fields

    def __post_init__(self) -> None:
        if self.weight <= 0:
            raise ConfigError(f"data source {self.root}: weight must be > 0, got {self.weight}")


@dataclass(frozen=True)
class DataConfig:
    sources: tuple[DataSource, ...] = ()
    samples_per_epoch: int = 60000
    max_gap: int = 200
    search_center_jitter: float = 3.0
    search_scale_jitter: float = 0.25
    template_center_jitter: float = 0.0
    template_scale_jitter: float = 0.0
    brightness_jitter: float = 0.2
    grayscale_prob: float = 0.05
    flip_prob: float = 0.5
    coco_min_size: float = 50.0  # OSTrack: COCO boxes with w or h <= 50 px are invalid
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.samples_per_epoch < 1 or self.max_gap < 0:
            raise ConfigError("samples_per_epoch must be >= 1 and max_gap >= 0")


@dataclass(frozen=True)
class OptimConfig:
    batch_size: int = 32  # per process
    epochs: int = 300
    lr: float = 4e-4
    backbone_lr_mult: float = 0.1
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    lr_drop_epoch: int = 240
    lr_gamma: float = 0.1
    max_steps: int = 0  # stop after this many optimiser steps (0 = run all epochs)
    # "step": lr x lr_gamma at lr_drop_epoch (per epoch); "cosine": per step, linear warm-up over warmup_steps,
    # then cosine from lr to lr * min_lr_ratio at max_steps (needs max_steps or time_budget_min)
    schedule: str = "step"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.02
    # > 0: after the first PROBE_WARMUP + PROBE_STEPS steps (trainer.py: 10 + 40), max_steps is set so that the run
    # ends within this many minutes of wall time (for a lent machine with a fixed time budget); the steps actually
    # run are in the model file's info
    time_budget_min: float = 0.0
    amp: bool = True  # mixed precision, CUDA only
    drop_path: float = 0.1
    # optional candidate-elimination keep-rate warm-up (OSTrack-CE): 1.0 until ce_start,
    # cosine to the model's ratio at ce_end
    ce_warmup_start: int = 20
    ce_warmup_end: int = 100

    def __post_init__(self) -> None:
        if self.schedule not in ("step", "cosine"):
            raise ConfigError(f"optim.schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.schedule == "cosine" and not (self.max_steps > 0 or self.time_budget_min > 0):
            raise ConfigError("optim.schedule 'cosine' needs optim.max_steps or optim.time_budget_min > 0")
        if self.warmup_steps < 0 or self.time_budget_min < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("need optim.warmup_steps >= 0, optim.time_budget_min >= 0, 0 <= optim.min_lr_ratio <= 1; "
                              f"got {self.warmup_steps}, {self.time_budget_min}, {self.min_lr_ratio}")


@dataclass(frozen=True)
class LossConfig:
    giou: float = 2.0
    l1: float = 5.0
    focal: float = 1.0
    exit_weights: tuple[float, ...] = ()  # per exit; empty = 1 for each
    decision: float = 1.0
    self_distill: float = 0.2
    self_distill_floor: float = 0.1
    score_distill: float = 0.0


@dataclass(frozen=True)
class CompressConfig:
    teacher: str = ""  # model file of the teacher
    student_depth: int = 4
    replacement: bool = True
    p_init: float = 0.5
    alpha1: float = 0.1
    alpha2: float = 0.1
    guidance: float = 1.0
    feature_mimic: float = 0.2


@dataclass(frozen=True)
class CalibrationConfig:
    """Run after training (rank 0) when ``target_depth``, ``target_latency_ms`` or ``max_iou_drop`` is set."""

    target_depth: float = 0.0
    target_latency_ms: float = 0.0
    # accuracy budget instead of a depth/latency target: the least depth whose mean IoU on the calibration
    # frames is at most this much (absolute IoU) below full depth's; -1: not used
    max_iou_drop: float = -1.0
    data: DataSource | None = None
    max_sequences: int = 20
    # early-exit agreement IoU the thresholds are chosen under and stored with (TrackerConfig.exit_agreement);
    # -1: the model file's own value
    exit_agreement: float = -1.0
    # choose the agreement IoU for the target instead of the thresholds (early-exit thresholds 0)
    choose_agreement: bool = False


@dataclass(frozen=True)
class ModelSection:
    name: str = "dytrack_small"
    overrides: dict = field(default_factory=dict)
    init: str = ""  # optional model file to start from


@dataclass(frozen=True)
class TrainConfig:
    method: str = "dytrack"  # a registered training objective (dytrack_ros.train.objective)
    seed: int = 0
    model: ModelSection = ModelSection()
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    compress: CompressConfig = CompressConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    log_every: int = 10
    checkpoint_every: int = 200  # optimiser steps between checkpoints (also at every epoch end)

    def __post_init__(self) -> None:
        from .objective import objective_class  # imported here: the objectives import this module

        objective_class(self.method)  # ConfigError listing the registered methods

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _source(d: Mapping[str, Any] | DataSource) -> DataSource:
    return d if isinstance(d, DataSource) else _from_mapping(DataSource, d)


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    data = dict(data)
    sections = {
        "model": ModelSection, "optim": OptimConfig, "loss": LossConfig, "compress": CompressConfig,
    }
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in sections:
            kwargs[key] = _from_mapping(sections[key], value)
        elif key == "data":
            d = dict(value or {})
            d["sources"] = tuple(_source(s) for s in d.get("sources", ()))
            kwargs[key] = _from_mapping(DataConfig, d)
        elif key == "calibration":
            c = dict(value or {})
            if c.get("data") is not None:
                c["data"] = _source(c["data"])
            kwargs[key] = _from_mapping(CalibrationConfig, c)
        else:
            kwargs[key] = value
    return _from_mapping(TrainConfig, kwargs)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to a nested mapping (values parsed as YAML)."""
    data = _plain(dict(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: cannot parse value: {exc}") from exc
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        node[parts[-1]] = value
    return data


def load_train_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a training YAML (relative data roots are taken relative to the current directory)."""
    return train_config_from_dict(apply_overrides(load_yaml(path), overrides))


__all__ = [
    "CalibrationConfig", "CompressConfig", "DataConfig", "DataSource", "LossConfig", "ModelSection",
    "OptimConfig", "TrainConfig", "apply_overrides", "load_train_config", "train_config_from_dict",
]
