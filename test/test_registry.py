"""One name, one network: a shipped model file and the registry entry of the same name agree."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from dytrack_ros.model import create_model, get_config
from dytrack_ros.model_io.model_file import read_metadata

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(MODELS.glob("*.safetensors"))
# Thresholds are calibrated per trained file; the name is what is compared against.
NOT_ARCHITECTURE = {"exit_thresholds", "exit_agreement", "name"}  # calibration, not architecture


def _architecture(cfg) -> dict:
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in NOT_ARCHITECTURE}


def test_models_folder_ships_the_default_model():
    assert MODELS / "dytrack_small.safetensors" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_registry_entry_is_the_shipped_architecture(path):
    stored, _ = read_metadata(path)
    assert stored.name == path.stem
    assert _architecture(get_config(stored.name)) == _architecture(stored)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_registry_model_has_the_shipped_parameter_shapes(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        shipped = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    torch.manual_seed(0)
    ours = {k: tuple(v.shape) for k, v in create_model(path.stem).state_dict().items()}
    assert ours == shipped


def test_small_variants_differ_only_in_input_size():
    small, big = get_config("dytrack_small"), get_config("dytrack_small256")
    assert (small.template_size, small.search_size) == (64, 128)
    assert (big.template_size, big.search_size) == (128, 256)
    assert _architecture(small.replace(template_size=128, search_size=256)) == _architecture(big)
