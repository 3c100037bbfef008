"""Metric tests against hand-computed cases, plus a cross-check against the got10k toolkit."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dytrack_ros.eval import metrics as M

REPO = Path(__file__).resolve().parents[1]


def test_iou_pixel_hand_cases():
    # identical boxes
    assert M.iou_pixel([[10, 10, 20, 20]], [[10, 10, 20, 20]])[0] == pytest.approx(1.0)
    # half overlap along x: inter 10x20=200, union 400+400-200=600
    assert M.iou_pixel([[0, 0, 20, 20]], [[10, 0, 20, 20]])[0] == pytest.approx(200 / 600)
    # touching but not overlapping (pixels 0..9 and 10..19) -> 0
    assert M.iou_pixel([[0, 0, 10, 10]], [[10, 0, 10, 10]])[0] == 0.0
    # 1-pixel boxes on the same pixel -> 1 (pixel-inclusive convention)
    assert M.iou_pixel([[5, 5, 1, 1]], [[5, 5, 1, 1]])[0] == pytest.approx(1.0)
    # contained: 10x10 inside 20x20 -> 100/400
    assert M.iou_pixel([[5, 5, 10, 10]], [[0, 0, 20, 20]])[0] == pytest.approx(0.25)


def test_centre_errors_hand_cases():
    # centre of (0,0,10,10) is (4.5,4.5); of (3,4,10,10) is (7.5,8.5) -> distance 5
    assert M.centre_error([[3, 4, 10, 10]], [[0, 0, 10, 10]])[0] == pytest.approx(5.0)
    # normalised: divide both centres by GT (w,h)=(10,20): dx = 3/10, dy = 4/20
    err = M.normalized_centre_error([[3, 4, 10, 20]], [[0, 0, 10, 20]])[0]
    assert err == pytest.approx(np.hypot(0.3, 0.2))


def test_iou_continuous_with_bound():
    # pred sticks out of a 100x100 image: clipped to (90,0,10,10) -> identical to gt
    iou = M.iou_continuous([[90, 0, 30, 10]], [[90, 0, 10, 10]], bound=(100, 100))
    assert iou[0] == pytest.approx(1.0)
    assert M.iou_continuous([[90, 0, 30, 10]], [[90, 0, 10, 10]])[0] == pytest.approx(1 / 3)


def test_sequence_errors_first_frame_forced_and_invalid_frames_fail():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 0], [0, 0, 10, 10]], float)
    pred = np.array([[50, 50, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 0, 5]], float)
    e = M.sequence_errors(pred, gt)
    # frame 1 forced to GT; frame 3 invalid (empty GT); frame 4 zero-width -> previous pred (0,0,10,10)
    np.testing.assert_allclose(e.overlaps, [1.0, 1.0, -1.0, 1.0])
    assert np.isinf(e.centre_errors[2]) and e.centre_errors[3] == 0.0
    curve = M.success_curve(e.overlaps)
    # 3 of 4 frames succeed at every threshold < 1, none at t = 1 (strict >)
    np.testing.assert_allclose(curve[:-1], 0.75)
    assert curve[-1] == 0.0


def test_visible_mask_marks_frames_invalid():
    gt = np.tile([[0, 0, 10, 10]], (4, 1)).astype(float)
    e = M.sequence_errors(gt, gt, visible=[True, True, False, True])
    np.testing.assert_allclose(e.overlaps, [1, 1, -1, 1])


def test_ope_scores_hand_computed():
    gt = np.tile([[0.0, 0.0, 20.0, 20.0]], (5, 1))
    # sequence A: perfect; sequence B: frames 2..5 shifted by 10 px in x (IoU 1/3, error 10)
    pred_b = gt.copy()
    pred_b[1:, 0] += 10
    r = M.ope_scores([gt, pred_b], [gt, gt])
    # A: success 1 for t<1, 0 at t=1 -> AUC_A = 20/21
    # B: frame 1 =1.0, others 1/3 -> rates: t<1/3: 1.0 ; 1/3<=t<1: 0.2; t=1: 0
    ts = M.OVERLAP_THRESHOLDS
    b = np.where(ts < 1 / 3, 1.0, 0.2)
    b[-1] = 0.0
    expected_auc = ((20 / 21) + b.mean()) / 2 * 100
    assert r.auc == pytest.approx(expected_auc)
    # precision@20: all errors <= 20 -> 100; normalised precision@0.20: 10/20 = 0.5 > 0.2 -> B: 1/5
    assert r.precision == pytest.approx(100.0)
    assert r.norm_precision == pytest.approx((1.0 + 0.2) / 2 * 100)
    assert r.num_sequences == 2 and r.num_frames == 10


def test_length_mismatch_and_nan_rejected():
    gt = np.zeros((3, 4)) + 5
    with pytest.raises(M.MetricInputError, match="2 predicted boxes for 3"):
        M.sequence_errors(gt[:2], gt)
    bad = gt.copy()
    bad[1, 0] = np.nan
    with pytest.raises(M.MetricInputError, match="NaN"):
        M.sequence_errors(bad, gt)
    with pytest.raises(M.MetricInputError, match="shape"):
        M.iou_pixel(np.zeros((3, 3)), np.zeros((3, 3)))


def test_got10k_drops_first_frame_and_pools_frames():
    gt = np.tile([[10.0, 10.0, 20.0, 20.0]], (4, 1))
    pred = gt.copy()
    pred[0] = [500, 500, 5, 5]  # dropped (frame 1)
    pred[2, 0] += 10  # IoU 1/3
    ious_a = M.got10k_sequence_ious(pred, gt, bound=(100, 100), cover=[8, 8, 8, 0])  # last frame: cover 0 -> dropped
    np.testing.assert_allclose(ious_a, [1.0, 1 / 3], atol=1e-9)
    ious_b = M.got10k_sequence_ious(gt[:2], gt[:2], bound=(100, 100))
    r = M.got10k_from_ious([ious_a, ious_b])
    # pooled frame-weighted: (1 + 1/3 + 1)/3, in percent like every other score
    assert r.ao == pytest.approx((1 + 1 / 3 + 1) / 3 * 100)
    assert r.sr50 == pytest.approx(200 / 3) and r.sr75 == pytest.approx(200 / 3)
    assert r.per_sequence_ao == pytest.approx([(1 + 1 / 3) / 2 * 100, 100.0])
    assert r.num_frames == 3 and len(r.success_curve) == 101


def test_speed_and_depth():
    sd = M.speed_and_depth([np.array([1.0, 0.1, 0.1]), np.array([2.0, 0.2])], [np.array([0, 2, 4]), np.array([0, 4])])
    assert sd.fps == pytest.approx(3 / 0.4)
    assert sd.ms_per_frame == pytest.approx(400 / 3)
    assert sd.mean_layers == pytest.approx(10 / 3)
    assert sd.exit_histogram == {2: 1, 4: 2}


def test_speed_unmeasured_is_none_not_zero():
    sd = M.speed_and_depth([])
    assert sd.fps is None and sd.ms_per_frame is None and sd.mean_layers is None
    assert sd.to_dict()["fps"] is None
    with pytest.raises(M.MetricInputError, match="finite and >= 0"):
        M.speed_and_depth([np.array([0.1, -0.2])])
    with pytest.raises(M.MetricInputError, match="exit layers"):
        M.speed_and_depth([np.array([0.1, 0.2])], [np.array([0, -1])])


def test_iou_clipped_to_one_on_float_boxes():
    box = np.array([[318.48, 107.91, 15.74, 12.31]])
    # unclipped, the pixel-inclusive "- 1 ... + 1" rounds and identical boxes overlap by more than 1
    sz = (box[:, :2] + box[:, 2:] - 1.0) - box[:, :2] + 1.0
    inter = sz.prod()
    assert inter / (2 * box[0, 2] * box[0, 3] - inter) > 1.0
    assert M.iou_pixel(box, box)[0] == 1.0
    gt = np.repeat(box, 5, axis=0)
    r = M.ope_scores([gt], [gt])
    # strict IoU > 1.0 never succeeds: a perfect tracker scores 20/21 of the thresholds
    assert r.success_curve[-1] == 0.0
    assert r.auc == pytest.approx(20 / 21 * 100)


def test_negative_size_and_nonfinite_predictions_refused():
    gt = np.tile([[10.0, 10.0, 20.0, 20.0]], (3, 1))
    pred = gt.copy()
    pred[2] = [30, 10, -20, 20]  # its pixel-inclusive centre equals the GT's
    with pytest.raises(M.MetricInputError, match=r"negative width or height \(frame 3"):
        M.sequence_errors(pred, gt)
    with pytest.raises(M.MetricInputError, match="negative width or height"):
        M.got10k_sequence_ious(pred, gt, bound=(100, 100))
    pred[2] = [np.inf, 10, 20, 20]
    with pytest.raises(M.MetricInputError, match=r"infinite values \(frame 3"):
        M.sequence_errors(pred, gt)


def _ensure_got10k():
    """Import got10k (installing got10k==0.1.3 + six with the repo's constraints if needed) or skip."""
    try:
        return importlib.import_module("got10k.utils.metrics"), importlib.import_module("got10k.experiments.otb")
    except ImportError:
        pass
    cmd = [sys.executable, "-m", "pip", "install", "-q", "got10k==0.1.3", "six", "-c", str(REPO / "constraints.txt")]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not install got10k toolkit: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"could not install got10k toolkit: {proc.stderr.strip()[-300:]}")
    importlib.invalidate_caches()
    try:
        return importlib.import_module("got10k.utils.metrics"), importlib.import_module("got10k.experiments.otb")
    except ImportError as exc:
        pytest.skip(f"got10k installed but not importable: {exc}")


