"""int8 on CPUs (torch and ONNX Runtime) and the bf16-on-CPU warning: real forwards, real files."""
from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from dytrack_ros.backends import BackendError, load_backend
from dytrack_ros.backends.onnx_export import example_inputs, export_onnx
from dytrack_ros.backends.onnx_int8 import block_linear_matmuls, quantize_export
from dytrack_ros.backends.precision import cpu_has_native_bf16, int8_linear_count, warn_if_slow_bf16
from dytrack_ros.model import create_model
from dytrack_ros.runtime_options import PRECISIONS, RuntimeOptions

ARCH = "dytrack_small"  # the shipped model's architecture (dims 192: int8 kernels engage as on real models)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model(ARCH).eval()


@pytest.fixture(scope="module")
def inputs(net):
    t, s = example_inputs(net, 3)
    return t.numpy(), s.numpy()


@pytest.fixture(scope="module")
def onnx_fp32(net, tmp_path_factory):
    fresh = create_model(ARCH).eval()  # a fresh module: the fp32 torch backend keeps fused heads on ``net``
    fresh.load_state_dict(net.state_dict())
    return export_onnx(fresh, tmp_path_factory.mktemp("int8") / "m.onnx")


def _full_depth(backend, template, search):
    backend.set_template(template)
    return backend.infer_to_exit(search, backend.num_stages - 1)


def _assert_close_not_equal(out, ref, tol):
    for name in ("score_map", "size_map", "offset_map"):
        err = float(np.max(np.abs(getattr(out, name) - getattr(ref, name))))
        assert err <= tol, f"{name}: max |int8 - fp32| {err}"
    assert np.any(out.score_map != ref.score_map), "int8 maps identical to fp32: quantisation was not applied"


def test_int8_is_a_precision_everywhere():
    assert "int8" in PRECISIONS
    assert RuntimeOptions(precision="int8").precision == "int8"


def test_torch_int8_quantises_every_block_linear_and_keeps_the_callers_model(net, inputs):
    template, search = inputs
    ref = _full_depth(load_backend(net), template, search)
    b = load_backend(net, precision="int8")
    assert int8_linear_count(b.model) == 4 * net.cfg.depth  # qkv, proj, fc1, fc2 per block
    assert int8_linear_count(net) == 0 and isinstance(net.backbone.blocks[0].attn.qkv, nn.Linear)
    _assert_close_not_equal(_full_depth(b, template, search), ref, tol=0.05)


def test_torch_int8_is_cpu_only(net):
    with pytest.raises(BackendError, match="CPU-only"):
        load_backend(net, precision="int8", device="cuda")


@pytest.mark.slow
def test_onnxruntime_int8_from_an_fp32_export_quantises_at_load(net, inputs, onnx_fp32):
    template, search = inputs
    ref = _full_depth(load_backend(onnx_fp32[0]), template, search)
    b = load_backend(onnx_fp32[0], precision="int8")
    assert b.info()["precision"] == "int8"
    _assert_close_not_equal(_full_depth(b, template, search), ref, tol=0.05)
    with pytest.raises(BackendError, match="CPU-only"):
        load_backend(onnx_fp32[0], precision="int8", device="cuda")


@pytest.mark.slow
def test_int8_export_files_hold_int8_matmuls_and_load_only_as_int8(net, inputs, onnx_fp32, tmp_path):
    template, search = inputs
    assert len(block_linear_matmuls(onnx_fp32[0])) == 4 * 2  # stage 0 = 2 blocks
    paths = quantize_export(onnx_fp32[0], tmp_path / "m.int8.onnx")
    assert [p.name for p in paths] == ["m.int8.onnx", "m.int8.stage1.onnx", "m.int8.stage2.onnx"]
    first = onnx.load(str(paths[0]))
    meta = {p.key: p.value for p in first.metadata_props}
    assert meta["precision"] == "int8" and json.loads(meta["stage_files"]) == [p.name for p in paths[1:]]
    ops = {n.op_type for n in first.graph.node}
    assert ops & {"DynamicQuantizeMatMul", "MatMulInteger", "DynamicQuantizeLinear"}, ops
    int8_weights = [i for i in first.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2]
    assert len(int8_weights) == 4 * 2
    assert sum(p.stat().st_size for p in paths) < 0.7 * sum(p.stat().st_size for p in onnx_fp32)
    direct = _full_depth(load_backend(paths[0], precision="int8"), template, search)
    at_load = _full_depth(load_backend(onnx_fp32[0], precision="int8"), template, search)
    np.testing.assert_allclose(direct.score_map, at_load.score_map, atol=1e-6)
    with pytest.raises(BackendError, match="int8 export"):
        load_backend(paths[0])


def test_cpu_bf16_detection_reads_the_cpu_flags():
    assert cpu_has_native_bf16("processor: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n") is False
    assert cpu_has_native_bf16("flags\t: fpu avx512f avx512_bf16\n") is True
    assert cpu_has_native_bf16("flags\t: fpu amx_bf16 amx_tile\n") is True
    assert cpu_has_native_bf16("Features\t: fp asimd bf16 i8mm\n") is True  # aarch64 (e.g. Jetson Orin: no)
    assert cpu_has_native_bf16("Features\t: fp asimd asimdhp\n") is False


def test_bf16_on_a_cpu_without_native_bf16_warns(net):
    if cpu_has_native_bf16():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert warn_if_slow_bf16("cpu") is None
        pytest.skip("this CPU has native bf16: no warning expected (checked above)")
    with pytest.warns(RuntimeWarning, match="bf16 .*emulated"):
        load_backend(net, precision="bf16")
    assert warn_if_slow_bf16("cuda:0") is None
