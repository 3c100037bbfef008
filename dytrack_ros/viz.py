"""Annotation of tracking results on frames (CLI videos, ROS debug image, demo)."""
from __future__ import annotations

from collections import Counter

import cv2
import numpy as np

# BGR-free: colours are RGB because frames in the core are RGB.
STATUS_COLOURS = {"tracking": (40, 200, 40), "uncertain": (240, 180, 0), "lost": (230, 40, 40),
                  "searching": (200, 40, 200), "redetected": (40, 200, 220), "idle": (160, 160, 160)}


def draw_result(frame_rgb: np.ndarray, box_xywh, status: str, score: float, exit_layer: int, num_layers: int,
                extra: str = "", copy: bool = True) -> np.ndarray:
    """Draw box, status, score and exit layer on an RGB uint8 frame (returns the drawn frame)."""
    img = frame_rgb.copy() if copy else frame_rgb
    colour = STATUS_COLOURS.get(status, (255, 255, 255))
    h_img, w_img = img.shape[:2]
    thick = max(2, round(min(h_img, w_img) / 240))
    if box_xywh is not None:
        x, y, w, h = (int(round(v)) for v in box_xywh)
        cv2.rectangle(img, (x, y), (x + w, y + h), colour, thick)
    label = f"{status} {score:.2f} exit {exit_layer}/{num_layers}" + (f" {extra}" if extra else "")
    scale = max(0.45, min(h_img, w_img) / 800)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (0, 0), (tw + 10, th + base + 10), (0, 0, 0), -1)
    cv2.putText(img, label, (5, th + 5), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    # exit-depth bar on the right edge: filled fraction = executed layers / total layers
    if num_layers > 0:
        bar_h = int(h_img * 0.3)
        filled = int(bar_h * min(max(exit_layer, 0), num_layers) / num_layers)
        x0 = w_img - 14
        cv2.rectangle(img, (x0, h_img - bar_h - 6), (x0 + 8, h_img - 6), (80, 80, 80), 1)
        cv2.rectangle(img, (x0, h_img - 6 - filled), (x0 + 8, h_img - 6), colour, -1)
    return img


def format_histogram(counts: Counter, total_layers: int) -> str:
    """One line per exit layer: 'layer  frames  share  bar'."""
    n = sum(counts.values()) or 1
    lines = []
    for layer in sorted(counts):
        share = counts[layer] / n
        lines.append(f"  layer {layer:>2}/{total_layers}: {counts[layer]:>6} frames {share:6.1%} "
                     f"{'#' * int(round(share * 40))}")
    return "\n".join(lines)
