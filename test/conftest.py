"""Shared fixtures: small real models saved as real files, simple generated frames."""
from __future__ import annotations

import os

import pytest
import torch
from model_files import random_model_file
from square_frames import moving_square_frames

# One torch thread by default: test models are small, and on a loaded 2-core machine an OpenMP team of 2
# stalls at every barrier (measured 60x slower). DYTRACK_TEST_THREADS=2 to change.
torch.set_num_threads(max(1, int(os.environ.get("DYTRACK_TEST_THREADS", "1"))))


@pytest.fixture(scope="session")
def tiny_dytrack_file(tmp_path_factory):
    """A randomly initialised DyTrack tiny model (exits after layers 1, 2, 4) as a .safetensors file."""
    return random_model_file(tmp_path_factory.mktemp("models"), "dytrack_tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_plain_file(tmp_path_factory):
    """A randomly initialised plain (no exits) tiny OSTrack model file."""
    return random_model_file(tmp_path_factory.mktemp("models"), "ostrack_tiny", seed=1)


@pytest.fixture
def square_sequence():
    return moving_square_frames()
