"""Where shipped resources live, for a source checkout and for an installed package."""
from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_MODEL_NAME = "dytrack_small.safetensors"


def _candidates(sub: str) -> list[Path]:
    here = Path(__file__).resolve().parent
    return [here.parent / sub, Path(sys.prefix) / "share" / "dytrack_ros" / sub]


def models_dir() -> Path:
    """The ``models/`` folder (checkout first, then ``<prefix>/share/dytrack_ros/models``)."""
    for c in _candidates("models"):
        if c.is_dir():
            return c
    return _candidates("models")[0]


def default_model_path() -> Path:
    """Path of the shipped default model (it may not exist in a bare checkout)."""
    for c in _candidates("models"):
        if (c / DEFAULT_MODEL_NAME).is_file():
            return c / DEFAULT_MODEL_NAME
    return models_dir() / DEFAULT_MODEL_NAME


def config_dir() -> Path:
    for c in _candidates("config"):
        if c.is_dir():
            return c
    return _candidates("config")[0]
