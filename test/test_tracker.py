"""Tracker runtime on real (small, random) models: API, bad input, status, timings."""
from __future__ import annotations

import numpy as np
import pytest

from dytrack_ros.backends import BackendError, load_backend
from dytrack_ros.config import ConfigError, TrackerConfig
from dytrack_ros.model_io.model_file import ModelFileError
from dytrack_ros.tracker import Tracker, TrackerInputError, TrackerStateError, TrackStatus


@pytest.fixture
def tracker(tiny_dytrack_file):
    return Tracker.from_model(tiny_dytrack_file)


def test_track_returns_full_result(tracker, square_sequence):
    frames, gts = square_sequence
    tracker.initialize(frames[0], gts[0])
    assert tracker.initialized
    for i, f in enumerate(frames[1:4], start=1):
        r = tracker.track(f)
        assert r.frame_index == i
        assert len(r.box) == 4 and all(np.isfinite(r.box))
        x, y, w, h = r.box
        assert 0 <= x <= 320 - 10 and 0 <= y <= 240 - 10 and w >= 10 and h >= 10  # clipped into the image
        assert 0.0 <= r.score <= 1.0
        assert isinstance(r.status, TrackStatus)
        assert r.exit_layer in tracker.exit_layers and r.num_layers == 4
        assert r.pred_iou is not None and 0.0 <= r.pred_iou <= 1.0
        assert set(r.timings) == {"preprocess", "inference", "postprocess", "total"}
        assert r.timings["total"] >= r.timings["inference"] > 0


