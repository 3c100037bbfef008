"""Decode the head's maps into an image-space box, as OSTrack's tracker does."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=8)
def hann_window(size: int) -> np.ndarray:
    """Centred 2-D Hann window (OSTrack ``hann2d(centered=True)``), float32 (size, size)."""
    k = np.arange(1, size + 1, dtype=np.float32)
    w1 = (0.5 * (1.0 - np.cos((2.0 * math.pi / (size + 1)) * k))).astype(np.float32)
    win = np.outer(w1, w1).astype(np.float32)
    win.setflags(write=False)
    return win


def decode(score_map: np.ndarray, size_map: np.ndarray, offset_map: np.ndarray,
           use_window: bool = True) -> tuple[np.ndarray, float]:
    """Maps (1,1,F,F), (1,2,F,F), (1,2,F,F) -> normalised (cx, cy, w, h) in the crop, and confidence.

    The argmax is taken on the Hann-windowed response; the confidence is the
    maximum of the *un-windowed* score map (OSTrack has none; ours).
    """
    score = score_map.reshape(score_map.shape[-2], score_map.shape[-1]).astype(np.float32, copy=False)
    f = score.shape[-1]
    response = score * hann_window(f) if use_window else score
    idx = int(np.argmax(response))
    iy, ix = divmod(idx, f)
    sizes = size_map.reshape(2, -1)[:, idx].astype(np.float32)
    offs = offset_map.reshape(2, -1)[:, idx].astype(np.float32)
    cx = (np.float32(ix) + offs[0]) / np.float32(f)
    cy = (np.float32(iy) + offs[1]) / np.float32(f)
    return np.array([cx, cy, sizes[0], sizes[1]], dtype=np.float32), float(score.max())


def map_box_back(box_cxcywh_norm: np.ndarray, prev_box_xywh, crop_size: float) -> tuple[float, float, float, float]:
    """Normalised crop box -> image (x, y, w, h) around the previous box centre.

    ``crop_size`` = search size / resize factor. The scaling is done in float32
    (as OSTrack does on its float32 tensor), the rest in double; the crop
    origin's rounding is ignored, as in OSTrack.
    """
    scaled = np.asarray(box_cxcywh_norm, dtype=np.float32) * np.float32(crop_size)
    cx, cy, w, h = (float(v) for v in scaled)
    px, py, pw, ph = (float(v) for v in prev_box_xywh)
    half = 0.5 * crop_size
    cx_img = cx + (px + 0.5 * pw - half)
    cy_img = cy + (py + 0.5 * ph - half)
    return (cx_img - 0.5 * w, cy_img - 0.5 * h, w, h)


def clip_box(box_xywh, height: int, width: int, margin: int = 10) -> tuple[float, float, float, float]:
    """OSTrack ``clip_box``: keep at least ``margin`` pixels of the box inside the image.

    On an image narrower (lower) than ``margin`` the margin shrinks to the image's width (height):
    OSTrack's formula would put the box partly outside, e.g. x = -9 on a 1-pixel-wide image.
    """
    mx, my = min(margin, width), min(margin, height)
    x1, y1, w, h = box_xywh
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0, x1), width - mx)
    x2 = min(max(mx, x2), width)
    y1 = min(max(0, y1), height - my)
    y2 = min(max(my, y2), height)
    w = max(mx, x2 - x1)
    h = max(my, y2 - y1)
    return (x1, y1, w, h)


def update_size(pred_xywh, prev_xywh, lr: float = 1.0, max_ratio: float = 0.0) -> tuple[float, float, float, float]:
    """The predicted box with its size moved from ``prev_xywh`` towards the prediction, centre kept.

    Width and height each become ``old + lr * (pred - old)`` and then change by at most the factor
    ``max_ratio`` (0: unbounded) from the old size. Why: the search region is a multiple of the last box, so an
    over-estimated size widens the next crop, makes the target smaller in it and is over-estimated again; a
    bounded, smoothed size keeps that loop from running away (SiamFC/SiamRPN smooth the size the same way).
    """
    x, y, w, h = (float(v) for v in pred_xywh)
    pw, ph = float(prev_xywh[2]), float(prev_xywh[3])
    cx, cy = x + 0.5 * w, y + 0.5 * h
    new = []
    for old, pred in ((pw, w), (ph, h)):
        size = old + lr * (pred - old)
        if max_ratio > 0:
            size = min(max(size, old / max_ratio), old * max_ratio)
        new.append(size)
    nw, nh = new
    return (cx - 0.5 * nw, cy - 0.5 * nh, nw, nh)


def box_iou(a, b) -> float:
    """IoU of two (x, y, w, h) boxes, in plain floats (called per exit per frame: no array overhead)."""
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = min(ax + aw, bx + bw) - max(ax, bx)
    ih = min(ay + ah, by + bh) - max(ay, by)
    if iw <= 0.0 or ih <= 0.0:
        return 0.0
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0.0 else 0.0
