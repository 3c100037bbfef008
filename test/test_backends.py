"""Torch backend precisions and devices (CPU here; the CUDA test runs only where a GPU is present)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dytrack_ros.backends import BackendError, load_backend
from dytrack_ros.backends.onnx_export import example_inputs
from dytrack_ros.backends.torch_backend import TorchBackend
from dytrack_ros.model import create_model
from dytrack_ros.runtime_options import RuntimeOptions


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(0)
    net = create_model("dytrack_tiny").eval()
    template, search = example_inputs(net, 2)
    return net.state_dict(), template.numpy(), search.numpy()


def _backend(state, precision, device="cpu", thresholds=(1.0, 1.0, 1.0)):
    net = create_model("dytrack_tiny")
    net.load_state_dict(state)
    b = TorchBackend(net, RuntimeOptions(device=device, precision=precision))
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
        load_backend(net, precision="int4")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when CUDA is missing")
def test_cuda_requested_without_cuda_is_a_clear_error(inputs):
    state, _, _ = inputs
    with pytest.raises(BackendError, match="CUDA is not available"):
        _backend(state, "fp32", device="cuda")


def test_invalid_device_string_is_a_backend_error(inputs):
    state, _, _ = inputs
    with pytest.raises(BackendError, match="invalid torch device"):
        _backend(state, "fp32", device="quantum:0")


def test_every_stage_runs_in_order_and_forced_exits_match_the_full_trace(inputs):
    """The staged primitives: infer_to_exit(k) == exit k of infer_all; stages refuse to run out of order."""
    state, template, search = inputs
    b = _backend(state, "fp32")
    b.set_template(template)
    every = b.infer_all(search)
    assert [o.exit_layer for o in every] == [1, 2, 4] and len(every[-1].stage_ms) == 3
    assert every[-1].stage_pred_iou == pytest.approx([o.pred_iou for o in every])
    for k in range(3):
        forced = b.infer_to_exit(search, k)
        assert forced.exit_index == k and len(forced.stage_ms) == k + 1
        np.testing.assert_array_equal(forced.score_map, every[k].score_map)
        assert forced.pred_iou == pytest.approx(every[k].pred_iou)
    b.start_frame(search)
    with pytest.raises(BackendError, match="in order"):
        b.run_stage(1)
    with pytest.raises(BackendError, match="has not run"):
        b.stage_output(0)


def test_infer_stops_at_the_first_exit_the_policy_accepts(inputs):
    state, template, search = inputs
    b = _backend(state, "fp32")
    b.set_template(template)
    q = [o.pred_iou for o in b.infer_all(search)]
    # a threshold just above exit 0's prediction and just below exit 1's: exit 1 answers, stage 2 never runs
    b.set_exit_thresholds([q[0] + 1e-4, q[1] - 1e-4, 0.0])
    out = b.infer(search)
    assert out.exit_index == 1 and len(out.stage_ms) == 2
    assert b.exit_policy.first_exit(q) == 1


def test_warmup_runs_every_stage_and_keeps_the_policy(inputs):
    state, template, search = inputs
    b = _backend(state, "fp32", thresholds=(0.3, 0.4, 0.0))
    b.warmup(1)
    b.set_template(template)
    assert b.exit_thresholds == (0.3, 0.4, 0.0) and b.infer(search).exit_index in (0, 1, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("precision, tol", [("fp32", 1e-3), ("fp16", 0.02), ("bf16", 0.08)])
def test_cuda_backend_matches_cpu_fp32(inputs, precision, tol):
    state, template, search = inputs
    ref = _run(_backend(state, "fp32"), template, search)
    out = _run(_backend(state, precision, device="cuda"), template, search)
    assert out.exit_layer == ref.exit_layer
    for name in ("score_map", "size_map", "offset_map"):
        assert float(np.max(np.abs(getattr(out, name) - getattr(ref, name)))) <= tol
