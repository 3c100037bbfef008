"""Crop, resize and normalise exactly as OSTrack's ``sample_target`` + Preprocessor.

Frames are RGB uint8 arrays (H, W, 3). Convert BGR at the edges (OpenCV I/O,
ROS bgr8 images) before calling anything here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# (x/255 - mean)/std == x * scale + shift, folded once
_SCALE = (1.0 / (255.0 * STD)).astype(np.float32)
_SHIFT = (-MEAN / STD).astype(np.float32)


@dataclass(frozen=True)
class Crop:
    """A square crop of side ``crop_size`` resized to ``output_size`` (image pixels -> crop pixels)."""

    patch: np.ndarray  # (S, S, 3) uint8
    crop_size: int
    output_size: int

    @property
    def resize_factor(self) -> float:
        return self.output_size / self.crop_size


def crop_square(frame: np.ndarray, box_xywh, factor: float) -> tuple[np.ndarray, int]:
    """The zero-padded square region of side ceil(sqrt(w*h)*factor) centred on the box, at image resolution.

    Reproduces OSTrack including its right/bottom ``+1`` padding quirk: when the
    crop reaches the right (bottom) image edge, the last image column (row) is
    replaced by zeros. Rounding of the crop origin is Python's round-half-even.
    Returns (region, crop side in pixels).
    """
    roi, (x1_pad, y1_pad, x2_pad, y2_pad), crop_sz = _image_part(frame, box_xywh, factor)
    if x1_pad or y1_pad or x2_pad or y2_pad:
        if roi.size == 0:  # crop entirely outside the image: all zeros
            return np.zeros((crop_sz, crop_sz, frame.shape[2]), dtype=frame.dtype), crop_sz
        return cv2.copyMakeBorder(roi, y1_pad, y2_pad, x1_pad, x2_pad, cv2.BORDER_CONSTANT), crop_sz
    return roi, crop_sz


def resize_square(region: np.ndarray, output_size: int) -> np.ndarray:
    """Bilinear resize (OpenCV's default) of a square region to ``output_size`` pixels."""
    return cv2.resize(region, (output_size, output_size))


# Largest crop side materialised at image resolution (4096^2 x 3 bytes = 48 MiB). The crop side grows with
# the box (search factor 4: a 8000 px box asked for a 32000 px, 3 GB crop, mostly zero padding); above this
# side the output patch is sampled straight from the image instead (:func:`sample_square`).
MAX_EXACT_CROP_SIDE = 4096


def crop_geometry(frame_shape: tuple[int, ...], box_xywh, factor: float) -> tuple[int, int, int]:
    """(x1, y1, crop side) of the square crop :func:`crop_square` takes, without allocating it."""
    x, y, w, h = (float(v) for v in box_xywh)
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    if crop_sz < 1:
        raise ValueError(f"box {tuple(box_xywh)} too small to crop")
    return round(x + 0.5 * w - crop_sz * 0.5), round(y + 0.5 * h - crop_sz * 0.5), crop_sz


def _image_part(frame: np.ndarray, box_xywh, factor: float) -> tuple[np.ndarray, tuple[int, int, int, int], int]:
    """The part of the image inside the square crop (a view), the zero padding on each side (left, top, right,
    bottom; the right/bottom ``+1`` quirk included) and the crop side."""
    x1, y1, crop_sz = crop_geometry(frame.shape, box_xywh, factor)
    H, W = frame.shape[:2]
    x2, y2 = x1 + crop_sz, y1 + crop_sz
    pads = (max(0, -x1), max(0, -y1), max(x2 - W + 1, 0), max(y2 - H + 1, 0))
    roi = frame[y1 + pads[1]:y2 - pads[3], x1 + pads[0]:x2 - pads[2]]
    return roi, pads, crop_sz


def sample_square(frame: np.ndarray, box_xywh, factor: float, output_size: int) -> Crop:
    """:func:`sample_target` without the image-resolution crop: memory O(output + image), whatever the box.

    Each output pixel is sampled bilinearly at the position ``cv2.resize`` of the padded crop would
    sample, from the same image region (the right/bottom ``+1`` padding quirk included), with zeros
    outside it; pixel values can differ from the exact path by rounding (OpenCV's fixed-point
    interpolation), not by position. Meant for crops larger than the output (downscaling), the only case
    :func:`sample_target` uses it for: when upscaling, ``cv2.resize`` repeats the crop's edge pixels where
    this samples zeros.
    """
    roi, (x1_pad, y1_pad, _, _), crop_sz = _image_part(frame, box_xywh, factor)
    if roi.size == 0:
        return Crop(np.zeros((output_size, output_size, frame.shape[2]), frame.dtype), crop_sz, output_size)
    k = crop_sz / output_size  # crop pixels per output pixel
    # output pixel d samples the padded crop at (d + 0.5) * k - 0.5, i.e. the region at that minus its offset
    to_roi = np.array([[k, 0.0, 0.5 * k - 0.5 - x1_pad], [0.0, k, 0.5 * k - 0.5 - y1_pad]], dtype=np.float64)
    patch = cv2.warpAffine(np.ascontiguousarray(roi), to_roi, (output_size, output_size),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    return Crop(patch, crop_sz, output_size)


def sample_target(frame: np.ndarray, box_xywh, factor: float, output_size: int) -> Crop:
    """OSTrack's ``sample_target``: :func:`crop_square` then :func:`resize_square`; crops larger than
    :data:`MAX_EXACT_CROP_SIDE` go through :func:`sample_square` (bounded memory)."""
    if crop_geometry(frame.shape, box_xywh, factor)[2] > MAX_EXACT_CROP_SIDE:
        return sample_square(frame, box_xywh, factor, output_size)
    region, crop_sz = crop_square(frame, box_xywh, factor)
    return Crop(resize_square(region, output_size), crop_sz, output_size)


def normalize(patch: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 RGB -> new (1, 3, S, S) float32 array, ImageNet mean/std.

    One fused uint8->float32 multiply into the output, then an in-place add
    (``x*scale + shift`` with the constants folded): ~6x faster than astype +
    arithmetic + transposed copy, and within 5e-7 of OSTrack's
    ``(x/255 - mean)/std`` (float32 rounding of the folded constants).
    """
    chw = np.ascontiguousarray(patch.transpose(2, 0, 1))
    out = np.empty((1,) + chw.shape, dtype=np.float32)
    np.multiply(chw, _SCALE[:, None, None], out=out[0], dtype=np.float32, casting="unsafe")
    out[0] += _SHIFT[:, None, None]
    return out
