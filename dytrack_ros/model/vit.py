"""Plain-torch ViT building blocks with OSTrack's parameter names.

Attention uses ``scaled_dot_product_attention`` (fused kernel, no explicit
N x N matrix) except where candidate elimination needs attention weights; there
only the rows of the queried template tokens are formed explicitly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    """Conv patchify, flattened to (B, N, C); no norm (as in OSTrack)."""

    def __init__(self, patch_size: int, embed_dim: int, in_chans: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self._qkv(x)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))

    def forward_with_query_attention(self, x: torch.Tensor,
                                     query_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention output plus softmax weights of the queries ``query_index``.

        Returns (out, attn) with attn of shape (B, heads, len(query_index), N):
        exactly the rows OSTrack's candidate elimination reads.
        """
        b, n, c = x.shape
        q, k, v = self._qkv(x)
        out = F.scaled_dot_product_attention(q, k, v)
        q_sel = q.index_select(2, query_index)
        attn = torch.softmax((q_sel * self.scale) @ k.transpose(-2, -1), dim=-1)
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), attn


class Block(nn.Module):
    """Pre-norm transformer block (OSTrack/timm names: norm1, attn, norm2, mlp)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_eps: float = 1e-6, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = drop_path

    def _dp(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_path == 0.0:
            return x
        keep = 1.0 - self.drop_path
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self._dp(self.attn(self.norm1(x)))
        return x + self._dp(self.mlp(self.norm2(x)))

    def forward_ce(self, x: torch.Tensor, num_template: int, global_index_s: torch.Tensor, keep_ratio: float,
                   template_query: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """OSTrack CEBlock: attention, then drop the least-attended search tokens, then MLP.

        ``template_query`` are indices of the template tokens whose attention
        ranks the search tokens (the centre token with CTR_POINT).
        """
        attn_out, attn = self.attn.forward_with_query_attention(self.norm1(x), template_query)
        x = x + self._dp(attn_out)
        x, global_index_s, removed = candidate_elimination(attn, x, num_template, keep_ratio, global_index_s)
        x = x + self._dp(self.mlp(self.norm2(x)))
        return x, global_index_s, removed


def candidate_elimination(attn_rows: torch.Tensor, tokens: torch.Tensor, num_template: int, keep_ratio: float,
                          global_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Keep the ceil(keep_ratio * Ls) search tokens most attended by the template query.

    ``attn_rows``: (B, H, Q, N) softmax rows of the selected template queries.
    Returns (tokens, kept global indices, removed global indices or None).
    """
    lens_s = attn_rows.shape[-1] - num_template
    lens_keep = math.ceil(keep_ratio * lens_s)
    if lens_keep == lens_s:
        return tokens, global_index, None
    score = attn_rows[..., num_template:].mean(dim=2).mean(dim=1)  # (B, Ls)
    _, order = torch.sort(score, dim=1, descending=True)
    top, rest = order[:, :lens_keep], order[:, lens_keep:]
    keep_index = global_index.gather(1, top)
    removed_index = global_index.gather(1, rest)
    tokens_t, tokens_s = tokens[:, :num_template], tokens[:, num_template:]
    b, _, c = tokens_s.shape
    kept = tokens_s.gather(1, top.unsqueeze(-1).expand(b, -1, c))
    return torch.cat([tokens_t, kept], dim=1), keep_index, removed_index
