"""Tracking objective for OSTrack-style models and DyTrack exits (methods ``ostrack`` and ``dytrack``).

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
  layers are never pulled towards the shallow ones. The weight 0.2 is
  CompressTracker's feature-mimicking weight and keeps the term an order of
  magnitude below the tracking loss at initialisation.
- optional score-map distillation (``loss.score_distill``, default 0): BCE of
  exit k's score map against the detached final score map.

Feature recycling is active because the model's own ``forward_all_exits`` is used.
Models with candidate elimination get OSTrack-CE's keep-rate warm-up per epoch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import ModelConfig
from ..model import create_model
from ..model.head import decode_boxes
from ..model.tracker_net import TrackerNet
from ..model_io.model_file import load_model_file
from .config import LossConfig, TrainConfig
from .losses import (
    cxcywh_to_xyxy,
    decision_loss,
    focal_loss,
    giou_loss,
    l1_loss,
    self_distillation_loss,
    target_weights,
    xywh_to_xyxy,
)
from .objective import Objective, register_objective

SCORE_PRIOR = 0.1


def ce_keep_rate(epoch: int, start: int, end: int, final: float) -> float:
    """OSTrack-CE warm-up: keep everything until ``start``, cosine decay to ``final`` at ``end`` (0-based epochs)."""
    if epoch < start:
        return 1.0
    if epoch >= end:
        return float(final)
    t = (epoch - start) / max(1, end - start)
    return float(final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t)))


def set_score_prior(model: TrackerNet, prior: float = SCORE_PRIOR, only: set[str] | None = None) -> None:
    """From-scratch heads start with score ~ ``prior`` everywhere (CenterNet's bias −2.19).

    With the default 0.5 the focal loss of the ~all-negative map is ~100 at
    step 0 and its gradient swamps everything else for the first hundreds of steps.
    """
    bias = -math.log((1 - prior) / prior)
    heads = {"box_head": model.box_head}
    if model.cfg.has_exits:
        heads.update({f"exit_heads.{i}": h for i, h in enumerate(model.exit_heads)})
    with torch.no_grad():
        for name, h in heads.items():
            if only is None or f"{name}.conv5_ctr.bias" in only:  # skip heads loaded from a model file
                h.conv5_ctr.bias.fill_(bias)


def init_from_file(model: TrackerNet, path: str) -> dict[str, list[str]]:
    """Copy every tensor of a model file whose name and shape match (e.g. OSTrack weights into DyTrack)."""
    src, _ = load_model_file(path)
    own = model.state_dict()
    theirs = src.state_dict()
    loaded = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "missing": sorted(set(own) - set(loaded))}


def _model_overrides(d: dict) -> dict:
    """YAML lists become the tuples ModelConfig fields hold."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (d or {}).items()}


def tracking_loss(out, gt_xyxy: torch.Tensor, heatmap: torch.Tensor,
                  cfg: LossConfig) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(weighted loss, per-sample IoU, parts) for one exit output."""
    pred = cxcywh_to_xyxy(decode_boxes(out.score_map.float(), out.size_map.float(), out.offset_map.float()))
    g, iou = giou_loss(pred, gt_xyxy)
    l1 = l1_loss(pred, gt_xyxy)
    fo = focal_loss(out.score_map, heatmap)
    total = cfg.giou * g + cfg.l1 * l1 + cfg.focal * fo
    return total, iou, {"giou": g.detach(), "l1": l1.detach(), "focal": fo.detach()}


@register_objective("ostrack", "dytrack")
class TrackingObjective(Objective):
    """Wraps a :class:`TrackerNet`; ``forward(batch)`` returns (loss, stats). DDP wraps this module.

    ``ce_warmup`` = (start, end) epochs of the candidate-elimination keep-rate
    warm-up; it only acts on models with ``ce_loc``.
    """

    def __init__(self, model: TrackerNet, cfg: LossConfig, ce_warmup: tuple[int, int] = (20, 100)) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        n = model.num_stages
        weights = tuple(cfg.exit_weights) or (1.0,) * n
        if len(weights) != n:
            raise ValueError(f"loss.exit_weights needs {n} values (one per exit), got {weights}")
        self.exit_weights = weights
        self.ce_warmup = ce_warmup
        self._base_cfg: ModelConfig | None = None  # model.cfg before the first warm-up change

    @classmethod
    def build(cls, cfg: TrainConfig, device: torch.device) -> TrackingObjective:
        """``cfg.model`` from scratch or from ``cfg.model.init``; heads not loaded from a file get the score prior."""
        model = create_model(cfg.model.name, drop_path_rate=cfg.optim.drop_path,
                             **_model_overrides(cfg.model.overrides))
        fresh = set(model.state_dict())
        if cfg.model.init:
            fresh = set(init_from_file(model, cfg.model.init)["missing"])
        set_score_prior(model, only=fresh)
        return cls(model.to(device), cfg.loss, (cfg.optim.ce_warmup_start, cfg.optim.ce_warmup_end))

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        """Candidate elimination: set this epoch's keep ratio (the forward reads ``model.cfg``)."""
        if self._base_cfg is None:
            self._base_cfg = self.model.cfg
        base = self._base_cfg
        if base.ce_loc:
            self.model.cfg = base.replace(ce_keep_ratio=ce_keep_rate(epoch, *self.ce_warmup, base.ce_keep_ratio))
        return {}

    def end_training(self) -> None:
        """Give the model back its configured keep ratio."""
        if self._base_cfg is not None:
            self.model.cfg = self._base_cfg
            self._base_cfg = None

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


__all__ = ["SCORE_PRIOR", "TrackingObjective", "ce_keep_rate", "init_from_file", "set_score_prior", "tracking_loss"]
