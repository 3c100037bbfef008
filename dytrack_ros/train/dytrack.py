"""Tracking objective for OSTrack-style models and DyTrack exits (our design, methods.md §3.4).

For every exit k (a plain model has one):

- tracking loss ``2·GIoU + 5·L1 + 1·Focal`` of exit k's box, decoded at the
  argmax of its own predicted score map, against the GT box;
- decision loss ``SmoothL1(sigmoid(q_k), sg(IoU(box_k, GT)))``, weight 1.0:
  the decisioner learns the IoU its exit's box actually reaches;
- target-aware self-distillation for every early exit k < L:
  ``0.2 · Σ_i w_i · mean_c (f_k,ic − sg(f_L,ic))²`` on the normed search tokens,
  ``w`` = GT Gaussian heatmap + 0.1 floor, normalised to sum 1 per sample.
  Why: the heatmap concentrates the mimicking on the target and its immediate
  surroundings (what the head must localise), the floor keeps some context
  (distractors) in the objective, and the teacher side is detached so the deep
  layers are never pulled towards the shallow ones. The weight 0.2 is the
  feature-mimicking weight CompressTracker found to work (§4.5) and keeps the
  term an order of magnitude below the tracking loss at initialisation.
- optional score-map distillation (``loss.score_distill``, default 0): BCE of
  exit k's score map against the detached final score map.

Feature recycling is active because the model's own ``forward_all_exits`` is used.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..model.head import decode_boxes
from ..model.tracker_net import TrackerNet
from .config import LossConfig
from .losses import (cxcywh_to_xyxy, decision_loss, focal_loss, giou_loss, l1_loss, self_distillation_loss,
                     target_weights, xywh_to_xyxy)


def tracking_loss(out, gt_xyxy: torch.Tensor, heatmap: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(weighted loss, per-sample IoU, parts) for one exit output."""
    pred = cxcywh_to_xyxy(decode_boxes(out.score_map.float(), out.size_map.float(), out.offset_map.float()))
    g, iou = giou_loss(pred, gt_xyxy)
    l1 = l1_loss(pred, gt_xyxy)
    fo = focal_loss(out.score_map, heatmap)
    total = cfg.giou * g + cfg.l1 * l1 + cfg.focal * fo
    return total, iou, {"giou": g.detach(), "l1": l1.detach(), "focal": fo.detach()}


class TrackingObjective(nn.Module):
    """Wraps a :class:`TrackerNet`; ``forward(batch)`` returns (loss, stats). DDP wraps this module."""

    def __init__(self, model: TrackerNet, cfg: LossConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        n = model.num_stages
        weights = tuple(cfg.exit_weights) or (1.0,) * n
        if len(weights) != n:
            raise ValueError(f"loss.exit_weights needs {n} values (one per exit), got {weights}")
        self.exit_weights = weights

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.cfg
        outs = self.model.forward_all_exits(batch["template"], batch["search"])
        gt = xywh_to_xyxy(batch["search_box"].float())
        heat = batch["heatmap"]
        stats: dict[str, torch.Tensor] = {}
        total = gt.new_zeros(())
        final = outs[-1]
        has_exits = self.model.cfg.has_exits
        weights = target_weights(heat, cfg.self_distill_floor) if has_exits and len(outs) > 1 else None
        for k, out in enumerate(outs):
            tl, iou, parts = tracking_loss(out, gt, heat, cfg)
            total = total + self.exit_weights[k] * tl
            stats[f"exit{k}/track"] = tl.detach()
            stats[f"exit{k}/iou"] = iou.detach().mean()
            if k == len(outs) - 1:
                stats.update({f"final/{n}": v for n, v in parts.items()})
            if has_exits and cfg.decision > 0 and out.iou_logit is not None:
                dl = decision_loss(out.iou_logit, iou)
                total = total + cfg.decision * dl
                stats[f"exit{k}/decision"] = dl.detach()
            if weights is not None and k < len(outs) - 1:
                if cfg.self_distill > 0:
                    sd = self_distillation_loss(out.search_feat, final.search_feat, weights)
                    total = total + cfg.self_distill * sd
                    stats[f"exit{k}/self_distill"] = sd.detach()
                if cfg.score_distill > 0:
                    target = final.score_map.detach().float()
                    sm = F.binary_cross_entropy(out.score_map.float(), target)
                    total = total + cfg.score_distill * sm
                    stats[f"exit{k}/score_distill"] = sm.detach()
        stats["loss"] = total.detach()
        return total, stats


__all__ = ["TrackingObjective", "tracking_loss"]
