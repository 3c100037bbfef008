"""A/B: ViT-B OSTrack-256 with attention computed the way the official code does it, against ours.

The official implementation forms the full attention matrix explicitly,
``softmax((q @ k^T) * scale) @ v`` per block, and before the head copies the
search features with ``unsqueeze(-1).permute(0, 3, 2, 1).contiguous()`` and a
``view`` to (B, C, 16, 16). Ours calls ``scaled_dot_product_attention`` (no
N x N matrix kept) and reshapes without the extra copy. This script runs both
forwards on the *same* random weights (our parameter names are OSTrack's),
checks that the maps agree within 1e-4 and prints the CPU latency of each,
measured interleaved so that load from other processes hits both alike.

    python benchmarks/official_attention_vitb.py --iters 10 --threads 2
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from dytrack_ros.model import create_model
from dytrack_ros.model.tracker_net import TrackerNet


class ExplicitAttentionForward(nn.Module):
    """OSTrack-256 forward (no CE) with the official attention arithmetic, reusing ``net``'s modules."""

    def __init__(self, net: TrackerNet) -> None:
        super().__init__()
        if net.cfg.has_exits or net.cfg.ce_loc:
            raise ValueError("the reference forward covers plain OSTrack models (no exits, no CE)")
        self.net = net

    @staticmethod
    def attention(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = attn.qkv(x).reshape(b, n, 3, attn.num_heads, c // attn.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        weights = (q @ k.transpose(-2, -1)) * attn.scale  # (B, heads, N, N), explicit
        weights = weights.softmax(dim=-1)
        return attn.proj((weights @ v).transpose(1, 2).reshape(b, n, c))

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, ...]:
        bb, cfg = self.net.backbone, self.net.cfg
        z = bb.patch_embed(template) + bb.pos_embed_z
        x = bb.patch_embed(search) + bb.pos_embed_x
        x = torch.cat([z, x], dim=1)
        for blk in bb.blocks:
            x = x + self.attention(blk.attn, blk.norm1(x))
            x = x + blk.mlp(blk.norm2(x))
        x = bb.norm(x)
        search_tokens = x[:, -cfg.num_search_tokens:]
        feat = search_tokens.unsqueeze(-1).permute(0, 3, 2, 1).contiguous()  # (B, 1, C, HW), copied
        b, _, c, _ = feat.shape
        feat = feat.view(-1, c, cfg.search_feat, cfg.search_feat)
        return self.net.box_head(feat)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="ostrack256")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours = create_model(args.arch).eval()
    official = ExplicitAttentionForward(ours).eval()
    cfg = ours.cfg
    g = torch.Generator().manual_seed(1)
    template = torch.randn(1, 3, cfg.template_size, cfg.template_size, generator=g)
    search = torch.randn(1, 3, cfg.search_size, cfg.search_size, generator=g)

    with torch.inference_mode():
        a = ours(template, search)
        b = official(template, search)
        diffs = {name: float((x - y).abs().max()) for name, x, y in
                 zip(("score_map", "size_map", "offset_map"), (a.score_map, a.size_map, a.offset_map), b)}
        times = {"ours (SDPA)": [], "official-style (explicit q@k^T)": []}
        runs = {"ours (SDPA)": lambda: ours(template, search),
                "official-style (explicit q@k^T)": lambda: official(template, search)}
        for i in range(args.warmup + args.iters):
            for name, fn in (runs.items() if i % 2 == 0 else reversed(list(runs.items()))):
                t0 = time.perf_counter()
                fn()
                if i >= args.warmup:
                    times[name].append((time.perf_counter() - t0) * 1e3)

    print(f"{args.arch} forward on CPU, torch {torch.__version__}, {args.threads} thread(s), {args.iters} iters "
          "(interleaved); times in ms")
    print("max |ours - official-style|: " + "  ".join(f"{k}={v:.2e}" for k, v in diffs.items()))
    print(f"{'':34s}{'mean':>9s}{'median':>9s}{'p90':>9s}")
    for name, t in times.items():
        print(f"{name:34s}{np.mean(t):9.1f}{np.median(t):9.1f}{np.percentile(t, 90):9.1f}")
    ratio = np.median(times["ours (SDPA)"]) / np.median(times["official-style (explicit q@k^T)"])
    print(f"ours / official-style (median): {ratio:.3f}")
    ok = max(diffs.values()) <= 1e-4
    print("outputs match within 1e-4" if ok else "OUTPUTS DIFFER by more than 1e-4")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
