"""A sequence whose target vanishes and comes back far away, with exact ground truth.

A real photo crop (the cat face) on a smooth low-contrast noise background: the
target moves right for 15 frames, is absent for 15 frames (nothing resembling
it in the frame), then reappears at the opposite corner, farther from where it
vanished than the largest enlarged search region reaches.
"""
from __future__ import annotations

import cv2
import numpy as np

from dytrack_ros.data.synth import load_photo_library

VISIBLE_UNTIL = 15  # frames 0..14 show the target
RETURNS_AT = 30  # frames 30.. show it again, at RETURN_XY
RETURN_XY = (520, 260)


def vanish_frames(frames: int = 50, size: tuple[int, int] = (640, 360), side: int = 40
                  ) -> tuple[list[np.ndarray], np.ndarray]:
    """(RGB frames, GT boxes x,y,w,h with 0,0,0,0 on absent frames)."""
    width, height = size
    rng = np.random.default_rng(5)
    noise = cv2.resize(rng.normal(0, 1, (height // 8, width // 8)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    background = np.repeat(np.clip(110 + 12 * noise, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    face = next(p for p in load_photo_library().targets if p.name == "cat_face").rgb
    target = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    out, gt = [], []
    for t in range(frames):
        frame = background.copy()
        if t < VISIBLE_UNTIL:
            x, y = 80 + 2 * t, 100
        elif t >= RETURNS_AT:
            x, y = RETURN_XY
        else:
            out.append(frame)
            gt.append((0.0, 0.0, 0.0, 0.0))
            continue
        frame[y:y + side, x:x + side] = target
        out.append(frame)
        gt.append((float(x), float(y), float(side), float(side)))
    return out, np.array(gt)
