"""Batched exit-k inference of a TrackerNet: many search windows against one template in one forward.

Why a separate path from the staged batch-1 loop: re-detection evaluates several
windows per frame, and on torch one forward over a batch of B windows shares the
per-kernel overhead that B separate forwards pay B times. The template is
expanded (a view, no copy) to the batch. Only the stages up to exit ``k`` run:
each window answers at that exit, whatever its predicted IoU.
"""
from __future__ import annotations

import time

import torch

from ..model.tracker_net import TrackerNet
from .base import BackendOutput


@torch.inference_mode()
def infer_batch_to_exit(model: TrackerNet, template: torch.Tensor, searches: torch.Tensor,
                        k: int) -> list[BackendOutput]:
    """Exit ``k`` of ``model`` for every window of ``searches`` (B, 3, Hs, Ws), template (1, 3, Ht, Wt)."""
    t0 = time.perf_counter()
    batch = searches.shape[0]
    z = template.expand(batch, -1, -1, -1)
    if model.cfg.ce_loc:  # candidate elimination runs as one stage
        out = model.forward_ce(z, searches)
    else:
        tokens = model.embed(z, searches)
        for j in range(k + 1):
            tokens, out = model.forward_stage(j, tokens)
    maps = [m.float().cpu().numpy() for m in (out.score_map, out.size_map, out.offset_map)]
    preds = None if out.iou_logit is None else torch.sigmoid(out.iou_logit.float()).cpu().numpy()
    ms = (time.perf_counter() - t0) * 1e3 / max(batch, 1)  # the batch's time shared evenly
    return [BackendOutput(maps[0][i:i + 1], maps[1][i:i + 1], maps[2][i:i + 1], exit_index=out.index,
                          exit_layer=out.layer, pred_iou=None if preds is None else float(preds[i]),
                          stage_ms=[ms]) for i in range(batch)]


__all__ = ["infer_batch_to_exit"]
