"""Exit-threshold calibration: exit rule, sweep, target depth/latency, storage in the model file, CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from train_toy import write_toy_got10k

from dytrack_ros.data import load_dataset
from dytrack_ros.exit_policy import ExitPolicy
from dytrack_ros.model import create_model
from dytrack_ros.model_io.model_file import load_model_file, read_metadata
from dytrack_ros.train.calibrate import CalibrationError, apply_calibration, calibrate, stage_latency_ms, trace_sequence

pytestmark = pytest.mark.train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = write_toy_got10k(tmp_path_factory.mktemp("cal"), num_sequences=2, frames=8, seed=5)
    return root, load_dataset("got10k", root, split="train")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return create_model("dytrack_tiny").eval()


def test_exit_rule_on_recorded_frames_first_passing_exit_and_last_always():
    q = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.1, 0.1, 0.1]])
    layers = (1, 2, 4)
    assert ExitPolicy.for_model(layers, [0.5, 0.5, 0.0]).first_exits(q).tolist() == [0, 1, 2]
    assert ExitPolicy.for_model(layers, [1.0, 1.0, 0.0]).first_exits(q).tolist() == [2, 2, 2]
    assert ExitPolicy.for_model(layers, [0.0, 0.0, 0.0]).first_exits(q).tolist() == [0, 0, 0]
    # the vectorised rule is the per-frame rule the backends apply
    policy = ExitPolicy.for_model(layers, [0.5, 0.5, 0.0])
    assert [policy.first_exit(row) for row in q] == policy.first_exits(q).tolist()
    assert ExitPolicy.for_model(layers, (t for t in (0.5, 0.5, 0.0))) == policy  # a generator is read once


def test_trace_runs_through_losses_with_recovery_configured(model, toy):
    """A tracker configured with lost-target recovery still yields every exit on every frame while tracing
    (recovery is off for the trace and the tracker's configuration comes back afterwards)."""
    from dytrack_ros.config import TrackerConfig
    from dytrack_ros.tracker import Tracker
    from dytrack_ros.train.calibrate import as_tracker

    _, seqs = toy
    always_lost = TrackerConfig(uncertain_threshold=1.0, lost_threshold=1.0, lost_after_frames=1, recovery=True)
    tracker = Tracker(as_tracker(model).backend, always_lost)
    trace = trace_sequence(tracker, seqs[0], [0.5, 0.5, 0.0])
    assert trace.pred_iou.shape == (7, 3) and np.isfinite(trace.pred_iou).all()
    assert tracker.config == always_lost


@pytest.mark.slow
def test_trace_follows_the_thresholds(model, toy):
    _, seqs = toy
    full = trace_sequence(model, seqs[0], [1.0, 1.0, 0.0])
    fast = trace_sequence(model, seqs[0], [0.0, 0.0, 0.0])
    assert (full.exit_index == 2).all() and (fast.exit_index == 0).all()
    assert full.pred_iou.shape == (7, 3) and full.boxes.shape == (8, 4)
    assert np.isfinite(full.true_iou).all() and ((full.true_iou >= 0) & (full.true_iou <= 1)).all()
    assert len(stage_latency_ms(model, repeats=2)) == 3


def test_trace_is_the_product_tracker_trajectory(model, toy):
    """Calibration drives the real Tracker: its boxes equal a normal Tracker run at the same thresholds."""
    from dytrack_ros.image_io import read_image
    from dytrack_ros.tracker import Tracker
    from dytrack_ros.train.calibrate import as_tracker

    _, seqs = toy
    seq = seqs[1]
    trace = trace_sequence(model, seq, [0.5, 0.5, 0.0])
    tracker = as_tracker(model)
    assert isinstance(tracker, Tracker)
    tracker.set_exit_thresholds([0.5, 0.5, 0.0])
    tracker.initialize(read_image(seq.frames[0], "rgb"), seq.init_box)
    boxes = [tracker.track(read_image(f, "rgb")).box for f in seq.frames[1:]]
    np.testing.assert_allclose(trace.boxes[1:], np.asarray(boxes), atol=1e-4)


@pytest.mark.slow
def test_calibrate_meets_depth_target_and_is_stored(model, toy, tmp_path):
    _, seqs = toy
    res = calibrate(model, seqs, target_depth=2.0, progress=False)
    assert res.predicted_depth <= 2.0 and res.thresholds[-1] == 0.0 and len(res.thresholds) == 3
    depths = [r["depth"] for r in res.table]
    assert all(b >= a - 1e-12 for a, b in zip(depths, depths[1:]))  # higher tau -> deeper
    assert res.measured_depth is not None and 1.0 <= res.measured_depth <= 4.0
    path = apply_calibration(model, res, tmp_path / "cal.safetensors", info={"training": {"x": 1}})
    cfg, info = read_metadata(path)
    assert list(cfg.exit_thresholds) == pytest.approx(res.thresholds)
    assert info["training"] == {"x": 1} and info["calibration"]["target_depth"] == 2.0
    loaded, _ = load_model_file(path)
    assert loaded.cfg.exit_thresholds == pytest.approx(res.thresholds)
    lat = calibrate(model, seqs, target_latency_ms=1e6, verify=False, progress=False)
    assert lat.thresholds[0] == 1.0  # an unlimited budget keeps full depth


@pytest.mark.slow
def test_calibration_errors(model, toy):
    _, seqs = toy
    with pytest.raises(CalibrationError, match="unreachable"):
        calibrate(model, seqs, target_depth=0.5, progress=False)
    with pytest.raises(CalibrationError, match="exactly one"):
        calibrate(model, seqs, target_depth=2.0, target_latency_ms=3.0, progress=False)
    with pytest.raises(CalibrationError, match="exits"):
        calibrate(create_model("ostrack_tiny"), seqs, target_depth=2.0, progress=False)


@pytest.mark.slow
def test_calibrate_cli(model, toy, tmp_path):
    from dytrack_ros.model_io.model_file import save_model_file

    root, _ = toy
    src = save_model_file(model, tmp_path / "m.safetensors")
    out = tmp_path / "m_cal.safetensors"
    p = subprocess.run([sys.executable, "-m", "dytrack_ros.cli", "calibrate", str(src),
                        "--data", f"got10k:{root}:train", "--target-depth", "3", "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr
    _, info = read_metadata(out)
    assert info["calibration"]["predicted_depth"] <= 3.0
    bad = subprocess.run([sys.executable, "-m", "dytrack_ros.cli", "calibrate", str(src), "--data", "nope",
                          "--target-depth", "3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