@pytest.mark.slow
def test_cross_check_against_got10k_toolkit():
    """Our IoU / centre error / curves agree with got10k where the definitions coincide.

    Documented relations: pixel-inclusive IoU == got10k's continuous rect_iou
    (the +1 of the inclusive corners cancels), up to got10k's eps in the union;
    centre error is identical (both use x + (w-1)/2). got10k's OTB curves use
    the same 21 strict IoU thresholds and 51 centre-error thresholds, so with
    identical per-frame inputs the curves match exactly.
    """
    gmetrics, gotb = _ensure_got10k()
    rng = np.random.default_rng(0)
    n = 300
    gt = np.column_stack([rng.integers(0, 400, n), rng.integers(0, 300, n),
                          rng.integers(5, 120, n), rng.integers(5, 120, n)]).astype(float)
    pred = gt + np.column_stack([rng.normal(0, 15, (n, 2)), rng.normal(0, 10, (n, 2))])
    pred[:, 2:] = np.clip(pred[:, 2:], 1, None)
    pred_int = np.round(pred)

    for p in (pred, pred_int):
        np.testing.assert_allclose(M.iou_pixel(p, gt), gmetrics.rect_iou(p.copy(), gt.copy()), atol=1e-9)
        np.testing.assert_allclose(M.iou_continuous(p, gt), gmetrics.rect_iou(p.copy(), gt.copy()), atol=1e-12)
        np.testing.assert_allclose(M.centre_error(p, gt), gmetrics.center_error(p.copy(), gt.copy()), atol=1e-9)
        bound = (450, 350)
        np.testing.assert_allclose(
            M.iou_continuous(p, gt, bound=bound), gmetrics.rect_iou(p.copy(), gt.copy(), bound=bound), atol=1e-12
        )

    # curves: feed the same per-frame IoUs / errors to got10k's OTB curve code
    exp = gotb.ExperimentOTB.__new__(gotb.ExperimentOTB)
    exp.nbins_iou, exp.nbins_ce = 21, 51
    ious = M.iou_pixel(pred, gt)
    errs = M.centre_error(pred, gt)
    succ_g, prec_g = exp._calc_curves(ious, errs)
    np.testing.assert_allclose(M.success_curve(ious), np.asarray(succ_g).reshape(-1), atol=1e-12)
    np.testing.assert_allclose(M.precision_curve(errs), np.asarray(prec_g).reshape(-1), atol=1e-12)
