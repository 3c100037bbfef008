"""Re-detection on ONNX Runtime: the batch-1 static graphs run windows one by one (Backend.infer_batch's loop)
and give the same windows' maps as torch's batched forward, so recovery behaves the same on both backends."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from dytrack_ros.backends import load_backend  # noqa: E402
from dytrack_ros.backends.base import Backend  # noqa: E402
from dytrack_ros.backends.onnx_export import export_onnx  # noqa: E402
from dytrack_ros.model_io.model_file import load_model_file  # noqa: E402
from dytrack_ros.runtime_options import RuntimeOptions  # noqa: E402

SMALL = Path(__file__).resolve().parents[1] / "models" / "dytrack_small.safetensors"


@pytest.mark.slow
def test_onnx_windows_match_torch_batch(tmp_path):
    net, _ = load_model_file(SMALL)
    onnx_path = export_onnx(net, tmp_path / "small.onnx")[0]
    ort = load_backend(onnx_path, RuntimeOptions(threads=1))
    torch_b = load_backend(SMALL, RuntimeOptions(threads=1))
    assert type(ort).infer_batch is Backend.infer_batch  # no batch axis in the export: the loop
    cfg = torch_b.config
    rng = np.random.default_rng(1)
    template = rng.normal(size=(1, 3, cfg.template_size, cfg.template_size)).astype(np.float32)
    searches = rng.normal(size=(4, 3, cfg.search_size, cfg.search_size)).astype(np.float32)
    for b in (ort, torch_b):
        b.set_template(template)
    for got, ref in zip(ort.infer_batch(searches, 0), torch_b.infer_batch(searches, 0)):
        np.testing.assert_allclose(got.score_map, ref.score_map, atol=1e-4)
        np.testing.assert_allclose(got.size_map, ref.size_map, atol=1e-4)
        np.testing.assert_allclose(got.offset_map, ref.offset_map, atol=1e-4)