@pytest.mark.parametrize("frame, match", [
    (None, "None"),
    ([[1, 2, 3]], "numpy array"),
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10), np.uint8), "convert greyscale"),
    (np.zeros((10, 10, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
])
def test_bad_frames_are_refused_with_clear_errors(tracker, square_sequence, frame, match):
    frames, gts = square_sequence
    with pytest.raises(TrackerInputError, match=match):
        tracker.initialize(frame, gts[0])
    tracker.initialize(frames[0], gts[0])
    state = tracker.state
    with pytest.raises(TrackerInputError, match=match):
        tracker.track(frame)
    assert tracker.state == state  # nothing lost
    tracker.track(frames[1])  # still works


@pytest.mark.parametrize("box, match", [
    ((10, 10, 0, 20), "positive"),
    ((10, 10, -5, 20), "positive"),
    ((10, 10, float("nan"), 20), "non-finite"),
    ((float("inf"), 10, 5, 20), "non-finite"),
    ((400, 10, 20, 20), "outside"),
    ((-50, -50, 20, 20), "outside"),
    ((1, 2, 3), "4 numbers"),
    ("abcd", "4 numbers"),
])
def test_bad_init_boxes_are_refused(tracker, square_sequence, box, match):
    frames, gts = square_sequence
    tracker.initialize(frames[0], gts[0])
    state = tracker.state
    with pytest.raises(TrackerInputError, match=match):
        tracker.initialize(frames[1], box)
    assert tracker.state == state


def test_partly_outside_init_box_is_accepted(tracker, square_sequence):
    frames, _ = square_sequence
    tracker.initialize(frames[0], (-10, -10, 40, 40))
    tracker.track(frames[1])


def test_track_before_initialize_and_after_reset(tracker, square_sequence):
    frames, gts = square_sequence
    with pytest.raises(TrackerStateError, match="before initialize"):
        tracker.track(frames[0])
    tracker.initialize(frames[0], gts[0])
    tracker.track(frames[1])
    tracker.reset()
    assert not tracker.initialized
    with pytest.raises(TrackerStateError):
        tracker.track(frames[2])


@pytest.mark.slow
def test_status_thresholds_drive_uncertain_then_lost(tiny_dytrack_file, square_sequence):
    frames, gts = square_sequence
    # every score is < 1.0: with both thresholds at 1.0 each frame is a low-score frame
    cfg = TrackerConfig(uncertain_threshold=1.0, lost_threshold=1.0, lost_after_frames=3, recovery=False)
    t = Tracker.from_model(tiny_dytrack_file, config=cfg)
    t.initialize(frames[0], gts[0])
    statuses = [t.track(f).status for f in frames[1:6]]
    assert statuses == [TrackStatus.UNCERTAIN, TrackStatus.UNCERTAIN, TrackStatus.LOST, TrackStatus.LOST,
                        TrackStatus.LOST]
    # thresholds at 0 -> always tracking; changing the config at runtime takes effect immediately
    t.set_config(TrackerConfig(uncertain_threshold=0.0, lost_threshold=0.0, recovery=False))
    assert t.track(frames[6]).status is TrackStatus.TRACKING


def test_tracker_config_validation():
    with pytest.raises(ConfigError):
        TrackerConfig(uncertain_threshold=0.2, lost_threshold=0.5)
    with pytest.raises(ConfigError):
        TrackerConfig(lost_after_frames=0)
    with pytest.raises(ConfigError, match="unknown key"):
        TrackerConfig.from_dict({"uncertain_treshold": 0.3})


def test_exit_thresholds_runtime_settable_and_validated(tracker, square_sequence):
    frames, gts = square_sequence
    tracker.initialize(frames[0], gts[0])
    tracker.set_exit_thresholds([0.0, 0.0, 0.0])
    assert tracker.track(frames[1]).exit_layer == 1  # first exit always passes a 0 threshold
    tracker.set_exit_thresholds([1.0, 1.0, 1.0])
    # a predicted IoU (sigmoid) below 1.0 never passes 1.0: the last exit answers
    assert tracker.track(frames[2]).exit_layer == 4
    with pytest.raises(ValueError, match="3 exits"):
        tracker.set_exit_thresholds([0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tracker.set_exit_thresholds([0.5, 1.5, 0.1])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tracker.set_exit_thresholds([float("nan")])
    assert tracker.exit_thresholds == (1.0, 1.0, 1.0)  # unchanged after the refusals
    tracker.set_exit_thresholds(0.6)  # one value: every early exit, the last always answers
    assert tracker.exit_thresholds == (0.6, 0.6, 0.0)


def test_trace_mode_reports_every_exit_and_follows_the_same_trajectory(tiny_dytrack_file, square_sequence):
    """track(trace=True) evaluates all exits but moves exactly like a normal run (calibration relies on it)."""
    frames, gts = square_sequence
    normal, traced = Tracker.from_model(tiny_dytrack_file), Tracker.from_model(tiny_dytrack_file)
    for t in (normal, traced):
        t.set_exit_thresholds([0.5, 0.5, 0.0])  # random decisioners sit near 0.5: the answering exit varies
        t.initialize(frames[0], gts[0])
    for f in frames[1:8]:
        a, b = normal.track(f), traced.track(f, trace=True)
        assert a.box == pytest.approx(b.box, abs=1e-4) and a.exit_layer == b.exit_layer
        assert [c.exit_layer for c in b.candidates] == [1, 2, 4] and a.candidates == ()
        assert b.candidates[b.exit_index].pred_iou == pytest.approx(b.pred_iou)
        assert b.exit_index == traced.exit_policy.first_exit([c.pred_iou for c in b.candidates])


def test_plain_model_reports_last_layer_and_no_pred_iou(tiny_plain_file, square_sequence):
    frames, gts = square_sequence
    t = Tracker.from_model(tiny_plain_file)
    assert t.exit_layers == ()
    t.initialize(frames[0], gts[0])
    r = t.track(frames[1])
    assert r.exit_layer == 4 and r.pred_iou is None


def test_loader_errors(tmp_path, tiny_dytrack_file):
    with pytest.raises(BackendError, match="not found"):
        load_backend(tmp_path / "missing.safetensors")
    with pytest.raises(BackendError, match="suffix"):
        load_backend(tmp_path / "model.xyz")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="not a valid"):
        load_backend(bad)
    with pytest.raises(BackendError, match="precision"):
        load_backend(tiny_dytrack_file, precision="int4")
    with pytest.raises(BackendError, match="unknown backend"):
        load_backend(tiny_dytrack_file, backend="nope")
