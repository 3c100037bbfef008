"""Box size update: per-frame bound and smoothing of the size, centre from the network, re-acquisition sizes.

The shipped model runs for real on generated frames; the pure function is checked on exact numbers.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from vanish_frames import RETURNS_AT, VISIBLE_UNTIL, vanish_frames

from dytrack_ros.config import ConfigError, TrackerConfig
from dytrack_ros.data.synth import load_photo_library
from dytrack_ros.runtime_options import RuntimeOptions
from dytrack_ros.tracker import Tracker, TrackStatus
from dytrack_ros.tracker.postprocess import update_size

SMALL = Path(__file__).resolve().parents[1] / "models" / "dytrack_small.safetensors"


def centre(box) -> tuple[float, float]:
    return box[0] + 0.5 * box[2], box[1] + 0.5 * box[3]


def test_over_estimating_predictions_grow_the_box_by_at_most_the_bound_per_frame():
    box = (100.0, 100.0, 40.0, 20.0)
    for t in range(30):
        cx, cy = 120.0 + 3 * t, 110.0 - t
        pred = (cx - box[2], cy - box[3], 2 * box[2], 2 * box[3])  # twice the current size, every frame
        new = update_size(pred, box, lr=1.0, max_ratio=1.05)
        assert new[2] == pytest.approx(box[2] * 1.05) and new[3] == pytest.approx(box[3] * 1.05)
        assert centre(new) == pytest.approx((cx, cy))  # the centre is the network's
        box = new
    assert box[2] == pytest.approx(40.0 * 1.05 ** 30)
    shrink = update_size((0.0, 0.0, 1.0, 100.0), (0.0, 0.0, 50.0, 50.0), lr=1.0, max_ratio=1.25)
    assert shrink[2:] == pytest.approx((40.0, 62.5))  # each axis bounded on its own, both ways
    assert update_size((5.0, 6.0, 70.0, 30.0), (0.0, 0.0, 50.0, 50.0), 1.0, 0.0) == pytest.approx((5, 6, 70, 30))


def test_smoothing_moves_the_size_by_lr_towards_the_prediction():
    new = update_size((0.0, 0.0, 100.0, 20.0), (10.0, 10.0, 50.0, 40.0), lr=0.25, max_ratio=0.0)
    assert new[2:] == pytest.approx((62.5, 35.0))
    assert centre(new) == pytest.approx((50.0, 10.0))
    # smoothing first, then the bound
    assert update_size((0.0, 0.0, 100.0, 20.0), (0.0, 0.0, 50.0, 40.0), 0.5, 1.1)[2:] == pytest.approx((55.0, 36.3636),
                                                                                                         rel=1e-4)


def test_size_config_validation():
    for bad, words in ((dict(max_scale_change=0.5), "max_scale_change"), (dict(max_scale_change=-1.0), "0 (no bound)"),
                       (dict(max_scale_change=math.inf), "max_scale_change"), (dict(max_scale_change=11.0), "[1, 10]"),
                       (dict(max_scale_change="1.1"), "max_scale_change"), (dict(size_lr=0.0), "size_lr"),
                       (dict(size_lr=1.5), "(0, 1]"), (dict(size_lr=math.nan), "size_lr"),
                       (dict(size_lr=True), "size_lr"), (dict(size_lr_by_score=1), "size_lr_by_score")):
        with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            TrackerConfig(**bad)
    ok = TrackerConfig.from_dict({"max_scale_change": 1.0, "size_lr": 1, "size_lr_by_score": True})
    assert ok.max_scale_change == 1.0 and TrackerConfig(max_scale_change=0).max_scale_change == 0


def _target_frames(n: int = 12, side: int = 64) -> list[np.ndarray]:
    """A cat face of ``side`` px moving right over smooth grey noise (RGB 640x360)."""
    rng = np.random.default_rng(3)
    noise = cv2.resize(rng.normal(0, 1, (45, 80)).astype(np.float32), (640, 360), interpolation=cv2.INTER_CUBIC)
    bg = np.repeat(np.clip(110 + 12 * noise, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    face = next(p for p in load_photo_library().targets if p.name == "cat_face").rgb
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    frames = []
    for t in range(n):
        f = bg.copy()
        x, y = 200 + 3 * t, 140
        f[y:y + side, x:x + side] = face
        frames.append(f)
    return frames


def test_tracker_bounds_the_growth_from_a_too_small_init_box():
    """Initialised on the centre half of a 64 px target, the network answers the whole target (growth); with
    a bound of 1.05 no frame grows width or height by more than 5 %, without one some frame grows by > 10 %."""
    frames = _target_frames()
    init = (200 + 16.0, 140 + 16.0, 32.0, 32.0)
    runs = {}
    for bound in (0.0, 1.05):
        tracker = Tracker.from_model(SMALL, RuntimeOptions(threads=1), config=TrackerConfig(
            max_scale_change=bound, size_lr=1.0, early_exit_size_lr=1.0))  # every exit's size: the bound alone
        tracker.initialize(frames[0], init)
        boxes = [init] + [tracker.track(f).box for f in frames[1:]]
        runs[bound] = boxes
    free, bounded = runs[0.0], runs[1.05]
    assert any(b[2] > 1.05 * a[2] * 1.05 and b[3] > 1.05 * a[3] * 1.05 for a, b in zip(free[:-1], free[1:]))
    for a, b in zip(bounded[:-1], bounded[1:]):
        assert b[2] <= a[2] * 1.05 * (1 + 1e-9) and b[3] <= a[3] * 1.05 * (1 + 1e-9)
        assert b[2] >= a[2] / 1.05 * (1 - 1e-9) and b[3] >= a[3] / 1.05 * (1 - 1e-9)
    assert bounded[-1][2] > 1.3 * init[2]  # still grows towards the target, at the bounded rate


def _assert_size_moved(old, r, lr: float) -> None:
    """A traced result's size moved by ``lr`` of the way from ``old`` to its answering exit's raw box; the centre
    is the raw box's."""
    raw = r.candidates[r.exit_index].box
    assert r.box[2] == pytest.approx(old[2] + lr * (raw[2] - old[2]), rel=1e-6)
    assert r.box[3] == pytest.approx(old[3] + lr * (raw[3] - old[3]), rel=1e-6)
    assert centre(r.box) == pytest.approx(centre(raw), abs=1e-6)


