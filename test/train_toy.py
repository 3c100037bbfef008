"""A tiny synthetic-sequence writer for the training tests (GOT-10k layout, exact boxes).

A textured object moves over a smooth random background; frames are PNG so
the pixels the sampler reads are exactly the ones written.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_toy_got10k(root: Path, num_sequences: int = 3, frames: int = 12, size: tuple[int, int] = (240, 180),
                     seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    W, H = size
    split = Path(root) / "train"
    split.mkdir(parents=True, exist_ok=True)
    names = []
    for s in range(num_sequences):
        name = f"TOY_{s:04d}"
        names.append(name)
        d = split / name
        d.mkdir(exist_ok=True)
        bg = cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
        ow, oh = int(rng.integers(24, 48)), int(rng.integers(24, 48))
        obj = cv2.resize(rng.integers(0, 255, (4, 4, 3), dtype=np.uint8), (ow, oh), interpolation=cv2.INTER_NEAREST)
        x, y = float(rng.uniform(10, W - ow - 10)), float(rng.uniform(10, H - oh - 10))
        vx, vy = rng.uniform(-4, 4, 2)
        boxes = []
        for f in range(frames):
            x = float(np.clip(x + vx, 0, W - ow))
            y = float(np.clip(y + vy, 0, H - oh))
            img = bg.copy()
            xi, yi = int(round(x)), int(round(y))
            img[yi:yi + oh, xi:xi + ow] = obj
            cv2.imwrite(str(d / f"{f + 1:08d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            boxes.append((xi, yi, ow, oh))
        np.savetxt(d / "groundtruth.txt", np.asarray(boxes), fmt="%d", delimiter=",")
    (split / "list.txt").write_text("\n".join(names) + "\n")
    return Path(root)
