"""A generated sequence with known ground truth: a bright square moving over a textured background."""
from __future__ import annotations

import numpy as np


def moving_square_frames(n: int = 12, size=(240, 320), box=(100, 80, 40, 30), step=(3, 2), seed: int = 0):
    """Textured background with a bright square moving by ``step`` px/frame; returns (frames, gt boxes)."""
    rng = np.random.default_rng(seed)
    h, w = size
    bg = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    frames, gts = [], []
    x, y, bw, bh = box
    for i in range(n):
        f = bg.copy()
        xi, yi = int(x + i * step[0]), int(y + i * step[1])
        f[yi:yi + bh, xi:xi + bw] = (230, 60, 60)
        frames.append(f)
        gts.append((xi, yi, bw, bh))
    return frames, gts