def test_confidence_weighted_lr_uses_the_frame_score():
    """size_lr_by_score: the size moves by size_lr * score of the way from the state to the network's box
    (the trace's answering candidate is the raw box); the centre is the network's."""
    frames = _target_frames(4)
    tracker = Tracker.from_model(SMALL, RuntimeOptions(threads=1),
                                 config=TrackerConfig(size_lr=0.5, size_lr_by_score=True, max_scale_change=0.0,
                                                      early_exit_size_lr=1.0))
    tracker.initialize(frames[0], (200.0, 140.0, 64.0, 64.0))
    for f in frames[1:]:
        old = tracker.state
        r = tracker.track(f, trace=True)
        assert 0.0 < r.score <= 1.0
        _assert_size_moved(old, r, 0.5 * r.score)


@pytest.mark.parametrize("early_lr", [0.0, 0.5])
def test_early_exits_change_the_size_by_early_exit_size_lr(early_lr):
    """Answers from the first exit (threshold 0, no agreement) move the box to the network's centre and change
    the size by early_exit_size_lr of the way; at full depth the size is the network's (size_lr 1, no bound)."""
    frames = _target_frames(5)
    init = (200.0 + 8, 140.0 + 8, 48.0, 48.0)  # smaller than the 64 px target: the network answers larger
    for thresholds in (0.0, 1.0):
        tracker = Tracker.from_model(SMALL, RuntimeOptions(threads=1), config=TrackerConfig(
            max_scale_change=0.0, exit_agreement=0.0, early_exit_size_lr=early_lr))
        tracker.set_exit_thresholds(thresholds)
        tracker.initialize(frames[0], init)
        for f in frames[1:]:
            old = tracker.state
            r = tracker.track(f, trace=True)
            assert r.exit_index == (0 if thresholds == 0.0 else 2)
            _assert_size_moved(old, r, early_lr if thresholds == 0.0 else 1.0)
        if thresholds == 1.0:
            assert tracker.state[2] > 1.1 * init[2]  # the full-depth answers did change the size


def test_early_exit_size_lr_is_validated():
    for bad in (-0.1, 1.5, math.nan, True, "0"):
        with pytest.raises(ConfigError, match="early_exit_size_lr"):
            TrackerConfig(early_exit_size_lr=bad)


@pytest.mark.slow
def test_reacquisition_sets_the_new_size_despite_strong_smoothing():
    """The target comes back 1.5x larger; with the size nearly frozen while tracking (lr 0.05, bound 1.01),
    re-acquisition still takes the re-detected size, not the held one."""
    frames, gt = vanish_frames()
    face = next(p for p in load_photo_library().targets if p.name == "cat_face").rgb
    big = cv2.resize(face, (60, 60), interpolation=cv2.INTER_AREA)
    bg = frames[VISIBLE_UNTIL].copy()  # a frame without the target
    x, y = 500, 240
    for i in range(RETURNS_AT, len(frames)):
        frames[i] = bg.copy()
        frames[i][y:y + 60, x:x + 60] = big
        gt[i] = (x, y, 60, 60)
    tracker = Tracker.from_model(SMALL, RuntimeOptions(threads=1),
                                 config=TrackerConfig(size_lr=0.05, max_scale_change=1.01))
    tracker.initialize(frames[0], gt[0])
    results = [tracker.track(f) for f in frames[1:]]
    back = [i for i in range(RETURNS_AT, len(frames)) if results[i - 1].status is TrackStatus.REDETECTED]
    assert back, "the returned target was not re-acquired"
    box = results[back[0] - 1].box
    assert math.sqrt(box[2] * box[3]) > 1.25 * 40  # the re-detected size, not the held 40 px one
    assert abs(centre(box)[0] - 530) < 15 and abs(centre(box)[1] - 270) < 15
