"""Early-exit agreement: an early exit answers only when its box stays on the previous frame's box.

Real (small, random) models through the product's Tracker and calibration; no mocks.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from train_toy import write_toy_got10k

from dytrack_ros.config import ConfigError, ModelConfig, TrackerConfig
from dytrack_ros.data import load_dataset
from dytrack_ros.eval.metrics import iou_continuous
from dytrack_ros.exit_policy import ExitPolicy, ExitPolicyError
from dytrack_ros.model import create_model
from dytrack_ros.model_io.model_file import load_model_file
from dytrack_ros.tracker import Tracker
from dytrack_ros.tracker.postprocess import box_iou
from dytrack_ros.train.calibrate import (
    CalibrationError,
    apply_calibration,
    as_tracker,
    calibrate,
    sweep,
    trace_sequence,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return create_model("dytrack_tiny").eval()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = write_toy_got10k(tmp_path_factory.mktemp("agree"), num_sequences=2, frames=10, seed=7)
    return load_dataset("got10k", root, split="train")


def _run(model, frames, init, agreement, thresholds=0.0, trace=False):
    tracker = as_tracker(model)
    tracker.set_config(TrackerConfig(exit_agreement=agreement, recovery=False))
    tracker.set_exit_thresholds(thresholds)
    tracker.initialize(frames[0], init)
    return tracker, [tracker.track(f, trace=trace) for f in frames[1:]]


def test_box_iou_matches_the_metric():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(0, 50, (200, 2)), rng.uniform(1, 40, (200, 2))]
    b = np.c_[rng.uniform(0, 50, (200, 2)), rng.uniform(1, 40, (200, 2))]
    ours = [box_iou(x, y) for x, y in zip(a, b)]
    assert np.allclose(ours, iou_continuous(a, b), atol=1e-9)
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0 and box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0


def test_policy_veto_mask_is_the_per_frame_rule():
    q = np.array([[0.9, 0.9, 0.0], [0.9, 0.9, 0.0], [0.9, 0.1, 0.0]])
    acc = np.array([[True, True, False], [False, True, False], [False, True, True]])
    policy = ExitPolicy.for_model((1, 2, 4), 0.5)
    assert policy.first_exits(q, acc).tolist() == [0, 1, 2]  # the last exit answers even when 'vetoed'
    assert [policy.first_exit(r, a) for r, a in zip(q, acc)] == [0, 1, 2]
    with pytest.raises(ExitPolicyError, match="shape"):
        policy.first_exits(q, acc[:, :2])


def test_agreement_vetoes_early_exits_and_trace_follows_the_same_trajectory(model, square_sequence):
    frames, gts = square_sequence
    frames = frames[:8]
    # threshold 0: every early exit passes its decisioner; agreement 0 (off) -> always the first exit
    _, off = _run(model, frames, gts[0], 0.0)
    assert all(r.exit_index == 0 for r in off)
    # agreement 1.0 can never be met by a moving box -> always the last exit
    _, strict = _run(model, frames, gts[0], 1.0)
    assert all(r.exit_index == 2 for r in strict)
    # a middle setting: the answering exit is the first whose box overlaps the previous box enough
    tracker, traced = _run(model, frames, gts[0], 0.5, trace=True)
    prev = tuple(gts[0])
    for r in traced:
        agree = [box_iou(c.box, prev) >= 0.5 for c in r.candidates]
        assert r.exit_index == next((k for k in range(2) if agree[k]), 2)
        prev = r.box
    _, plain = _run(model, frames, gts[0], 0.5)
    assert [r.exit_index for r in plain] == [r.exit_index for r in traced]
    assert np.allclose([r.box for r in plain], [r.box for r in traced])


def test_model_file_value_applies_unless_the_tracker_overrides(model, toy, tmp_path):
    seqs = toy
    res = calibrate(model, seqs, target_depth=4.0, agreement=1.0, progress=False)
    # agreement 1.0 vetoes every early exit: the full depth whatever the threshold
    assert res.exit_agreement == 1.0 and res.predicted_depth == 4.0 and res.measured_depth == 4.0
    path = apply_calibration(model, res, tmp_path / "cal.safetensors")
    loaded, _ = load_model_file(path)
    assert loaded.cfg.exit_agreement == 1.0
    tracker = Tracker.from_model(path)
    assert tracker.exit_agreement == 1.0  # TrackerConfig default -1: the model's value
    tracker.set_config(TrackerConfig(exit_agreement=0.0))
    assert tracker.exit_agreement == 0.0


def test_sweep_with_agreement_uses_recorded_overlaps(model, toy):
    traces = [trace_sequence(model, s) for s in toy]
    assert all(t.agreement.shape == t.pred_iou.shape and ((0 <= t.agreement) & (t.agreement <= 1)).all()
               for t in traces)
    rows_off = sweep(traces, (1, 2, 4), [1.0, 1.0, 1.0], taus=[0.0])
    rows_on = sweep(traces, (1, 2, 4), [1.0, 1.0, 1.0], taus=[0.0], agreement=0.7)
    acc = np.concatenate([t.agreement for t in traces]) >= 0.7
    expected = np.where(acc[:, 0], 1, np.where(acc[:, 1], 2, 4)).mean()
    assert rows_off[0]["depth"] == 1.0 and rows_on[0]["depth"] == pytest.approx(expected)


@pytest.mark.parametrize("bad", [1.5, -0.5, float("nan"), True])
def test_bad_agreement_values_are_refused(bad):
    with pytest.raises(ConfigError, match="exit_agreement"):
        TrackerConfig(exit_agreement=bad)
    with pytest.raises(ConfigError, match="exit_agreement"):
        ModelConfig(exit_agreement=bad if bad != -0.5 else -1.0)


def test_calibration_can_choose_the_agreement_for_a_depth_target(model, toy):
    tracker = as_tracker(model)
    before = tracker.config
    res = calibrate(tracker, toy, target_depth=2.5, choose_agreement=True, progress=False)
    assert tracker.config == before  # the caller's tracker is left as it was
    assert res.thresholds[:2] == [0.0, 0.0] and 0.0 <= res.exit_agreement <= 1.0
    depths = [r["depth"] for r in res.agreement_table]
    assert depths[0] == 1.0 and all(a <= b + 1e-12 for a, b in zip(depths, depths[1:]))  # stricter = deeper
    assert res.predicted_depth <= 2.5
    # the chosen value is the largest on the grid that meets the target
    nxt = [r for r in res.agreement_table if r["agreement"] > res.exit_agreement]
    assert not nxt or nxt[0]["depth"] > 2.5


@pytest.mark.parametrize("choose_agreement", [False, True])
def test_an_accuracy_budget_picks_the_least_depth_within_it(model, toy, choose_agreement):
    tracker = as_tracker(model)
    agree = None if choose_agreement else 0.0  # thresholds alone (the module's model may carry an agreement)
    res = calibrate(tracker, toy, max_iou_drop=0.02, choose_agreement=choose_agreement, agreement=agree,
                    progress=False)
    rows = res.agreement_table if choose_agreement else res.table
    full = sweep([trace_sequence(model, s) for s in toy], (1, 2, 4), [1.0] * 3, taus=[1.0])[0]["mean_iou"]
    within = [r for r in rows if r["mean_iou"] >= full - 0.02 - 1e-9]
    assert res.max_iou_drop == 0.02 and res.target_depth is None
    assert res.predicted_mean_iou >= full - 0.02 - 1e-9
    assert res.predicted_depth == pytest.approx(min(r["depth"] for r in within))
    # a looser budget never costs depth; a budget of 1 allows the first exit alone
    assert calibrate(tracker, toy, max_iou_drop=1.0, choose_agreement=choose_agreement, agreement=agree,
                     progress=False).predicted_depth == 1.0
    with pytest.raises(CalibrationError, match="exactly one"):
        calibrate(tracker, toy, max_iou_drop=0.02, target_depth=2.0, progress=False)
    with pytest.raises(CalibrationError, match="max_iou_drop"):
        calibrate(tracker, toy, max_iou_drop=-0.1, progress=False)


def test_a_depth_budget_owns_the_exit_decision(model, square_sequence):
    """With a target depth the budget controller chooses the threshold and its replay knows nothing of the
    agreement veto, so the agreement is not applied (else the controller's depth estimate would be wrong)."""
    from dytrack_ros.tracker.budget import BudgetConfig

    frames, gts = square_sequence
    tracker = as_tracker(model)
    tracker.set_config(TrackerConfig(exit_agreement=1.0, recovery=False))
    tracker.set_budget(BudgetConfig(target_depth=1.0))
    tracker.initialize(frames[0], gts[0])
    layers = [tracker.track(f).exit_layer for f in frames[1:8]]
    assert min(layers) == 1  # agreement 1.0 alone would force the last exit (layer 4) on every frame
