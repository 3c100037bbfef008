"""ONNX export + ONNX Runtime backend: real files, real sessions, compared with torch on the same inputs."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from square_frames import moving_square_frames

from dytrack_ros.backends import BackendError, backend_for_path, load_backend
from dytrack_ros.backends.onnx_backend import OnnxBackend
from dytrack_ros.backends.onnx_export import FORMAT, OnnxExportError, example_inputs, export_onnx, torch_stage_outputs
from dytrack_ros.backends.torch_backend import TorchBackend
from dytrack_ros.cli import main as cli_main
from dytrack_ros.config import ModelConfig
from dytrack_ros.model import create_model, get_config
from dytrack_ros.model_io.model_file import save_model_file
from dytrack_ros.runtime_options import RuntimeOptions
from dytrack_ros.tracker import Tracker

ATOL = 1e-4


def _make_nontrivial(net):
    """Random nets have identity recyclers and unit BatchNorm statistics; make both matter."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for r in getattr(net, "recyclers", []):
            r.weight.copy_(torch.randn(r.weight.shape, generator=g) * 0.05)
            r.bias.copy_(torch.randn(r.bias.shape, generator=g) * 0.05)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """{name: (net, [onnx files], safetensors file)} for an exit model and a plain model."""
    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for seed, name in enumerate(("dytrack_tiny", "ostrack_tiny")):
        torch.manual_seed(seed)
        net = _make_nontrivial(create_model(name))
        st = save_model_file(net, root / f"{name}.safetensors")
        out[name] = (net, export_onnx(net, root / f"{name}.onnx"), st)
    return out


def _meta(path):
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_exit_model_is_one_checked_graph_per_stage_with_metadata(exported):
    net, paths, _ = exported["dytrack_tiny"]
    assert [p.name for p in paths] == ["dytrack_tiny.onnx", "dytrack_tiny.stage1.onnx", "dytrack_tiny.stage2.onnx"]
    for p in paths:
        onnx.checker.check_model(str(p))
        assert not list(p.parent.glob(p.name + ".data")), "weights must be inside the file"
    meta = _meta(paths[0])
    assert meta["format"] == FORMAT
    assert ModelConfig.from_dict(json.loads(meta["model_config"])) == net.cfg
    assert json.loads(meta["exit_thresholds"]) == pytest.approx(list(net.cfg.default_thresholds))
    assert json.loads(meta["stage_files"]) == [p.name for p in paths[1:]]
    stage_meta = [_meta(p) for p in paths[1:]]
    assert [m["stage_index"] for m in stage_meta] == ["1", "2"]
    assert {m["export_id"] for m in stage_meta} == {meta["export_id"]}

    graphs = [onnx.load(str(p)) for p in paths]
    assert [[i.name for i in g.graph.input] for g in graphs] == [["template", "search"], ["tokens"], ["tokens"]]
    outs = [[o.name for o in g.graph.output] for g in graphs]
    maps = ["score_map", "size_map", "offset_map", "pred_iou"]
    assert outs == [["tokens_out"] + maps, ["tokens_out"] + maps, maps]


def test_plain_model_is_a_single_self_contained_graph(exported):
    _, paths, _ = exported["ostrack_tiny"]
    assert len(paths) == 1
    g = onnx.load(str(paths[0]))
    onnx.checker.check_model(g)
    assert [o.name for o in g.graph.output] == ["score_map", "size_map", "offset_map"]
    assert json.loads(_meta(paths[0])["stage_files"]) == []


@pytest.mark.parametrize("name", ["dytrack_tiny", "ostrack_tiny"])
@pytest.mark.parametrize("seed", [3, 4])
def test_onnxruntime_matches_torch_on_every_output_of_every_stage(exported, name, seed):
    net, paths, _ = exported[name]
    template, search = example_inputs(net, seed)
    ref = torch_stage_outputs(net, template, search)
    backend = OnnxBackend(paths[0])
    backend.set_template(template.numpy())
    got = backend.run_stages(search.numpy())
    assert len(got) == len(ref) == net.num_stages
    for k, (r, g) in enumerate(zip(ref, got)):
        assert list(g) == list(r)
        for key in r:
            assert g[key].shape == r[key].shape
            diff = float(np.max(np.abs(g[key] - r[key])))
            assert diff <= ATOL, f"stage {k} {key}: max |diff| {diff}"


