"""OSTrack CENTER head: score (centre), offset and size maps on the search grid."""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CenterHead(nn.Module):
    """Three parallel conv towers (ctr / offset / size), names as in OSTrack's CenterPredictor.

    Output: score_map (B,1,F,F) and size_map (B,2,F,F) in (1e-4, 1-1e-4) after
    a clamped sigmoid; offset_map (B,2,F,F) raw.
    """

    BRANCHES = ("ctr", "offset", "size")

    def __init__(self, in_dim: int, channels: int, feat_size: int) -> None:
        super().__init__()
        self.feat_size = feat_size
        widths = [in_dim, channels, channels // 2, channels // 4, channels // 8]
        for b in self.BRANCHES:
            for i in range(4):
                setattr(self, f"conv{i + 1}_{b}", _conv_bn_relu(widths[i], widths[i + 1]))
        self.conv5_ctr = nn.Conv2d(widths[4], 1, kernel_size=1)
        self.conv5_offset = nn.Conv2d(widths[4], 2, kernel_size=1)
        self.conv5_size = nn.Conv2d(widths[4], 2, kernel_size=1)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def _branch(self, x: torch.Tensor, b: str) -> torch.Tensor:
        for i in range(4):
            x = getattr(self, f"conv{i + 1}_{b}")(x)
        return getattr(self, f"conv5_{b}")(x)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """feat: (B, C, F, F) -> (score_map, size_map, offset_map)."""
        score = torch.clamp(torch.sigmoid(self._branch(feat, "ctr")), 1e-4, 1 - 1e-4)
        size = torch.clamp(torch.sigmoid(self._branch(feat, "size")), 1e-4, 1 - 1e-4)
        offset = self._branch(feat, "offset")
        return score, size, offset


def tokens_to_map(tokens: torch.Tensor, feat_size: int) -> torch.Tensor:
    """(B, F*F, C) search tokens -> (B, C, F, F) feature map."""
    b, n, c = tokens.shape
    return tokens.transpose(1, 2).reshape(b, c, feat_size, feat_size)


def decode_boxes(score_map: torch.Tensor, size_map: torch.Tensor, offset_map: torch.Tensor) -> torch.Tensor:
    """Boxes (B, 4) as normalised (cx, cy, w, h) at the argmax of ``score_map`` (OSTrack cal_bbox)."""
    b, _, fh, fw = score_map.shape
    idx = score_map.flatten(1).argmax(dim=1, keepdim=True)  # (B,1)
    iy = torch.div(idx, fw, rounding_mode="floor")
    ix = idx % fw
    gidx = idx.unsqueeze(1).expand(b, 2, 1)
    size = size_map.flatten(2).gather(2, gidx).squeeze(-1)
    offset = offset_map.flatten(2).gather(2, gidx).squeeze(-1)
    cx = (ix.to(score_map.dtype) + offset[:, :1]) / fw
    cy = (iy.to(score_map.dtype) + offset[:, 1:]) / fh
    return torch.cat([cx, cy, size], dim=1)
