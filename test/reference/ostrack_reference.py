"""Independent reference of the official OSTrack-256 test-time semantics (tracker loop and checkpoint layout).

Written separately from ``dytrack_ros`` (which it must not import) so the
parity tests compare two implementations, not one with itself. It works on a
state dict with the *official* key names and uses plain functional ops:
explicit ``softmax(q @ k^T * scale)`` attention on every block (as the
official code does), candidate elimination on the full attention matrix with
a boolean template mask (``box_mask_z``, CTR_POINT), re-insertion of the
dropped tokens by ``scatter`` after the final norm, the CENTER head with
BatchNorm in eval mode, and the official tracker loop (``sample_target``
with its +1 padding quirk, Hann window, ``cal_bbox``, ``map_box_back``,
``clip_box``).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import cv2
import numpy as np
import torch
import torch.nn.functional as F

BRANCHES = ("ctr", "offset", "size")


# ---------------------------------------------------------- key layout (official OSTrack / CompressTracker state dicts)
def official_shapes(dim: int = 768, depth: int = 12, mlp_ratio: int = 4, patch: int = 16, template: int = 128,
                    search: int = 256, head_channels: int = 256, distill: bool = False) -> "OrderedDict[str, tuple]":
    """Key -> shape of an official OSTrack (``distill=False``) or CompressTracker test model state dict."""
    s: OrderedDict[str, tuple] = OrderedDict()
    s["backbone.cls_token"] = (1, 1, dim)
    s["backbone.pos_embed"] = (1, 197, dim)
    s["backbone.pos_embed_z"] = (1, (template // patch) ** 2, dim)
    s["backbone.pos_embed_x"] = (1, (search // patch) ** 2, dim)
    s["backbone.patch_embed.proj.weight"] = (dim, 3, patch, patch)
    s["backbone.patch_embed.proj.bias"] = (dim,)
    block_prefix = "backbone.distill_blocks" if distill else "backbone.blocks"
    if distill:  # CT order: final norm before the blocks
        s["backbone.norm.weight"] = (dim,)
        s["backbone.norm.bias"] = (dim,)
    hidden = dim * mlp_ratio
    for i in range(depth):
        p = f"{block_prefix}.{i}"
        s[f"{p}.norm1.weight"] = (dim,)
        s[f"{p}.norm1.bias"] = (dim,)
        s[f"{p}.attn.qkv.weight"] = (3 * dim, dim)
        s[f"{p}.attn.qkv.bias"] = (3 * dim,)
        s[f"{p}.attn.proj.weight"] = (dim, dim)
        s[f"{p}.attn.proj.bias"] = (dim,)
        s[f"{p}.norm2.weight"] = (dim,)
        s[f"{p}.norm2.bias"] = (dim,)
        s[f"{p}.mlp.fc1.weight"] = (hidden, dim)
        s[f"{p}.mlp.fc1.bias"] = (hidden,)
        s[f"{p}.mlp.fc2.weight"] = (dim, hidden)
        s[f"{p}.mlp.fc2.bias"] = (dim,)
    if not distill:
        s["backbone.norm.weight"] = (dim,)
        s["backbone.norm.bias"] = (dim,)
    widths = [dim, head_channels, head_channels // 2, head_channels // 4, head_channels // 8]
    for b in BRANCHES:
        for i in range(4):
            p = f"box_head.conv{i + 1}_{b}"
            s[f"{p}.0.weight"] = (widths[i + 1], widths[i], 3, 3)
            s[f"{p}.0.bias"] = (widths[i + 1],)
            for name in ("weight", "bias", "running_mean", "running_var"):
                s[f"{p}.1.{name}"] = (widths[i + 1],)
            s[f"{p}.1.num_batches_tracked"] = ()
    for b, out in (("ctr", 1), ("offset", 2), ("size", 2)):
        s[f"box_head.conv5_{b}.weight"] = (out, widths[4], 1, 1)
        s[f"box_head.conv5_{b}.bias"] = (out,)
    return s


def random_official_state_dict(seed: int = 0, **shape_kwargs) -> "OrderedDict[str, torch.Tensor]":
    """Random weights in the official layout, scaled so attention is far from uniform.

    (Uniform attention would make candidate elimination rank near-ties, which
    no two float implementations order identically.)
    """
    g = torch.Generator().manual_seed(seed)
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in official_shapes(**shape_kwargs).items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            sd[key] = 0.1 * torch.randn(shape, generator=g)
        elif ".norm" in key and key.endswith("weight") or key.endswith(".1.weight"):
            sd[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) >= 2 and "pos_embed" not in key and "cls_token" not in key:
            fan_in = math.prod(shape[1:])
            sd[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
        elif "pos_embed" in key:
            sd[key] = 0.5 * torch.randn(shape, generator=g)
        else:
            sd[key] = 0.05 * torch.randn(shape, generator=g)
    return sd


# --------------------------------------------------------------------------- network
def _attention(sd, p: str, x: torch.Tensor, heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    b, n, c = x.shape
    qkv = F.linear(x, sd[f"{p}.attn.qkv.weight"], sd[f"{p}.attn.qkv.bias"])
    qkv = qkv.reshape(b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    attn = (q @ k.transpose(-2, -1)) * ((c // heads) ** -0.5)
    attn = attn.softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(b, n, c)
    return F.linear(out, sd[f"{p}.attn.proj.weight"], sd[f"{p}.attn.proj.bias"]), attn


def _ln(sd, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-6)


def _eliminate(attn, tokens, lens_t, keep_ratio, global_index, box_mask_z):
    """Official candidate elimination (attention rows of the masked template tokens rank the search tokens)."""
    lens_s = attn.shape[-1] - lens_t
    bs, hn = attn.shape[:2]
    lens_keep = math.ceil(keep_ratio * lens_s)
    if lens_keep == lens_s:
        return tokens, global_index, None
    attn_t = attn[:, :, :lens_t, lens_t:]
    if box_mask_z is not None:
        mask = box_mask_z.unsqueeze(1).unsqueeze(-1).expand(-1, hn, -1, lens_s)
        attn_t = attn_t[mask].view(bs, hn, -1, lens_s)
    attn_t = attn_t.mean(dim=2).mean(dim=1)
    _, indices = torch.sort(attn_t, dim=1, descending=True)
    topk_idx, non_topk_idx = indices[:, :lens_keep], indices[:, lens_keep:]
    keep_index = global_index.gather(1, topk_idx)
    removed_index = global_index.gather(1, non_topk_idx)
    tokens_t, tokens_s = tokens[:, :lens_t], tokens[:, lens_t:]
    c = tokens_s.shape[-1]
    attentive = tokens_s.gather(1, topk_idx.unsqueeze(-1).expand(bs, -1, c))
    return torch.cat([tokens_t, attentive], dim=1), keep_index, removed_index


def ctr_point_mask(template_feat: int, batch: int = 1) -> torch.Tensor:
    """``generate_mask_cond`` with CE_TEMPLATE_RANGE = CTR_POINT: one True at the centre cell."""
    centre = {8: 3, 12: 5, 7: 3, 14: 6}[template_feat]
    m = torch.zeros(batch, template_feat, template_feat)
    m[:, centre, centre] = 1
    return m.flatten(1).to(torch.bool)


def _bn_conv_relu(sd, p: str, x: torch.Tensor) -> torch.Tensor:
    x = F.conv2d(x, sd[f"{p}.0.weight"], sd[f"{p}.0.bias"], padding=1)
    x = F.batch_norm(x, sd[f"{p}.1.running_mean"], sd[f"{p}.1.running_var"], sd[f"{p}.1.weight"], sd[f"{p}.1.bias"],
                     training=False, eps=1e-5)
    return F.relu(x)


def _head(sd, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    outs = {}
    for b in BRANCHES:
        x = feat
        for i in range(4):
            x = _bn_conv_relu(sd, f"box_head.conv{i + 1}_{b}", x)
        outs[b] = F.conv2d(x, sd[f"box_head.conv5_{b}.weight"], sd[f"box_head.conv5_{b}.bias"])
    squash = lambda t: torch.clamp(t.sigmoid(), min=1e-4, max=1 - 1e-4)  # noqa: E731
    return squash(outs["ctr"]), squash(outs["size"]), outs["offset"]


@torch.no_grad()
def reference_forward(sd, template: torch.Tensor, search: torch.Tensor, num_heads: int, ce_loc=(),
                      keep_ratio: float = 0.7, box_mask_z: torch.Tensor | None = None):
    """(score_map, size_map, offset_map) of the official OSTrack forward on official-key weights ``sd``."""
    blocks = ("backbone.distill_blocks" if any(k.startswith("backbone.distill_blocks.") for k in sd)
              else "backbone.blocks")
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith(blocks + "."))
    w, bias = sd["backbone.patch_embed.proj.weight"], sd["backbone.patch_embed.proj.bias"]
    patch = w.shape[-1]
    z = F.conv2d(template, w, bias, stride=patch).flatten(2).transpose(1, 2) + sd["backbone.pos_embed_z"]
    x = F.conv2d(search, w, bias, stride=patch).flatten(2).transpose(1, 2) + sd["backbone.pos_embed_x"]
    bsz, lens_z, lens_x = x.shape[0], z.shape[1], x.shape[1]
    x = torch.cat([z, x], dim=1)
    global_index_s = torch.linspace(0, lens_x - 1, lens_x).repeat(bsz, 1)
    removed = []
    for i in range(depth):
        p = f"{blocks}.{i}"
        out, attn = _attention(sd, p, _ln(sd, f"{p}.norm1", x), num_heads)
        x = x + out
        if i in ce_loc:
            x, global_index_s, rem = _eliminate(attn, x, lens_z, keep_ratio, global_index_s, box_mask_z)
            removed.append(rem)
        h = F.linear(_ln(sd, f"{p}.norm2", x), sd[f"{p}.mlp.fc1.weight"], sd[f"{p}.mlp.fc1.bias"])
        x = x + F.linear(F.gelu(h), sd[f"{p}.mlp.fc2.weight"], sd[f"{p}.mlp.fc2.bias"])
    x = _ln(sd, "backbone.norm", x)
    xs = x[:, lens_z:]
    if removed and removed[0] is not None:
        removed_cat = torch.cat(removed, dim=1)
        pad = torch.zeros(bsz, lens_x - xs.shape[1], xs.shape[2])
        xs = torch.cat([xs, pad], dim=1)
        index_all = torch.cat([global_index_s, removed_cat], dim=1)
        c = xs.shape[-1]
        xs = torch.zeros_like(xs).scatter_(1, index_all.unsqueeze(-1).expand(bsz, -1, c).to(torch.int64), xs)
    fs = int(math.isqrt(lens_x))
    feat = xs.unsqueeze(-1).permute(0, 3, 2, 1).contiguous().view(-1, xs.shape[2], fs, fs)
    return _head(sd, feat)


# --------------------------------------------------------------------------- tracker loop (official OSTrack test time)
def sample_target(im: np.ndarray, box, factor: float, output_sz: int):
    x, y, w, h = box
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    if crop_sz < 1:
        raise ValueError("Too small bounding box.")
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    x2 = x1 + crop_sz
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    y2 = y1 + crop_sz
    x1_pad = max(0, -x1)
    x2_pad = max(x2 - im.shape[1] + 1, 0)
    y1_pad = max(0, -y1)
    y2_pad = max(y2 - im.shape[0] + 1, 0)
    crop = im[y1 + y1_pad:y2 - y2_pad, x1 + x1_pad:x2 - x2_pad, :]
    padded = cv2.copyMakeBorder(crop, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT)
    return cv2.resize(padded, (output_sz, output_sz)), output_sz / crop_sz


def preprocess(patch: np.ndarray) -> torch.Tensor:
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    t = torch.tensor(patch).float().permute(2, 0, 1).unsqueeze(0)
    return ((t / 255.0) - mean) / std


def hann2d(sz: int) -> torch.Tensor:
    w = 0.5 * (1 - torch.cos((2 * math.pi / (sz + 1)) * torch.arange(1, sz + 1).float()))
    return w.reshape(1, 1, -1, 1) * w.reshape(1, 1, 1, -1)


def cal_bbox(score_map, size_map, offset_map, feat_sz: int) -> torch.Tensor:
    _, idx = torch.max(score_map.flatten(1), dim=1, keepdim=True)
    idx_y = idx // feat_sz
    idx_x = idx % feat_sz
    idx = idx.unsqueeze(1).expand(idx.shape[0], 2, 1)
    size = size_map.flatten(2).gather(dim=2, index=idx)
    offset = offset_map.flatten(2).gather(dim=2, index=idx).squeeze(-1)
    return torch.cat([(idx_x.to(torch.float) + offset[:, :1]) / feat_sz,
                      (idx_y.to(torch.float) + offset[:, 1:]) / feat_sz, size.squeeze(-1)], dim=1)


def clip_box(box, H: int, W: int, margin: int = 0):
    x1, y1, w, h = box
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0, x1), W - margin)
    x2 = min(max(margin, x2), W)
    y1 = min(max(0, y1), H - margin)
    y2 = min(max(margin, y2), H)
    w = max(margin, x2 - x1)
    h = max(margin, y2 - y1)
    return [x1, y1, w, h]


class ReferenceTracker:
    """The official OSTrack test loop around :func:`reference_forward` (RGB frames, box x,y,w,h)."""

    def __init__(self, sd, num_heads: int, ce_loc=(), keep_ratio: float = 0.7, template_size: int = 128,
                 search_size: int = 256, template_factor: float = 2.0, search_factor: float = 4.0) -> None:
        self.sd, self.num_heads, self.ce_loc, self.keep_ratio = sd, num_heads, tuple(ce_loc), keep_ratio
        self.template_size, self.search_size = template_size, search_size
        self.template_factor, self.search_factor = template_factor, search_factor
        self.feat_sz = search_size // sd["backbone.patch_embed.proj.weight"].shape[-1]
        self.output_window = hann2d(self.feat_sz)
        self.last_maps = None

    def initialize(self, image: np.ndarray, box) -> None:
        patch, _ = sample_target(image, box, self.template_factor, self.template_size)
        self.z = preprocess(patch)
        patch_sz = self.sd["backbone.patch_embed.proj.weight"].shape[-1]
        self.box_mask_z = ctr_point_mask(self.template_size // patch_sz) if self.ce_loc else None
        self.state = list(box)

    def track(self, image: np.ndarray) -> list[float]:
        H, W, _ = image.shape
        patch, resize_factor = sample_target(image, self.state, self.search_factor, self.search_size)
        score, size, offset = reference_forward(self.sd, self.z, preprocess(patch), self.num_heads, self.ce_loc,
                                                self.keep_ratio, self.box_mask_z)
        self.last_maps = (score, size, offset)
        boxes = cal_bbox(self.output_window * score, size, offset, self.feat_sz).view(-1, 4)
        pred = (boxes.mean(dim=0) * self.search_size / resize_factor).tolist()
        cx_prev, cy_prev = self.state[0] + 0.5 * self.state[2], self.state[1] + 0.5 * self.state[3]
        cx, cy, w, h = pred
        half = 0.5 * self.search_size / resize_factor
        mapped = [cx + (cx_prev - half) - 0.5 * w, cy + (cy_prev - half) - 0.5 * h, w, h]
        self.state = clip_box(mapped, H, W, margin=10)
        return list(self.state)
