"""Training losses against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dytrack_ros.train.losses import (
    box_iou_giou,
    cxcywh_to_xyxy,
    decision_loss,
    focal_loss,
    gaussian_heatmap,
    gaussian_radius,
    giou_loss,
    l1_loss,
    self_distillation_loss,
    target_weights,
    xywh_to_xyxy,
)

pytestmark = pytest.mark.train


def test_giou_hand_cases():
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    gt = torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
    iou, giou = box_iou_giou(pred, gt)
    # identical; overlap 1 of union 7 with hull 9; disjoint with hull 3 and union 2
    assert iou.tolist() == pytest.approx([1.0, 1 / 7, 0.0], abs=1e-6)
    assert giou.tolist() == pytest.approx([1.0, 1 / 7 - 2 / 9, -1 / 3], abs=1e-6)
    loss, _ = giou_loss(pred, gt)
    assert float(loss) == pytest.approx(((1 - 1) + (1 - (1 / 7 - 2 / 9)) + (1 + 1 / 3)) / 3, abs=1e-6)


def test_box_conversions_and_l1():
    assert cxcywh_to_xyxy(torch.tensor([[0.5, 0.5, 0.2, 0.4]]))[0].tolist() == pytest.approx([0.4, 0.3, 0.6, 0.7])
    assert xywh_to_xyxy(torch.tensor([[0.1, 0.2, 0.3, 0.4]]))[0].tolist() == pytest.approx([0.1, 0.2, 0.4, 0.6])
    assert float(l1_loss(torch.zeros(2, 4), torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 3.0]]))) == pytest.approx(0.5)


def test_focal_loss_hand_computed():
    heat = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
    pred = torch.tensor([[[[0.8, 0.3], [0.1, 0.2]]]])
    pos = math.log(0.8) * 0.2 ** 2
    neg = math.log(0.7) * 0.3 ** 2 * 0.5 ** 4 + math.log(0.9) * 0.1 ** 2 + math.log(0.8) * 0.2 ** 2
    assert float(focal_loss(pred, heat)) == pytest.approx(-(pos + neg), rel=1e-5)
    # no peak: only the negative part, not normalised
    assert float(focal_loss(pred, torch.zeros(1, 2, 2))) == pytest.approx(
        -(math.log(0.2) * 0.64 + math.log(0.7) * 0.09 + math.log(0.9) * 0.01 + math.log(0.8) * 0.04), rel=1e-5)


def test_gaussian_radius_cornernet_value():
    # h = w = 4, min_overlap 0.7: the third CornerNet case is the smallest, (-11.2 + sqrt(179.2)) / 2
    assert gaussian_radius(4, 4) == pytest.approx((-11.2 + math.sqrt(179.2)) / 2, rel=1e-9)


def test_gaussian_heatmap_peak_radius_and_edges():
    heat = gaussian_heatmap(np.array([0.40, 0.40, 0.25, 0.25]), 16)  # centre 0.525 -> cell 8; 4x4 cells -> r = 1
    assert heat.shape == (16, 16) and heat.dtype == np.float32
    assert heat[8, 8] == 1.0 and (heat == 1.0).sum() == 1
    assert np.count_nonzero(heat) == 9  # radius 1 -> 3x3 support
    assert heat[8, 9] == pytest.approx(math.exp(-1 / (2 * 0.5 ** 2)))
    assert np.allclose(heat, heat.T)
    edge = gaussian_heatmap(np.array([-0.45, -0.45, 1.0, 1.0]), 8)  # 8x8-cell box -> r = 2, peak in the corner
    assert edge[0, 0] == 1.0 and edge[0, 2] > 0 and edge[2, 2] > 0 and edge[0, 3] == 0 and edge[3, 0] == 0
    assert gaussian_heatmap(np.array([1.2, 0.1, 0.2, 0.2]), 8).sum() == 0  # centre outside the crop


def test_decision_loss_detaches_target():
    logit = torch.zeros(2, requires_grad=True)
    target = torch.tensor([0.5, 0.0], requires_grad=True)
    loss = decision_loss(logit, target)
    assert float(loss.detach()) == pytest.approx((0.0 + 0.5 * 0.5 ** 2) / 2)
    loss.backward()
    assert target.grad is None and logit.grad is not None and logit.grad[1] > 0


def test_self_distillation_weights_and_detach():
    heat = torch.zeros(1, 2, 2)
    heat[0, 0, 0] = 1.0
    w = target_weights(heat, floor=0.1)
    assert w.sum().item() == pytest.approx(1.0)
    assert w[0, 0].item() == pytest.approx(1.1 / 1.4)
    s = torch.zeros(1, 4, 2, requires_grad=True)
    t = torch.ones(1, 4, 2, requires_grad=True)
    t_data = t.detach().clone()
    t_data[0, 0] = 3.0  # token 0 (the target) is further away
    t2 = t_data.requires_grad_(True)
    loss = self_distillation_loss(s, t2, w)
    assert float(loss.detach()) == pytest.approx(1.1 / 1.4 * 9 + 3 * 0.1 / 1.4 * 1)
    loss.backward()
    assert t2.grad is None and s.grad is not None
