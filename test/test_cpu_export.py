"""Backend ``auto`` on a CPU runs a model file's matching ONNX export (real files, real ORT sessions)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from model_files import random_model_file
from square_frames import moving_square_frames

from dytrack_ros.backends import load_backend
from dytrack_ros.backends.cpu_export import SOURCE_SHA256_KEY, export_metadata, matching_cpu_export
from dytrack_ros.backends.engine_cache import file_sha256
from dytrack_ros.cli import main as cli_main
from dytrack_ros.tracker import Tracker


@pytest.fixture(scope="module")
def model_with_export(tmp_path_factory):
    """A tiny exit model file and its ONNX export written next to it by ``dytrack export``."""
    root = tmp_path_factory.mktemp("cpu_export")
    st = random_model_file(root, "dytrack_tiny", seed=4)
    assert cli_main(["export", str(st)]) == 0
    return st


def test_export_records_the_model_files_sha256(model_with_export):
    onnx_path = model_with_export.with_name(model_with_export.name.replace(".safetensors", ".onnx"))
    assert export_metadata(onnx_path)[SOURCE_SHA256_KEY] == file_sha256(model_with_export)


def test_auto_runs_the_matching_export_on_cpu_and_torch_when_asked(model_with_export):
    auto = load_backend(model_with_export, threads=1)
    assert auto.name == "onnxruntime"
    assert auto.model_info == load_backend(model_with_export, backend="torch").model_info != {}
    assert load_backend(model_with_export, backend="torch").name == "torch"
    assert load_backend(model_with_export, precision="fp16").name == "torch"  # exports are fp32 graphs


def test_tracker_boxes_match_torch_through_the_export(model_with_export):
    frames, gts = moving_square_frames(n=6)
    runs = {}
    for backend in ("auto", "torch"):
        tracker = Tracker.from_model(model_with_export, backend=backend, threads=1)
        assert tracker.backend_info["backend"] == ("onnxruntime" if backend == "auto" else "torch")
        tracker.set_exit_thresholds((0.5, 0.5, 0.0))
        tracker.initialize(frames[0], gts[0])
        runs[backend] = [tracker.track(f) for f in frames[1:]]
    for a, t in zip(runs["auto"], runs["torch"]):
        np.testing.assert_allclose(a.box, t.box, atol=1e-3, rtol=0)
        assert a.exit_layer == t.exit_layer


def test_an_export_of_other_bytes_is_ignored(model_with_export, tmp_path):
    st = tmp_path / model_with_export.name
    shutil.copy(model_with_export, st)
    for p in model_with_export.parent.glob("*.onnx"):
        shutil.copy(p, tmp_path / p.name)
    assert matching_cpu_export(st)[0] == tmp_path / "dytrack_tiny.onnx"
    random_model_file(tmp_path, "dytrack_tiny", seed=5)  # the model file is replaced, its old export stays
    export, why = matching_cpu_export(st)
    assert export is None and "different model file" in why
    assert load_backend(st).name == "torch"


def test_an_in_memory_network_runs_on_torch(model_with_export):
    from dytrack_ros.model_io.model_file import load_model_file

    net, _ = load_model_file(model_with_export)
    assert load_backend(net).name == "torch"


def test_no_export_or_a_broken_one_means_torch(tmp_path):
    st = random_model_file(tmp_path, "dytrack_tiny", seed=6)
    assert matching_cpu_export(st) == (None, "no ONNX export dytrack_tiny.onnx next to it")
    (tmp_path / "dytrack_tiny.onnx").write_bytes(b"not a protobuf")
    export, why = matching_cpu_export(st)
    assert export is None and "not a readable" in why
    assert load_backend(st).name == "torch"
