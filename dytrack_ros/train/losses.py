"""Training losses of the OSTrack recipe plus the DyTrack decision and self-distillation terms.

Boxes are normalised to the search crop ([0, 1]); ``xyxy`` = corners,
``cxcywh`` = centre + size (what :func:`dytrack_ros.model.decode_boxes` returns),
``xywh`` = top-left + size (what the pair sampler returns).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    x, y, w, h = b.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def box_iou_giou(pred: torch.Tensor, gt: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and generalised IoU of (N, 4) xyxy boxes (continuous, no +1)."""
    area_p = (pred[:, 2] - pred[:, 0]).clamp(min=0) * (pred[:, 3] - pred[:, 1]).clamp(min=0)
    area_g = (gt[:, 2] - gt[:, 0]).clamp(min=0) * (gt[:, 3] - gt[:, 1]).clamp(min=0)
    lt = torch.maximum(pred[:, :2], gt[:, :2])
    rb = torch.minimum(pred[:, 2:], gt[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = area_p + area_g - inter
    iou = inter / (union + eps)
    lt_c = torch.minimum(pred[:, :2], gt[:, :2])
    rb_c = torch.maximum(pred[:, 2:], gt[:, 2:])
    area_c = (rb_c - lt_c).clamp(min=0).prod(dim=1)
    giou = iou - (area_c - union) / (area_c + eps)
    return iou, giou


def giou_loss(pred_xyxy: torch.Tensor, gt_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (1 - GIoU) over the batch, and the per-sample IoU (for logging / decision targets)."""
    iou, giou = box_iou_giou(pred_xyxy, gt_xyxy)
    return (1.0 - giou).mean(), iou


def l1_loss(pred_xyxy: torch.Tensor, gt_xyxy: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all coordinates (torch ``l1_loss``, as OSTrack)."""
    return F.l1_loss(pred_xyxy, gt_xyxy)


def focal_loss(score_map: torch.Tensor, heatmap: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet focal loss of a sigmoid score map against a Gaussian heatmap with peaks == 1.

    Positives are the cells equal to 1; negatives are down-weighted by
    ``(1 - heatmap)**beta`` near the peak. Normalised by the number of peaks.
    """
    pred = score_map.reshape(heatmap.shape).float()
    gt = heatmap.float()
    pos = gt.eq(1).float()
    neg = 1.0 - pos
    neg_w = torch.pow(1.0 - gt, beta)
    pos_loss = (torch.log(pred) * torch.pow(1.0 - pred, alpha) * pos).sum()
    neg_loss = (torch.log(1.0 - pred) * torch.pow(pred, alpha) * neg_w * neg).sum()
    num_pos = pos.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """CornerNet radius: the largest corner shift that keeps IoU >= ``min_overlap`` (min of 3 cases)."""
    a1 = 1.0
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(b1 ** 2 - 4 * a1 * c1)) / 2
    a2 = 4.0
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(b2 ** 2 - 4 * a2 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian_heatmap(box_xywh: np.ndarray, feat_size: int, min_overlap: float = 0.7) -> np.ndarray:
    """(F, F) float32 heatmap: a Gaussian peak (== 1) at the box centre cell, CornerNet radius.

    ``box_xywh`` is normalised to the crop. As in OSTrack/CenterNet the radius is
    computed in feature cells and truncated to an integer, sigma = (2r + 1) / 6,
    and the peak sits at the integer cell containing the centre.
    """
    x, y, w, h = (float(v) * feat_size for v in box_xywh)
    heat = np.zeros((feat_size, feat_size), dtype=np.float32)
    cx, cy = int(x + 0.5 * w), int(y + 0.5 * h)
    if not (0 <= cx < feat_size and 0 <= cy < feat_size):
        return heat
    radius = max(0, int(gaussian_radius(h, w, min_overlap)))
    diameter = 2 * radius + 1
    sigma = diameter / 6.0
    ys, xs = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma)).astype(np.float32)
    g[g < np.finfo(np.float32).eps * g.max()] = 0
    left, right = min(cx, radius), min(feat_size - cx, radius + 1)
    top, bottom = min(cy, radius), min(feat_size - cy, radius + 1)
    heat[cy - top:cy + bottom, cx - left:cx + right] = g[radius - top:radius + bottom, radius - left:radius + right]
    heat[cy, cx] = 1.0
    return heat


def decision_loss(iou_logit: torch.Tensor, achieved_iou: torch.Tensor) -> torch.Tensor:
    """SmoothL1 between the decisioner's predicted IoU and the IoU its exit's box achieved (target detached)."""
    return F.smooth_l1_loss(torch.sigmoid(iou_logit.float()), achieved_iou.detach().float())


def target_weights(heatmap: torch.Tensor, floor: float = 0.1) -> torch.Tensor:
    """Per-token distillation weights (B, F*F): GT heatmap + ``floor``, normalised to sum 1 per sample."""
    w = heatmap.flatten(1).float() + floor
    return w / w.sum(dim=1, keepdim=True)


def self_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Target-aware feature mimicking: sum_i w_i * mean_c (s_ic - sg(t_ic))^2, averaged over the batch.

    ``student``/``teacher``: (B, N, C) normed search tokens; ``weights``: (B, N)
    summing to 1 per sample. The channel mean (not sum) keeps the scale
    independent of the embedding width.
    """
    per_token = (student.float() - teacher.detach().float()).pow(2).mean(dim=-1)
    return (per_token * weights).sum(dim=1).mean()


__all__ = [
    "box_iou_giou", "cxcywh_to_xyxy", "decision_loss", "focal_loss", "gaussian_heatmap", "gaussian_radius",
    "giou_loss", "l1_loss", "self_distillation_loss", "target_weights", "xywh_to_xyxy",
]
