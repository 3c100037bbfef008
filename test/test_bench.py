"""`dytrack bench` runs a real model end to end and reports every exit (tiny model, few iterations)."""
from __future__ import annotations

import json

import pytest

from dytrack_ros.cli import main as cli_main


# ONNX export: seconds
@pytest.mark.parametrize("backend", ["torch", pytest.param("onnxruntime", marks=pytest.mark.slow)])
def test_bench_reports_every_exit_and_writes_json(backend, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--arch", "dytrack_tiny", "--backend", backend, "--iters", "2", "--warmup", "1",
            "--threads", "1", "--frame-size", "320x240", "--json", str(out)]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert "inference to exit 2 (layer 4/4)" in text and "track() step" in text
    data = json.loads(out.read_text())
    assert data["backend"] == backend and data["frame_size"] == [320, 240]
    rows = {r["name"]: r for r in data["rows"]}
    exits = [rows[f"inference to exit {k} (layer {layer}/4)"] for k, layer in enumerate((1, 2, 4))]
    assert exits[-1]["pct_of_full"] == pytest.approx(100.0)
    assert all(r["n"] == 2 and 0 < r["median"] <= r["p90"] * 1.0001 for r in exits)
    assert rows["preprocess search (crop+resize+normalise)"]["n"] >= 2
    assert len(data["track_exit_layers"]) == 2


def test_bench_refuses_running_an_onnx_file_with_torch(tmp_path, capsys):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    assert cli_main(["bench", "--model", str(onnx_file), "--backend", "torch"]) == 1
    assert "only be run with --backend onnxruntime" in capsys.readouterr().err
