"""Crop -> decode -> map-back geometry, exactly as OSTrack's test-time code computes it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dytrack_ros.tracker.postprocess import clip_box, decode, hann_window, map_box_back
from dytrack_ros.tracker.preprocess import normalize, sample_target


def test_crop_size_and_resize_factor():
    frame = np.zeros((480, 640, 3), np.uint8)
    crop = sample_target(frame, (300, 120, 126, 250), 4.0, 256)
    assert crop.crop_size == math.ceil(math.sqrt(126 * 250) * 4.0) == 710
    assert crop.patch.shape == (256, 256, 3)
    assert crop.resize_factor == pytest.approx(256 / 710)


def test_crop_inside_image_is_plain_resize():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)
    # box centred at (100, 100), crop side 64 -> region [68, 132) fully inside
    crop = sample_target(frame, (92, 92, 16, 16), 4.0, 64)
    assert crop.crop_size == 64
    np.testing.assert_array_equal(crop.patch, frame[68:132, 68:132])


def test_right_bottom_padding_quirk_zeroes_last_column_and_row():
    """OSTrack pads with x2 - W + 1: a crop ending exactly at the border loses the last image column/row."""
    frame = np.full((100, 100, 3), 200, np.uint8)
    # crop side 20 (w*h=25, factor 4), centred so that x2 == W and y2 == H exactly
    crop = sample_target(frame, (87.5, 87.5, 5, 5), 4.0, 20)
    assert crop.crop_size == 20
    assert (crop.patch[:, -1] == 0).all() and (crop.patch[-1, :] == 0).all()
    assert (crop.patch[:-1, :-1] == 200).all()


def test_crop_outside_left_top_is_zero_padded():
    frame = np.full((50, 50, 3), 255, np.uint8)
    crop = sample_target(frame, (0, 0, 10, 10), 4.0, 40)  # side 40 centred at (5,5): x1 = y1 = -15
    assert (crop.patch[:15, :] == 0).all() and (crop.patch[:, :15] == 0).all()
    assert (crop.patch[15:, 15:] == 255).all()


def test_crop_entirely_outside_is_all_zero():
    frame = np.full((50, 50, 3), 255, np.uint8)
    crop = sample_target(frame, (400, 400, 10, 10), 4.0, 32)
    assert crop.patch.shape == (32, 32, 3) and not crop.patch.any()


def test_half_is_rounded_to_even_like_python():
    frame = np.arange(100 * 100 * 3, dtype=np.uint32).reshape(100, 100, 3).astype(np.uint8)
    # x + w/2 - crop/2 = 18.5 + 2 - 8 = 12.5 -> round-half-even gives 12 (round-half-up would give 13)
    crop = sample_target(frame, (18.5, 18.5, 4, 4), 4.0, 16)
    assert crop.crop_size == 16
    np.testing.assert_array_equal(crop.patch, frame[12:28, 12:28])
    # 13.5 rounds to 14 (even), not 13
    crop = sample_target(frame, (19.5, 19.5, 4, 4), 4.0, 16)
    np.testing.assert_array_equal(crop.patch, frame[14:30, 14:30])


def _maps_with_peak(f: int, iy: int, ix: int, off=(0.0, 0.0), size=(0.25, 0.5)):
    score = np.full((1, 1, f, f), 0.01, np.float32)
    score[0, 0, iy, ix] = 0.9
    size_map = np.zeros((1, 2, f, f), np.float32)
    size_map[0, :, iy, ix] = size
    offset = np.zeros((1, 2, f, f), np.float32)
    offset[0, :, iy, ix] = off
    return score, size_map, offset


def test_box_at_crop_centre_maps_back_to_previous_centre():
    """A prediction exactly at the crop centre keeps the previous centre (the crop is centred on it)."""
    f = 16
    score, size, offset = _maps_with_peak(f, 8, 8)  # cell 8 + offset 0 -> 8/16 = 0.5 = centre
    box_norm, conf = decode(score, size, offset)
    assert conf == pytest.approx(0.9)
    np.testing.assert_allclose(box_norm, [0.5, 0.5, 0.25, 0.5])
    prev = (300.0, 120.0, 126.0, 250.0)
    crop_size = 710.0
    x, y, w, h = map_box_back(box_norm, prev, crop_size)
    assert x + w / 2 == pytest.approx(prev[0] + prev[2] / 2, abs=1e-6)
    assert y + h / 2 == pytest.approx(prev[1] + prev[3] / 2, abs=1e-6)
    assert (w, h) == pytest.approx((0.25 * crop_size, 0.5 * crop_size))


def test_offset_moves_box_by_crop_pixels():
    score, size, offset = _maps_with_peak(16, 8, 10, off=(0.5, 0.25))
    box_norm, _ = decode(score, size, offset)
    prev = (100.0, 100.0, 50.0, 50.0)
    x, y, w, h = map_box_back(box_norm, prev, 320.0)
    # centre moves by ((10.5 - 8)/16 * 320, (8.25 - 8)/16 * 320) = (50, 5)
    assert x + w / 2 == pytest.approx(125 + 50)
    assert y + h / 2 == pytest.approx(125 + 5)


def test_hann_window_values_and_argmax_uses_it():
    win = hann_window(16)
    assert win.dtype == np.float32
    assert win[0, 0] == pytest.approx(0.0338 ** 2, rel=0.01)
    assert win.max() == pytest.approx(0.983, abs=1e-3)
    # a stronger raw peak at the border loses to a weaker central one after windowing
    score = np.full((1, 1, 16, 16), 0.01, np.float32)
    score[0, 0, 0, 0] = 0.95
    score[0, 0, 8, 8] = 0.6
    zeros = np.zeros((1, 2, 16, 16), np.float32)
    box, conf = decode(score, zeros, zeros)
    assert box[0] == pytest.approx(0.5) and conf == pytest.approx(0.95)  # confidence is un-windowed
    box_nowin, _ = decode(score, zeros, zeros, use_window=False)
    assert box_nowin[0] == pytest.approx(0.0)


@pytest.mark.parametrize("box, expected", [
    ((-30.0, -20.0, 50.0, 40.0), (0.0, 0.0, 20.0, 20.0)),      # clipped at top-left
    ((620.0, 470.0, 50.0, 40.0), (620.0, 470.0, 20.0, 10.0)),  # clipped at bottom-right
    ((700.0, 500.0, 20.0, 20.0), (630.0, 470.0, 10.0, 10.0)),  # fully outside: margin box inside
    ((100.0, 100.0, 2.0, 2.0), (100.0, 100.0, 10.0, 10.0)),    # minimum size = margin
    ((10.0, 20.0, 30.0, 40.0), (10.0, 20.0, 30.0, 40.0)),      # inside: unchanged
])
def test_clip_box(box, expected):
    assert clip_box(box, 480, 640, margin=10) == pytest.approx(expected)


def test_normalize_matches_imagenet_formula():
    rng = np.random.default_rng(3)
    patch = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    ref = ((patch.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None]
    out = normalize(patch)
    assert out.shape == (1, 3, 32, 32) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(out, ref, atol=1e-6)