def _torch_pred_ious(net, template, search):
    with torch.no_grad():
        return [float(o.pred_iou) for o in net.forward_all_exits(template, search)]


def test_early_exit_chaining_picks_the_same_exit_as_torch(exported):
    net, paths, _ = exported["dytrack_tiny"]
    template, search = example_inputs(net, 5)
    ious = _torch_pred_ious(net, template, search)
    # thresholds that fire exactly at the second exit: just above exit 0's IoU, just below exit 1's
    middle = (min(1.0, ious[0] + 1e-3), max(0.0, ious[1] - 1e-3), 0.0)
    ort_backend = OnnxBackend(paths[0])
    torch_backend = TorchBackend(net)
    for b in (ort_backend, torch_backend):
        b.set_template(template.numpy())
    for thresholds, layer in (((0.0, 0.0, 0.0), 1), (middle, 2), ((1.0, 1.0, 1.0), 4)):
        outs = []
        for b in (ort_backend, torch_backend):
            b.set_exit_thresholds(thresholds)
            outs.append(b.infer(search.numpy()))
        o, t = outs
        assert (o.exit_layer, o.exit_index) == (t.exit_layer, t.exit_index) == (layer, [1, 2, 4].index(layer))
        assert o.pred_iou == pytest.approx(t.pred_iou, abs=ATOL)
        for a, b in ((o.score_map, t.score_map), (o.size_map, t.size_map), (o.offset_map, t.offset_map)):
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=0)
        assert len(o.stage_ms) == [1, 2, 4].index(layer) + 1


def test_backend_defaults_to_the_thresholds_stored_in_the_file(exported):
    net, paths, _ = exported["dytrack_tiny"]
    backend = OnnxBackend(paths[0])
    assert backend.exit_thresholds == pytest.approx(tuple(net.cfg.default_thresholds))
    assert backend.exit_layers == (1, 2, 4)
    assert backend.info()["backend"] == "onnxruntime"


def test_tracker_on_onnx_gives_the_torch_boxes(exported):
    _, paths, st = exported["dytrack_tiny"]
    frames, gts = moving_square_frames(n=6)
    runs = {}
    for path in (st, paths[0]):
        tracker = Tracker.from_model(path)
        tracker.set_exit_thresholds((0.5, 0.5, 0.0))  # random decisioners sit near 0.5: exits vary
        tracker.initialize(frames[0], gts[0])
        runs[path.suffix] = [tracker.track(f) for f in frames[1:]]
        assert tracker.backend_info["backend"] == {"safetensors": "torch", "onnx": "onnxruntime"}[path.suffix[1:]]
    for t, o in zip(runs[".safetensors"], runs[".onnx"]):
        np.testing.assert_allclose(o.box, t.box, atol=1e-3, rtol=0)
        assert o.exit_layer == t.exit_layer
        assert o.score == pytest.approx(t.score, abs=ATOL)


@pytest.mark.slow
def test_export_leaves_the_model_untouched(tmp_path):
    torch.manual_seed(0)
    net = _make_nontrivial(create_model("dytrack_tiny")).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_onnx(net, tmp_path / "m.onnx")
    assert net.training and all(m.training for m in net.modules())
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.slow
def test_candidate_elimination_model_exports_and_matches(tmp_path):
    """CE pruning (top-k + gather + scatter) is data dependent but has static shapes: it traces exactly."""
    torch.manual_seed(0)
    net = _make_nontrivial(create_model(get_config("ostrack_tiny").replace(name="ostrack_tiny_ce", ce_loc=(1, 2))))
    (path,) = export_onnx(net, tmp_path / "ce.onnx")
    backend = OnnxBackend(path)
    for seed in (10, 11):
        template, search = example_inputs(net, seed)
        ref = torch_stage_outputs(net, template, search)[0]
        backend.set_template(template.numpy())
        out = backend.infer(search.numpy())
        assert out.exit_layer == net.cfg.depth and out.pred_iou is None
        np.testing.assert_allclose(out.score_map, ref["score_map"], atol=ATOL, rtol=0)
        np.testing.assert_allclose(out.offset_map, ref["offset_map"], atol=ATOL, rtol=0)


