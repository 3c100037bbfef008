"""OSTrack-family one-stream tracker with optional DyTrack exits.

Layout (state-dict names follow OSTrack so official checkpoints map 1:1):

- ``backbone.patch_embed``, ``backbone.pos_embed_z``, ``backbone.pos_embed_x``,
  ``backbone.blocks.{i}``, ``backbone.norm`` and ``box_head`` (the final CENTER head).
- DyTrack additions, present only when ``config.exit_layers`` is set:
  ``iou_token`` (1,1,D) appended after the search tokens; ``decisioners.{k}``
  (3-layer MLP on the normed IoU token -> predicted IoU of exit k's box);
  ``exit_heads.{k}`` (CENTER heads of the non-final exits) and
  ``recyclers.{k}`` (feature recycling, see below).

Inference runs stage by stage: stage k = the blocks up to exit layer k, then
exit k (shared final norm -> head -> decisioner). It stops at the first exit
whose predicted IoU reaches its threshold (the rule of the
:class:`~dytrack_ros.exit_policy.ExitPolicy` passed in; the network holds no
thresholds of its own), so the remaining blocks are never executed. The same
``forward_stage`` is what the backends run and the ONNX export writes per stage.

Feature recycling (what is reused, and how): stage k+1 does not restart from
the image; it continues from stage k's full token sequence (template, search
and IoU tokens, so all computation already spent is kept), and in addition the
exit-k *normed search features* (the exact tensor exit k's head read) are
projected by ``recyclers.{k}`` (Linear D->D, zero-initialised, so an untrained
recycler is the identity path) and added to the search tokens. The exit's
decision evidence thereby feeds the deeper layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig
from ..exit_policy import ExitPolicy
from .head import CenterHead, FusedCenterHead, tokens_to_map
from .vit import Block, PatchEmbed


class Backbone(nn.Module):
    def __init__(self, cfg: ModelConfig, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.patch_size, d)
        self.pos_embed_z = nn.Parameter(torch.zeros(1, cfg.num_template_tokens, d))
        self.pos_embed_x = nn.Parameter(torch.zeros(1, cfg.num_search_tokens, d))
        rates = [drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, rates[i]) for i in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)
        nn.init.trunc_normal_(self.pos_embed_z, std=0.02)
        nn.init.trunc_normal_(self.pos_embed_x, std=0.02)
        self.apply(_init_vit_weights)


def _init_vit_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class Decisioner(nn.Module):
    """3-layer MLP on the IoU token -> logit of the predicted IoU of this exit's box."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, token: torch.Tensor) -> torch.Tensor:
        return self.mlp(token).squeeze(-1)


@dataclass
class ExitOutput:
    """What one exit produced (tensors keep the batch dimension)."""

    index: int  # 0-based exit index
    layer: int  # 1-based transformer layer the exit sits after
    score_map: torch.Tensor
    size_map: torch.Tensor
    offset_map: torch.Tensor
    iou_logit: torch.Tensor | None  # (B,), None for models without exits
    search_feat: torch.Tensor  # normed search tokens (B, Nx, D) the head read

    @property
    def pred_iou(self) -> torch.Tensor | None:
        return None if self.iou_logit is None else torch.sigmoid(self.iou_logit)


