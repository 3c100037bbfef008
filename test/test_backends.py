"""Torch backend precisions and devices (CPU here; the CUDA test runs only where a GPU is present)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dytrack_ros.backends import BackendError, load_backend
from dytrack_ros.backends.onnx_export import example_inputs
from dytrack_ros.backends.torch_backend import TorchBackend
from dytrack_ros.model import create_model


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    net = create_model("dytrack_tiny").eval()
    template, search = example_inputs(net, 2)
    return net.state_dict(), template.numpy(), search.numpy()


def _backend(state, precision, device="cpu", thresholds=(1.0, 1.0, 1.0)):
    net = create_model("dytrack_tiny")
    net.load_state_dict(state)
    b = TorchBackend(net, device, precision)
    b.set_exit_thresholds(thresholds)
    return b


def _run(backend, template, search):
    backend.set_template(template)
    return backend.infer(search)


@pytest.mark.parametrize("precision, tol", [("bf16", 0.04), ("fp16", 0.01)])
def test_reduced_precision_on_cpu_gives_maps_close_to_fp32(inputs, precision, tol):
    state, template, search = inputs
    ref = _run(_backend(state, "fp32"), template, search)
    out = _run(_backend(state, precision), template, search)
    assert out.exit_layer == ref.exit_layer == 4
    for name in ("score_map", "size_map", "offset_map"):
        a, r = getattr(out, name), getattr(ref, name)
        assert a.dtype == np.float32 and a.shape == r.shape
        err = float(np.max(np.abs(a - r)))
        assert err <= tol, f"{precision} {name}: max |diff| {err}"
        assert err > 0.0, f"{precision} {name}: identical to fp32, so the precision was not applied"
    assert out.pred_iou == pytest.approx(ref.pred_iou, abs=tol)


def test_load_backend_passes_precision_and_rejects_unknown_ones(inputs):
    state, template, search = inputs
    net = create_model("dytrack_tiny")
    net.load_state_dict(state)
    b = load_backend(net, precision="bf16")
    assert b.info()["precision"] == "bf16" and next(b.model.parameters()).dtype == torch.bfloat16
    with pytest.raises(BackendError, match="precision"):
        load_backend(net, precision="int8")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_cuda_requested_without_cuda_is_a_clear_error(inputs):
    state, _, _ = inputs
    with pytest.raises(BackendError, match="CUDA is not available"):
        _backend(state, "fp32", device="cuda")


def test_invalid_device_string_is_a_backend_error(inputs):
    state, _, _ = inputs
    with pytest.raises(BackendError, match="invalid torch device"):
        _backend(state, "fp32", device="quantum:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("precision, tol", [("fp32", 1e-3), ("fp16", 0.02), ("bf16", 0.08)])
def test_cuda_backend_matches_cpu_fp32(inputs, precision, tol):
    state, template, search = inputs
    ref = _run(_backend(state, "fp32"), template, search)
    out = _run(_backend(state, precision, device="cuda"), template, search)
    assert out.exit_layer == ref.exit_layer
    for name in ("score_map", "size_map", "offset_map"):
        assert float(np.max(np.abs(getattr(out, name) - getattr(ref, name)))) <= tol
