"""The torch backend's static-buffer stages (CUDA graphs on a GPU) and fp16 with fp32 norms.

On the CPU the stages run eagerly through the same static buffers, so the chaining and the exit
decision are checked here against the plain network; the CUDA graph tests run only where a GPU is.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dytrack_ros.backends import BackendError, load_backend
from dytrack_ros.backends.onnx_export import example_inputs
from dytrack_ros.backends.precision import Fp32LayerNorm, fp32_norm_modules, half_with_fp32_norms
from dytrack_ros.backends.static_stages import StaticStages
from dytrack_ros.backends.torch_backend import TorchBackend
from dytrack_ros.model import create_model
from dytrack_ros.runtime_options import RuntimeOptions

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda.is_available() is False)")


@pytest.fixture(scope="module")
def net_and_inputs():
    torch.manual_seed(0)
    net = create_model("dytrack_tiny").eval()
    t, s = example_inputs(net, 4)
    return net, t, s


def _fresh(net):
    m = create_model(net.cfg).eval()
    m.load_state_dict(net.state_dict())
    return m


def test_static_stages_chain_like_the_plain_network(net_and_inputs):
    net, t, s = net_and_inputs
    with torch.inference_mode():
        ref = net.forward_all_exits(t, s)
    stages = StaticStages(_fresh(net), torch.device("cpu"), torch.float32, use_graphs=False)
    stages.set_template(t)
    stages.load_search(s)
    for k, r in enumerate(ref):
        pred = stages.run(k)
        assert pred == pytest.approx(float(torch.sigmoid(r.iou_logit)[0]), abs=1e-6)
        for got, want in zip(stages.maps(k), (r.score_map, r.size_map, r.offset_map)):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_backend_answers_like_the_network_under_its_exit_policy(net_and_inputs):
    net, t, s = net_and_inputs
    b = TorchBackend(_fresh(net))
    b.set_template(t.numpy())
    for thresholds in ((0.0, 0.0, 0.0), (1.0, 1.0, 0.0)):
        b.set_exit_thresholds(thresholds)
        with torch.inference_mode():
            ref = net(t, s, b.exit_policy)
        out = b.infer(s.numpy())
        assert out.exit_index == ref.index and len(out.stage_ms) == ref.index + 1
        np.testing.assert_allclose(out.score_map, ref.score_map.numpy(), atol=1e-5)
    new_template = (t * 0.5).numpy()  # a second template goes through the same static buffer
    b.set_template(new_template)
    with torch.inference_mode():
        ref = net(torch.from_numpy(new_template), s, b.exit_policy)
    np.testing.assert_allclose(b.infer(s.numpy()).score_map, ref.score_map.numpy(), atol=1e-5)


def test_graphs_need_cuda_and_a_static_model(net_and_inputs):
    net, _, _ = net_and_inputs
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        StaticStages(_fresh(net), torch.device("cpu"), torch.float32, use_graphs=True)
    with pytest.raises(BackendError, match="cuda_graphs needs a CUDA device"):
        TorchBackend(_fresh(net), cuda_graphs=True)
    ce = create_model("ostrack_tiny", ce_loc=(1,)).eval()
    with pytest.raises(ValueError, match="candidate elimination"):
        StaticStages(ce, torch.device("cpu"), torch.float32, use_graphs=False)


def test_half_precision_keeps_norms_and_decisioners_in_fp32(net_and_inputs):
    net, _, _ = net_and_inputs
    half = half_with_fp32_norms(_fresh(net), torch.float16)
    norms = [m for m in half.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(isinstance(m, Fp32LayerNorm) and m.weight.dtype == torch.float32 for m in norms)
    assert all(p.dtype == torch.float32 for d in half.decisioners for p in d.parameters())
    assert half.backbone.blocks[0].attn.qkv.weight.dtype == torch.float16
    assert len(fp32_norm_modules(half)) == 2 * half.cfg.depth + 1 + len(half.decisioners)


def test_fp16_on_cpu_is_close_to_fp32_and_leaves_the_callers_model(net_and_inputs):
    net, t, s = net_and_inputs
    ref = load_backend(_fresh(net))
    ref.set_template(t.numpy())
    mine = _fresh(net)
    b = load_backend(mine, precision="fp16")
    b.set_template(t.numpy())
    assert next(mine.parameters()).dtype == torch.float32
    for a, h in zip(ref.infer_all(s.numpy()), b.infer_all(s.numpy())):
        err = float(np.max(np.abs(a.score_map - h.score_map)))
        assert 0 < err <= 2e-2 and abs(a.pred_iou - h.pred_iou) <= 2e-2


@needs_cuda
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 2e-2)])
def test_cuda_graph_stages_match_the_cpu(net_and_inputs, precision, tol):
    net, t, s = net_and_inputs
    cpu = load_backend(_fresh(net))
    cpu.set_template(t.numpy())
    ref = cpu.infer_all(s.numpy())
    for graphs in (False, True):
        b = TorchBackend(_fresh(net), RuntimeOptions(device="cuda", precision=precision), cuda_graphs=graphs)
        assert b.cuda_graphs is graphs
        b.set_template(t.numpy())
        for _ in range(2):  # replays reuse the captured buffers
            for a, g in zip(ref, b.infer_all(s.numpy())):
                assert np.max(np.abs(a.score_map - g.score_map)) <= tol and abs(a.pred_iou - g.pred_iou) <= tol


@needs_cuda
def test_cuda_graph_backend_follows_a_new_search_and_template(net_and_inputs):
    net, t, s = net_and_inputs
    b = TorchBackend(_fresh(net), RuntimeOptions(device="cuda"))
    cpu = load_backend(_fresh(net))
    for tt, ss in ((t, s), (t * 0.3, s.flip(-1)), (t.flip(-2), s * 0.7)):
        b.set_template(tt.numpy())
        cpu.set_template(tt.numpy())
        np.testing.assert_allclose(b.infer_to_exit(ss.numpy(), 2).score_map,
                                   cpu.infer_to_exit(ss.numpy(), 2).score_map, atol=1e-3)


@pytest.mark.slow
def test_gpu_check_dry_run_writes_the_table_and_json(tmp_path):
    """benchmarks/gpu_check.py on the CPU: clip, table, JSON and the DDP plumbing (gloo) run for real."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
    out = tmp_path / "gc.json"
    proc = subprocess.run([sys.executable, str(script), "--cpu-dry-run", "--only", "env,clip,ddp", "--frames", "4",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    rows = {(c["section"], c["status"]) for c in report["checks"]}
    assert {("env", "ok"), ("clip", "ok"), ("clip", "skip"), ("ddp", "ok")} <= rows
    clip = next(c for c in report["checks"] if c["name"] == "4-frame clip")
    assert clip["detail"]  # which clip source was used
    ddp = next(c for c in report["checks"] if c["section"] == "ddp")
    assert ddp["value"] == 0.0 and "GLOO" in ddp["name"]
    assert "checks:" in proc.stdout and "0 failed" in proc.stdout and report["env"]["torch"] == torch.__version__