class TrackerNet(nn.Module):
    def __init__(self, cfg: ModelConfig, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg, drop_path_rate)
        self.box_head = CenterHead(cfg.embed_dim, cfg.head_channels, cfg.search_feat)
        if cfg.has_exits:
            n = len(cfg.exit_layers)
            self.iou_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
            nn.init.trunc_normal_(self.iou_token, std=0.02)
            self.exit_heads = nn.ModuleList(CenterHead(cfg.embed_dim, cfg.head_channels, cfg.search_feat)
                                            for _ in range(n - 1))
            self.decisioners = nn.ModuleList(Decisioner(cfg.embed_dim, cfg.decision_hidden) for _ in range(n))
            self.recyclers = nn.ModuleList(nn.Linear(cfg.embed_dim, cfg.embed_dim) for _ in range(n - 1))
            for r in self.recyclers:
                nn.init.zeros_(r.weight)
                nn.init.zeros_(r.bias)
        if cfg.ce_loc:
            t = cfg.template_feat
            centre = ([((t - 1) // 2) * t + (t - 1) // 2] if cfg.ce_template_centre
                      else list(range(cfg.num_template_tokens)))
            self.register_buffer("ce_template_query", torch.tensor(centre, dtype=torch.long), persistent=False)

    # Stage structure -------------------------------------------------------
    @property
    def stage_bounds(self) -> list[tuple[int, int]]:
        """[(first_block, end_block)) per stage, 0-based, end exclusive."""
        ends = list(self.cfg.exit_layers) if self.cfg.has_exits else [self.cfg.depth]
        starts = [0] + ends[:-1]
        return list(zip(starts, ends))

    @property
    def num_stages(self) -> int:
        return len(self.stage_bounds)

    def default_exit_policy(self) -> ExitPolicy:
        """The exit policy with the thresholds stored in the model's config (full depth if none)."""
        return ExitPolicy.for_model(self.cfg.exit_layers, self.cfg.default_thresholds)

    # Building pieces -------------------------------------------------------
    def embed(self, template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        z = bb.patch_embed(template) + bb.pos_embed_z
        x = bb.patch_embed(search) + bb.pos_embed_x
        parts = [z, x]
        if self.cfg.has_exits:
            parts.append(self.iou_token.expand(x.shape[0], -1, -1).to(x.dtype))
        return torch.cat(parts, dim=1)

    def _head(self, k: int) -> nn.Module:
        fused = self.__dict__.get("_fused_heads")
        if fused is not None and not self.training:
            return fused[k]
        return self.box_head if k == self.num_stages - 1 else self.exit_heads[k]

    def fuse_heads_for_inference(self, dtype: torch.dtype | None = None) -> "TrackerNet":
        """Use BN-folded, branch-fused copies of the exit heads in eval mode (see FusedCenterHead).

        The copies are kept outside the module tree, so ``state_dict()`` and
        saved files are unchanged; ``train()`` switches back to the real heads,
        and calling this again after changing weights refreshes the copies.
        """
        heads = [self.box_head if k == self.num_stages - 1 else self.exit_heads[k] for k in range(self.num_stages)]
        fused = [FusedCenterHead(h) for h in heads]
        self.__dict__["_fused_heads"] = [f.to(dtype) for f in fused] if dtype is not None else fused
        return self

    def exit_branch(self, tokens: torch.Tensor, k: int) -> ExitOutput:
        """Exit k on the (un-normed) token sequence after its layer."""
        nz, nx = self.cfg.num_template_tokens, self.cfg.num_search_tokens
        normed = self.backbone.norm(tokens)
        search_feat = normed[:, nz:nz + nx]
        score, size, offset = self._head(k)(tokens_to_map(search_feat, self.cfg.search_feat))
        iou_logit = self.decisioners[k](normed[:, -1]) if self.cfg.has_exits else None
        layer = self.stage_bounds[k][1]
        return ExitOutput(k, layer, score, size, offset, iou_logit, search_feat)

    def recycle(self, tokens: torch.Tensor, out: ExitOutput) -> torch.Tensor:
        """Tokens entering stage k+1: stage-k tokens + projected exit-k search features."""
        nz, nx = self.cfg.num_template_tokens, self.cfg.num_search_tokens
        r = self.recyclers[out.index](out.search_feat)
        return torch.cat([tokens[:, :nz], tokens[:, nz:nz + nx] + r, tokens[:, nz + nx:]], dim=1)

    def forward_stage(self, k: int, tokens: torch.Tensor) -> tuple[torch.Tensor, ExitOutput]:
        """Run stage k's blocks and exit k. Returns (tokens for stage k+1, exit output)."""
        start, end = self.stage_bounds[k]
        for blk in self.backbone.blocks[start:end]:
            tokens = blk(tokens)
        out = self.exit_branch(tokens, k)
        if k < self.num_stages - 1:
            tokens = self.recycle(tokens, out)
        return tokens, out

    # Forwards -------------------------------------------------------------
    def forward(self, template: torch.Tensor, search: torch.Tensor, policy: ExitPolicy | None = None) -> ExitOutput:
        """Inference forward: returns the exit that answered under ``policy`` (None: full depth).

        With a batch > 1 a stage exits only when every sample passes its threshold.
        """
        if self.cfg.ce_loc:
            return self.forward_ce(template, search)
        tokens = self.embed(template, search)
        for k in range(self.num_stages):
            tokens, out = self.forward_stage(k, tokens)
            if policy is None:
                if k == self.num_stages - 1:
                    return out
                continue
            preds = [None] if out.pred_iou is None else out.pred_iou.float().tolist()
            if all(policy.should_exit(k, p) for p in preds):
                return out
        raise AssertionError("unreachable: the last stage always answers")

    def forward_all_exits(self, template: torch.Tensor, search: torch.Tensor) -> list[ExitOutput]:
        """Training/analysis forward: every exit evaluated (no early stop)."""
        if self.cfg.ce_loc:
            return [self.forward_ce(template, search)]
        tokens = self.embed(template, search)
        outs = []
        for k in range(self.num_stages):
            tokens, out = self.forward_stage(k, tokens)
            outs.append(out)
        return outs

    def forward_features(self, template: torch.Tensor, search: torch.Tensor,
                         block_override: dict[int, nn.Module] | None = None) -> list[torch.Tensor]:
        """Un-normed token sequence after every block (for feature mimicking/analysis)."""
        tokens = self.embed(template, search)
        feats = []
        for i, blk in enumerate(self.backbone.blocks):
            tokens = (block_override or {}).get(i, blk)(tokens)
            feats.append(tokens)
        return feats

    def forward_ce(self, template: torch.Tensor, search: torch.Tensor) -> ExitOutput:
        """OSTrack-CE forward: token pruning at ``ce_loc``, zeros re-inserted after the norm."""
        cfg = self.cfg
        nz, nx = cfg.num_template_tokens, cfg.num_search_tokens
        tokens = self.embed(template, search)
        b = tokens.shape[0]
        gidx = torch.arange(nx, device=tokens.device).unsqueeze(0).expand(b, -1)
        removed = []
        for i, blk in enumerate(self.backbone.blocks):
            if i in cfg.ce_loc:
                tokens, gidx, rem = blk.forward_ce(tokens, nz, gidx, cfg.ce_keep_ratio, self.ce_template_query)
                if rem is not None:
                    removed.append(rem)
            else:
                tokens = blk(tokens)
        normed = self.backbone.norm(tokens)
        kept = normed[:, nz:]
        if removed:
            index_all = torch.cat([gidx] + removed, dim=1)
            src = torch.cat([kept, kept.new_zeros(b, nx - kept.shape[1], kept.shape[2])], dim=1)
            kept = torch.zeros_like(src).scatter(1, index_all.unsqueeze(-1).expand_as(src), src)
        score, size, offset = self._head(0)(tokens_to_map(kept, cfg.search_feat))
        return ExitOutput(0, cfg.depth, score, size, offset, None, kept)
