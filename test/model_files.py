"""Randomly initialised models saved as real model files, for tests that need a model but not a trained one."""
from __future__ import annotations

from pathlib import Path

import torch

from dytrack_ros.model import create_model
from dytrack_ros.model_io.model_file import save_model_file


def random_model_file(directory: Path, arch: str, seed: int) -> Path:
    """``<directory>/<arch>.safetensors`` with seeded random weights of registry architecture ``arch``."""
    torch.manual_seed(seed)
    path = Path(directory) / f"{arch}.safetensors"
    save_model_file(create_model(arch), path, info={"note": "random weights for tests"})
    return path


def overflowing_model_file(directory: Path, seed: int = 0) -> Path:
    """A dytrack_tiny file whose weights are all finite but whose output is NaN on textured frames.

    The patch embedding is a +-1e20 checkerboard whose weights sum to zero per channel: a uniform frame
    (the node's grey warm-up frame) embeds to zero and runs normally, texture embeds to ~1e21 and the
    layer norms overflow to NaN. Models the broken weights a loader cannot reject by their values.
    """
    torch.manual_seed(seed)
    net = create_model("dytrack_tiny")
    weight = net.backbone.patch_embed.proj.weight
    with torch.no_grad():
        sign = torch.ones_like(weight)
        sign[..., ::2, 1::2] = -1
        sign[..., 1::2, ::2] = -1
        weight.copy_(sign * 1e20)
    path = Path(directory) / "dytrack_tiny_overflowing.safetensors"
    save_model_file(net, path, info={"note": "finite weights that overflow on textured input, for tests"})
    return path
