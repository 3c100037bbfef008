"""Randomly initialised models saved as real model files, for tests that need a model but not a trained one."""
from __future__ import annotations

from pathlib import Path

import torch

from dytrack_ros.model_io.model_file import save_model_file
from dytrack_ros.model import create_model


def random_model_file(directory: Path, arch: str, seed: int) -> Path:
    """``<directory>/<arch>.safetensors`` with seeded random weights of registry architecture ``arch``."""
    torch.manual_seed(seed)
    path = Path(directory) / f"{arch}.safetensors"
    save_model_file(create_model(arch), path, info={"note": "random weights for tests"})
    return path
