"""Our self-describing, pickle-free model file: safetensors + JSON metadata.

Metadata keys (all strings, as safetensors requires):
- ``format``: ``dytrack_ros.model/1``
- ``model_config``: JSON of :class:`~dytrack_ros.config.ModelConfig`
- ``info``: free-form JSON (training command, calibration, source checkpoint, ...)
Loading never unpickles anything. The config is data from the file, so it is
checked against the file's tensor header (names, shapes, dtypes) before any
network is built; the tensors must match it exactly (no missing, no unexpected
keys, floating weights for floating parameters) and hold finite values.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..config import ModelConfig
from ..model.tracker_net import TrackerNet
from .weights_check import (
    SAFETENSORS_DTYPES,
    TensorSpec,
    WeightsError,
    check_declared_size,
    check_specs,
    check_values,
    expected_specs,
)

FORMAT = "dytrack_ros.model/1"
SUFFIX = ".safetensors"


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or does not match its declared architecture."""


def save_model_file(model: TrackerNet, path: str | Path, info: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (weights + architecture + ``info``) to ``path`` atomically."""
    path = Path(path)
    if path.suffix != SUFFIX:
        raise ModelFileError(f"model files use the {SUFFIX} suffix, got {path.name}")
    cfg = model.cfg  # default exit thresholds live in the config (ModelConfig.exit_thresholds)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "model_config": cfg.to_json(), "info": json.dumps(info or {}, sort_keys=True)}
    try:  # a temporary file in the same directory, renamed when complete: never a half-written model file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise ModelFileError(f"cannot write {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        save_file(tensors, tmp_name, metadata=meta)
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:
        tmp.unlink(missing_ok=True)
        raise ModelFileError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_metadata(path: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """Architecture and info of a model file without loading the weights."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
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
    except (KeyError, ValueError, TypeError, RecursionError) as exc:  # ConfigError names the field
        raise ModelFileError(f"{path}: invalid model metadata: {exc}") from exc
    return cfg, info


def read_tensor_specs(path: str | Path) -> dict[str, TensorSpec]:
    """Name -> shape and dtype of every tensor in a safetensors file, from its header (no tensor data read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            specs = {}
            for name in f.keys():
                sl = f.get_slice(name)
                specs[name] = TensorSpec(tuple(int(s) for s in sl.get_shape()), SAFETENSORS_DTYPES.get(sl.get_dtype()))
            return specs
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a valid safetensors model file: {exc}") from exc


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[TrackerNet, dict[str, Any]]:
    """Rebuild the network from a model file; returns (model in eval mode, info).

    Order matters: the declared architecture is checked against the header
    before anything is allocated, the values after reading, and only then is
    the network built.
    """
    cfg, info = read_metadata(path)
    specs = read_tensor_specs(path)
    try:
        check_declared_size(cfg, specs, str(path))
        check_specs(expected_specs(cfg), specs, str(path), what=f"declared architecture ({cfg.name})")
    except WeightsError as exc:
        raise ModelFileError(str(exc)) from None
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"{path}: cannot read tensors: {exc}") from exc
    try:
        check_values(tensors, str(path))
    except WeightsError as exc:
        raise ModelFileError(str(exc)) from None
    model = TrackerNet(cfg).to(device)
    model.load_state_dict(tensors, strict=True)  # names, shapes and dtypes were checked against the header above
    return model.eval(), info
