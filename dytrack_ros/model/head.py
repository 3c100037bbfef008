"""OSTrack CENTER head: score (centre), offset and size maps on the search grid."""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=True), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


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


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = (conv.bias - bn.running_mean) * scale + bn.bias
    return weight, bias


class FusedCenterHead(nn.Module):
    """Inference-only equivalent of a :class:`CenterHead` (outputs equal to float32 rounding).

    BatchNorm is folded into each conv, and the three towers run as one conv
    stack: the first layer as a single conv with 3x the output channels, the
    later layers as grouped convs (groups=3), the 1x1 outputs as one grouped
    conv. Fewer, larger kernels are markedly faster on CPU for small heads.
    """

    def __init__(self, head: CenterHead) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        with torch.no_grad():
            for i in range(1, 5):
                folded = [_fold_bn(*getattr(head, f"conv{i}_{b}")[:2]) for b in CenterHead.BRANCHES]
                w = torch.cat([f[0] for f in folded], 0)
                conv = nn.Conv2d(w.shape[1] * (1 if i == 1 else 3), w.shape[0], 3, padding=1, groups=1 if i == 1 else 3)
                conv.weight.copy_(w)
                conv.bias.copy_(torch.cat([f[1] for f in folded], 0))
                layers += [conv, nn.ReLU(inplace=True)]
            c = head.conv5_ctr.weight.shape[1]
            last = nn.Conv2d(3 * c, 6, 1, groups=3)  # channels: ctr, (unused), offset x/y, size w/h
            last.weight.zero_()
            last.bias.zero_()
            for sl, conv5 in ((slice(0, 1), head.conv5_ctr), (slice(2, 4), head.conv5_offset),
                              (slice(4, 6), head.conv5_size)):
                last.weight[sl] = conv5.weight
                last.bias[sl] = conv5.bias
        self.body = nn.Sequential(*layers, last)
        self.to(head.conv5_ctr.weight.device)
        self.eval()

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.body(feat)
        score = torch.clamp(torch.sigmoid(out[:, 0:1]), 1e-4, 1 - 1e-4)
        size = torch.clamp(torch.sigmoid(out[:, 4:6]), 1e-4, 1 - 1e-4)
        return score, size, out[:, 2:4]
