"""Our self-describing, pickle-free model file: safetensors + JSON metadata.

Metadata keys (all strings, as safetensors requires):
- ``format``: ``dytrack_ros.model/1``
- ``model_config``: JSON of :class:`~dytrack_ros.config.ModelConfig`
- ``info``: free-form JSON (training command, calibration, source checkpoint, ...)
Loading never unpickles anything; the architecture is rebuilt from the config
and the tensors must match it exactly (no missing, no unexpected keys).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..config import ConfigError, ModelConfig
from ..model.tracker_net import TrackerNet

FORMAT = "dytrack_ros.model/1"
SUFFIX = ".safetensors"


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or does not match its declared architecture."""


def save_model_file(model: TrackerNet, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (weights + architecture + ``info``) to ``path`` atomically."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ModelFileError(f"model files use the {SUFFIX} suffix, got {path.name}")
    cfg = model.cfg
    if cfg.has_exits:
        cfg = cfg.replace(exit_thresholds=tuple(model.exit_thresholds))
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "model_config": cfg.to_json(), "info": json.dumps(info or {}, sort_keys=True)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_metadata(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Architecture and info of a model file without loading the weights."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a valid safetensors model file: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a dytrack_ros model file (format={meta.get('format')!r}); "
                             "convert official checkpoints with 'dytrack convert'")
    try:
        cfg = ModelConfig.from_dict(json.loads(meta["model_config"]))
        info = json.loads(meta.get("info", "{}"))
    except (KeyError, json.JSONDecodeError, ConfigError, TypeError) as exc:
        raise ModelFileError(f"{path}: invalid model metadata: {exc}") from exc
    return cfg, info


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[TrackerNet, dict[str, Any]]:
    """Rebuild the network from a model file; returns (model in eval mode, info)."""
    cfg, info = read_metadata(path)
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{path}: cannot read tensors: {exc}") from exc
    model = TrackerNet(cfg).to(device)
    load_state_dict_strict(model, tensors, source=str(path))
    return model.eval(), info


def load_state_dict_strict(model: TrackerNet, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Load with every key used and none missing; shape mismatches reported by name."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    bad_shape = [f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in sorted(set(own) & set(tensors)) if tuple(own[k].shape) != tuple(tensors[k].shape)]
    if missing or unexpected or bad_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatches (e.g. {bad_shape[:2]})")
        raise ModelFileError(f"{source}: weights do not match the architecture: " + "; ".join(parts))
    model.load_state_dict(tensors, strict=True)
