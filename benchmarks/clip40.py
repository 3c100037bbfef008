"""The 40-frame clip the precision and GPU checks track: same frames on every machine.

A synthetic *easy* sequence composed from scikit-image's bundled photographs
(``dytrack_ros.data.synth``, seed 41: not a training or held-out seed), 640x480.
Where scikit-image is missing (e.g. a GPU machine with only torch preinstalled)
a numpy-only fallback is used: a textured target moving over a textured
background. The returned ``source`` says which one was used, so results from
two machines are only compared when it matches.
"""
from __future__ import annotations

import numpy as np

CLIP_FRAMES = 40
CLIP_SEED = 41
CLIP_SIZE = (640, 480)


def _fallback_clip(n: int, size: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    w, h = size
    rng = np.random.default_rng(CLIP_SEED)
    bg = (rng.integers(0, 120, (h // 8, w // 8, 3)).repeat(8, 0).repeat(8, 1)).astype(np.uint8)
    target = rng.integers(120, 256, (60, 80, 3), dtype=np.uint8)
    target[20:40, 20:60] = (230, 40, 40)
    frames, gt = [], []
    for t in range(n):
        x, y = int(200 + 4 * t), int(180 + 2 * np.sin(t / 5) * 10)
        f = bg.copy()
        f[y:y + 60, x:x + 80] = target
        frames.append(f)
        gt.append((x, y, 80, 60))
    return frames, np.asarray(gt, np.float64)


def make_clip(n: int = CLIP_FRAMES, size: tuple[int, int] = CLIP_SIZE) -> tuple[list[np.ndarray], np.ndarray, str]:
    """(RGB frames, ground-truth boxes x,y,w,h, source name)."""
    try:
        from dytrack_ros.data.synth import generate_sequence

        seq = generate_sequence(0, "easy", seed=CLIP_SEED, frames=n, size=size)
        return seq.frames, np.asarray(seq.gt, np.float64), f"synth easy seed {CLIP_SEED}"
    except ImportError:  # scikit-image (the photos) not installed
        frames, gt = _fallback_clip(n, size)
        return frames, gt, "numpy fallback (scikit-image missing)"


def track_clip(backend, frames: list[np.ndarray], init_box) -> np.ndarray:
    """Boxes (N-1, 4) the product's Tracker reports for frames 1.. after initialising on frame 0."""
    from dytrack_ros.tracker import Tracker

    tracker = Tracker(backend)
    tracker.initialize(frames[0], tuple(float(v) for v in init_box))
    return np.asarray([tracker.track(f).box for f in frames[1:]], np.float64)


def max_box_diff_px(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference of any box corner coordinate between two runs, in pixels."""
    ca = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:]], axis=1)
    cb = np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    return float(np.max(np.abs(ca - cb)))
