"""TensorRT backend logic that needs no GPU: engine cache keys and rebuild policy, build strategy per TensorRT
version, binding plans and the FP16 graph's precision layout, read from real exported ONNX files.

The end-to-end engine test at the bottom runs only where TensorRT and a CUDA GPU are present.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, shape_inference

from dytrack_ros.backends import BackendError, backend_for_path, load_backend
from dytrack_ros.backends.engine_cache import EngineCache, EngineKey, StaleEngineError, default_cache_dir
from dytrack_ros.backends.onnx_export import example_inputs, export_onnx
from dytrack_ros.backends.tensorrt_backend import Manifest, TrtBuildOptions, fp16_onnx_path, manifest_path
from dytrack_ros.backends.trt_plan import PlanError, build_strategy, plan_bindings
from dytrack_ros.model import create_model

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def _key(**changes) -> EngineKey:
    base = EngineKey("ab" * 32, "10.3.0", "NVIDIA H200", (9, 0), "fp16", ("set:FP16", "workspace_mib=4096"))
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    torch.manual_seed(0)
    net = create_model("dytrack_tiny").eval()
    root = tmp_path_factory.mktemp("trt")
    fp32 = export_onnx(net, root / "m.onnx")
    fp16 = export_onnx(net, fp16_onnx_path(root / "m.onnx"), precision="fp16")
    return net, fp32, fp16


# --- engine cache ---------------------------------------------------------------------------------

def test_engine_key_digest_is_stable_and_covers_every_field():
    assert _key().digest() == _key().digest()
    assert _key(build_flags=("workspace_mib=4096", "set:FP16")) == _key()  # flag order does not matter
    changed = [_key(onnx_sha256="cd" * 32), _key(tensorrt_version="10.4.0"), _key(gpu_name="Orin"),
               _key(compute_capability=(8, 7)), _key(precision="fp32"), _key(build_flags=("strongly_typed",))]
    digests = {k.digest() for k in changed} | {_key().digest()}
    assert len(digests) == len(changed) + 1
    assert EngineKey.from_dict(json.loads(json.dumps(_key().to_dict()))) == _key()


def test_cache_builds_then_loads_and_never_loads_a_stale_engine(tmp_path):
    cache = EngineCache(tmp_path)
    d = cache.decide("m", _key())
    assert d.action == "build" and "no engine built yet" in d.reason
    cache.store(d.engine_path, _key(), b"engine-bytes")
    again = cache.decide("m", _key())
    assert again.action == "load" and again.engine_path == d.engine_path
    upgraded = cache.decide("m", _key(tensorrt_version="10.4.0"))  # JetPack upgrade
    assert upgraded.action == "build" and upgraded.engine_path != d.engine_path
    assert "tensorrt_version: 10.3.0 -> 10.4.0" in upgraded.reason
    with pytest.raises(StaleEngineError, match="tensorrt_version.*'never'"):
        cache.decide("m", _key(tensorrt_version="10.4.0"), policy="never")
    with pytest.raises(ValueError, match="rebuild policy"):
        cache.decide("m", _key(), policy="sometimes")


def test_an_engine_whose_sidecar_does_not_match_is_rebuilt_not_loaded(tmp_path):
    cache = EngineCache(tmp_path)
    path = cache.engine_path("m", _key())
    cache.store(path, _key(gpu_name="NVIDIA A100"), b"engine built elsewhere")  # copied under this key's name
    d = cache.decide("m", _key())
    assert d.action == "build" and "gpu_name: NVIDIA A100 -> NVIDIA H200" in d.reason
    cache.sidecar(path).unlink()
    assert cache.decide("m", _key()).action == "build"
    with pytest.raises(StaleEngineError, match="sidecar"):
        cache.decide("m", _key(), policy="never")


def test_timing_cache_is_per_tensorrt_version_and_gpu_not_per_graph(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.timing_cache_path(_key()) == cache.timing_cache_path(_key(onnx_sha256="cd" * 32, precision="fp32"))
    assert cache.timing_cache_path(_key()) != cache.timing_cache_path(_key(gpu_name="Orin"))
    assert cache.timing_cache_path(_key()) != cache.timing_cache_path(_key(tensorrt_version="11.0.0"))
    assert cache.load_timing_cache(_key()) == b""
    cache.save_timing_cache(_key(), b"timings")
    assert cache.load_timing_cache(_key()) == b"timings"


def test_default_cache_dir_sits_next_to_the_model(tmp_path, monkeypatch):
    monkeypatch.delenv("DYTRACK_TRT_CACHE", raising=False)
    assert default_cache_dir(tmp_path / "m.onnx") == tmp_path / "m.engines"
    assert default_cache_dir(tmp_path / "m.fp16.onnx") == tmp_path / "m.engines"  # never the manifest's name
    assert default_cache_dir(tmp_path / "m.fp16.onnx") != manifest_path(tmp_path / "m.fp16.onnx", "fp16")
    monkeypatch.setenv("DYTRACK_TRT_CACHE", str(tmp_path / "elsewhere"))
    assert default_cache_dir(tmp_path / "m.onnx") == tmp_path / "elsewhere"


# --- build strategy -------------------------------------------------------------------------------

def test_tensorrt10_builds_fp16_weakly_typed_with_fp32_norms_softmax_and_decisioner():
    s = build_strategy("10.3.0", "fp16")
    assert s.onnx_precision == "fp32" and not s.strongly_typed
    assert set(s.builder_flags) == {"FP16", "OBEY_PRECISION_CONSTRAINTS"}
    assert set(s.fp32_layer_types) == {"NORMALIZATION", "SOFTMAX"} and "decisioners." in s.fp32_node_patterns


def test_tensorrt11_builds_strongly_typed_from_the_fp16_graph_without_precision_flags():
    s = build_strategy("11.0.0.1", "fp16")
    assert s.onnx_precision == "fp16" and s.strongly_typed
    assert "FP16" not in s.builder_flags and not s.fp32_layer_types
    assert build_strategy("11.2", "fp32").onnx_precision == "fp32"


def test_fp32_engines_disable_tf32_and_version_compatibility_is_opt_in():
    assert build_strategy("10.3.0", "fp32").cleared_flags == ("TF32",)
    assert build_strategy("11.1.0", "fp32").cleared_flags == ("TF32",)
    plain = build_strategy("10.3.0", "fp16")
    vc = build_strategy("10.3.0", "fp16", version_compatible=True)
    assert "VERSION_COMPATIBLE" not in plain.builder_flags and "VERSION_COMPATIBLE" in vc.builder_flags
    assert "version_compatible" in vc.flag_names(True, 4096)
    assert vc.flag_names(True, 4096) != plain.flag_names(False, 4096)
    assert plain.flag_names(False, 4096) != plain.flag_names(False, 2048)  # workspace enters the cache key


def test_unsupported_precisions_and_versions_are_refused():
    with pytest.raises(PlanError, match="int8"):
        build_strategy("10.3.0", "int8")
    with pytest.raises(PlanError, match="too old"):
        build_strategy("8.6.1", "fp16")
    with pytest.raises(PlanError, match="version"):
        build_strategy("unknown", "fp16")


# --- binding plan from the real ONNX files --------------------------------------------------------

def test_binding_plan_chains_stage_tokens_through_one_buffer(exports):
    net, fp32, _ = exports
    cfg = net.cfg
    plan = plan_bindings(fp32[0])
    assert [s.onnx_path for s in plan.stages] == fp32
    n_tokens = cfg.num_template_tokens + cfg.num_search_tokens + 1
    assert plan.buffers["template"].shape == (1, 3, cfg.template_size, cfg.template_size)
    assert plan.buffers["tokens0"].shape == (1, n_tokens, cfg.embed_dim)
    assert plan.stages[1].buffer_of == {"tokens": "tokens0", "tokens_out": "tokens1", "score_map": "stage1.score_map",
                                        "size_map": "stage1.size_map", "offset_map": "stage1.offset_map",
                                        "pred_iou": "stage1.pred_iou"}
    assert "tokens_out" not in plan.stages[-1].buffer_of  # the last stage hands nothing on
    f = cfg.search_feat
    assert plan.buffers["stage2.size_map"].shape == (1, 2, f, f)
    assert all(b.dtype == "float32" for b in plan.buffers.values())
    assert plan.device_bytes == sum(int(np.prod(b.shape)) * 4 for b in plan.buffers.values())


def test_fp16_plan_keeps_images_and_maps_float32_and_tokens_float16(exports):
    _, _, fp16 = exports
    plan = plan_bindings(fp16[0])
    assert plan.precision == "fp16"
    assert plan.buffers["search"].dtype == "float32" and plan.buffers["stage0.score_map"].dtype == "float32"
    assert plan.buffers["tokens0"].dtype == "float16" and plan.buffers["stage0.pred_iou"].dtype == "float32"


def test_plan_refuses_a_stage_file_from_another_export(exports, tmp_path):
    net, _, _ = exports
    a = export_onnx(net, tmp_path / "a.onnx", verify=False)
    b = export_onnx(net, tmp_path / "b.onnx", verify=False)
    a[1].write_bytes(b[1].read_bytes())
    with pytest.raises(PlanError, match="does not belong"):
        plan_bindings(a[0])


def test_plain_model_is_one_stage(tmp_path):
    torch.manual_seed(0)
    (path,) = export_onnx(create_model("ostrack_tiny").eval(), tmp_path / "p.onnx")
    plan = plan_bindings(path)
    assert len(plan.stages) == 1 and set(plan.buffers) == {"template", "search", "stage0.score_map",
                                                          "stage0.size_map", "stage0.offset_map"}


def test_fp16_graph_runs_norms_and_decisioner_in_fp32_and_the_blocks_in_fp16(exports):
    net, _, fp16 = exports
    model = shape_inference.infer_shapes(onnx.load(str(fp16[0])))
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)}
    types.update({i.name: i.data_type for i in model.graph.initializer})
    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert len(norms) == 2 * net.stage_bounds[0][1] + 1  # two per block of stage 0, plus the shared final norm
    assert all(types[n.input[0]] == TensorProto.FLOAT and types[n.output[0]] == TensorProto.FLOAT for n in norms)
    block_mm = [n for n in model.graph.node
                if n.op_type == "MatMul" and "blocks." in n.name and "attn/MatMul" not in n.name]
    assert block_mm and all(types[n.input[1]] == TensorProto.FLOAT16 for n in block_mm)
    decision = [n for n in model.graph.node if "decisioners." in n.name and n.op_type in ("Gemm", "MatMul")]
    assert decision and all(types[i] == TensorProto.FLOAT for n in decision for i in n.input[:2])


def test_fp16_export_matches_torch_fp32_within_half_precision(exports):
    from dytrack_ros.backends.onnx_export import ort_stage_outputs, torch_stage_outputs

    net, _, fp16 = exports
    t, s = example_inputs(net, 5)
    ref = torch_stage_outputs(net, t, s)
    got = ort_stage_outputs(fp16[0], t.numpy(), s.numpy())
    for r, g in zip(ref, got):
        for name in ("score_map", "size_map", "offset_map", "pred_iou"):
            err = float(np.max(np.abs(r[name] - g[name])))
            assert 0 < err <= 2e-2, f"{name}: {err}"


def test_fp16_export_is_refused_by_onnxruntime_backend_precision_check(exports):
    _, _, fp16 = exports
    with pytest.raises(BackendError, match="precision"):
        load_backend(fp16[0])


# --- manifest and backend selection ---------------------------------------------------------------

def test_manifest_round_trip_and_naming(tmp_path):
    assert manifest_path(tmp_path / "m.onnx", "fp16") == tmp_path / "m.fp16.trt"
    assert manifest_path(tmp_path / "m.fp16.onnx", "fp16") == tmp_path / "m.fp16.trt"
    assert fp16_onnx_path(tmp_path / "m.onnx") == tmp_path / "m.fp16.onnx"
    m = Manifest("m.onnx", "fp16", TrtBuildOptions(rebuild="never", version_compatible=True), ["m.trt/m.x.engine"])
    m.write(tmp_path / "m.fp16.trt")
    assert Manifest.read(tmp_path / "m.fp16.trt") == m
    (tmp_path / "bad.trt").write_text("{}")
    with pytest.raises(BackendError, match="not a dytrack_ros TensorRT manifest"):
        Manifest.read(tmp_path / "bad.trt")
    assert backend_for_path("m.fp16.trt") == "tensorrt" and backend_for_path("m.onnx") == "onnxruntime"


@pytest.mark.skipif(HAS_TRT, reason="checks the error raised when TensorRT is missing")
def test_missing_tensorrt_is_a_clear_error_naming_what_to_install(exports):
    _, fp32, _ = exports
    with pytest.raises(BackendError, match="'tensorrt' Python package.*JetPack"):
        load_backend(fp32[0], backend="tensorrt", device="cuda")


@pytest.mark.skipif(not (HAS_TRT and torch.cuda.is_available()), reason="needs TensorRT and a CUDA GPU")
@pytest.mark.parametrize("precision,tol", [("fp32", 2e-3), ("fp16", 3e-2)])
def test_tensorrt_engines_match_onnxruntime_and_are_reused(exports, tmp_path, precision, tol):
    from dytrack_ros.backends.tensorrt_backend import TensorRTBackend

    net, fp32, _ = exports
    t, s = example_inputs(net, 7)
    ref = load_backend(fp32[0])
    ref.set_template(t.numpy())
    build = TrtBuildOptions(cache_dir=str(tmp_path / "cache"))
    trt_b = TensorRTBackend(fp32[0], load_backend(fp32[0]).options.replace(device="cuda", precision=precision), build)
    trt_b.set_template(t.numpy())
    for a, b in zip(ref.infer_all(s.numpy()), trt_b.infer_all(s.numpy())):
        assert np.max(np.abs(a.score_map - b.score_map)) <= tol and abs(a.pred_iou - b.pred_iou) <= tol
    never = dataclasses.replace(build, rebuild="never")  # cached now: loading must not need a build
    TensorRTBackend(fp32[0], trt_b.options, never)