def test_export_refuses_a_wrong_suffix_and_writes_nothing(tmp_path):
    net = create_model("ostrack_tiny")
    with pytest.raises(OnnxExportError, match=r"\.onnx"):
        export_onnx(net, tmp_path / "model.bin")
    assert list(tmp_path.iterdir()) == []


# --- loading errors ----------------------------------------------------------------

@pytest.mark.slow
def test_missing_or_foreign_stage_files_are_refused(exported, tmp_path):
    _, paths, _ = exported["dytrack_tiny"]
    first = tmp_path / "dytrack_tiny.onnx"
    first.write_bytes(paths[0].read_bytes())
    with pytest.raises(BackendError, match="dytrack_tiny.stage1.onnx"):
        OnnxBackend(first)
    # stage files from a different export of the same architecture
    torch.manual_seed(9)
    export_onnx(create_model("dytrack_tiny"), tmp_path / "other.onnx", verify=False)
    for k in (1, 2):
        (tmp_path / f"dytrack_tiny.stage{k}.onnx").write_bytes((tmp_path / f"other.stage{k}.onnx").read_bytes())
    with pytest.raises(BackendError, match="does not belong"):
        OnnxBackend(first)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter announces itself
def test_an_onnx_file_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(4, 2), (torch.zeros(1, 4),), str(path), dynamo=False, opset_version=17)
    with pytest.raises(BackendError, match="not a dytrack_ros ONNX export"):
        load_backend(path)


def test_unsupported_precision_and_devices_are_refused(exported):
    _, paths, _ = exported["ostrack_tiny"]
    for precision in ("fp16", "bf16"):
        with pytest.raises(BackendError, match="precision"):
            load_backend(paths[0], precision=precision)
    with pytest.raises(BackendError, match="device must be"):
        OnnxBackend(paths[0], RuntimeOptions(device="gpu"))
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendError, match="CUDAExecutionProvider"):
            load_backend(paths[0], device="cuda")


def test_wrong_input_shape_is_a_clear_error(exported):
    _, paths, _ = exported["ostrack_tiny"]
    backend = OnnxBackend(paths[0])
    with pytest.raises(BackendError, match="set_template"):
        backend.infer(np.zeros((1, 3, 128, 128), np.float32))
    with pytest.raises(BackendError, match="template must have shape"):
        backend.set_template(np.zeros((1, 3, 128, 128), np.float32))


def test_registry_picks_the_backend_by_suffix_and_reports_bad_requests(exported, tmp_path):
    _, paths, st = exported["dytrack_tiny"]
    assert backend_for_path(paths[0]) == "onnxruntime"
    assert backend_for_path(st) == "torch"
    assert backend_for_path("ckpt.pth.tar") == "torch"
    assert isinstance(load_backend(paths[0]), OnnxBackend)
    assert isinstance(load_backend(st), TorchBackend)
    with pytest.raises(BackendError, match="cannot tell the backend"):
        load_backend(tmp_path / "model.xyz")
    with pytest.raises(BackendError, match="not found"):
        load_backend(tmp_path / "missing.onnx")
    with pytest.raises(BackendError, match="not found"):
        load_backend(tmp_path / "missing.safetensors")
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        load_backend(st, backend="nope")
    with pytest.raises(BackendError, match="exported .onnx"):
        load_backend(create_model("dytrack_tiny"), backend="onnxruntime")


# --- CLI -----------------------------------------------------------------------------

@pytest.mark.slow
def test_export_cli_writes_the_stage_files_and_reports_parity(exported, tmp_path, capsys):
    _, _, st = exported["dytrack_tiny"]
    out = tmp_path / "cli" / "model.onnx"
    assert cli_main(["export", str(st), "--format", "onnx", "--out", str(out), "--check"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and (tmp_path / "cli" / "model.stage2.onnx").is_file()
    lines = [ln for ln in text.splitlines() if ln.strip().startswith("stage ")]
    assert len(lines) == 3
    diffs = [float(tok.split("=")[1]) for ln in lines for tok in ln.split()[2:]]
    assert len(diffs) == 5 + 5 + 4 and max(diffs) <= ATOL
    assert OnnxBackend(out).model_name == "dytrack_tiny"


def test_export_cli_errors_are_one_line_and_nonzero(tmp_path, capsys):
    assert cli_main(["export", str(tmp_path / "missing.safetensors")]) == 1
    assert "not found" in capsys.readouterr().err
