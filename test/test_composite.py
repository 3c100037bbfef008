"""Pairs composed from a media bank: exact boxes, determinism, the bank loader's errors, the training data path."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dytrack_ros.config import ModelConfig
from dytrack_ros.data.composite import CompositeOptions, CompositePairs, MediaBank, make_object
from dytrack_ros.data.sequence import DatasetError
from dytrack_ros.train.config import DataConfig, DataSource
from dytrack_ros.train.pairs import PairDataset

PLAIN = CompositeOptions(photo_patch_prob=0.0, blur_prob=0.0, noise_prob=0.0, distractor_prob=0.0, clutter_prob=0.0,
                         occluder_prob=0.0, stripes_prob=0.0, gain_std=0.0, color_std=0.0, perspective=0.0,
                         frame_edge_prob=0.0)


def _bank_folder(root, n_bg=3, n_obj=4):
    rng = np.random.default_rng(0)
    entries = {"backgrounds": [], "objects": []}
    (root / "train" / "backgrounds").mkdir(parents=True)
    (root / "train" / "objects").mkdir(parents=True)
    for i in range(n_bg):
        img = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
        f = f"train/backgrounds/{i:04d}.jpg"
        cv2.imwrite(str(root / f), img)
        entries["backgrounds"].append({"file": f, "source": "test", "origin": "noise"})
    for i in range(n_obj):
        rgba = np.zeros((40 + 10 * i, 60, 4), np.uint8)
        cv2.ellipse(rgba, ((30, (40 + 10 * i) // 2), (56, 36 + 10 * i), 0), (0, 0, 0, 255), -1)
        rgba[..., :3] = 200
        f = f"train/objects/{i:04d}.png"
        cv2.imwrite(str(root / f), rgba)
        entries["objects"].append({"file": f, "source": "test", "origin": "ellipse"})
    (root / "manifest.json").write_text(json.dumps({"format_version": 1, "splits": {"train": entries}}))
    return root


def _uniform_bank(value=0):
    bg = np.full((480, 640, 3), value, np.uint8)
    rgba = np.zeros((50, 80, 4), np.uint8)
    rgba[..., :3] = 255
    cv2.ellipse(rgba, ((40, 25), (70, 40), 15), (255, 255, 255, 255), -1)
    from dytrack_ros.data.composite import _pyramid
    return MediaBank([_pyramid(bg)], [make_object("ellipse", rgba)])


@pytest.mark.parametrize("seed", range(6))
def test_box_is_the_tight_box_of_the_drawn_object(seed):
    pairs = CompositePairs(_uniform_bank(), PLAIN)
    out = pairs.sample(np.random.default_rng(seed), 64, 2.0, 128, 4.0, 3.0, 0.25)
    assert out is not None
    for (patch, box), size in zip(out, (64, 128)):
        ys, xs = np.nonzero(patch[..., 0] > 127)  # white object on black: pixels more than half covered
        assert xs.size > 0
        drawn = np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]) / size
        # the GT box is the hull of the alpha > 0.5 pixels: within a pixel (plus interpolation) of the drawn extent
        assert np.abs(drawn - box).max() * size < 1.6, (drawn * size, box * size)
    (_, t_box), _ = out
    # the template crop is centred on the box and 2x its sqrt(area)
    assert t_box[0] + 0.5 * t_box[2] == pytest.approx(0.5, abs=1e-6)
    assert np.sqrt(t_box[2] * t_box[3]) == pytest.approx(0.5, abs=1e-6)


def test_at_the_image_edge_crops_are_zero_padded_and_boxes_hold_the_visible_part():
    """frame_edge_prob 1: the world is barely larger than the target, so crops run past the image; there the
    pixels are exactly 0 (the tracker's padding), and the box is the drawn part inside the image."""
    from dataclasses import replace

    pairs = CompositePairs(_uniform_bank(60), replace(PLAIN, frame_edge_prob=1.0, min_size=60.0, max_size=180.0))
    padded = 0
    for seed in range(12):
        out = pairs.sample(np.random.default_rng(seed), 64, 2.0, 128, 4.0, 3.0, 0.25)
        if out is None:
            continue  # target mostly outside the image: skipped by min_visible
        for patch, box in out:
            size = patch.shape[0]
            zero = (patch == 0).all(axis=2)
            padded += int(zero.any())
            # padding comes in whole border rows / columns, never inside the image
            rows, cols = zero.all(axis=1), zero.all(axis=0)
            assert (zero == (rows[:, None] | cols[None, :])).all()
            ys, xs = np.nonzero(patch[..., 0] > 157)  # the white object on a grey (60) image
            if xs.size == 0:
                continue
            drawn = np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()])
            b = box * size  # the part of the box inside the crop is what can be seen drawn
            x0, y0 = np.clip(b[:2], 0, size)
            x1, y1 = np.clip(b[:2] + b[2:], 0, size)
            assert np.abs(drawn - [x0, y0, x1 - x0, y1 - y0]).max() < 1.6, (drawn, b)
    assert padded >= 6  # most search crops of a target at the image edge run past it


def test_same_generator_state_same_pair_and_options_change_the_scene():
    pairs = CompositePairs(_uniform_bank(30))
    a = pairs.sample(np.random.default_rng([3, 7]), 64, 2.0, 128, 4.0, 3.0, 0.25)
    b = pairs.sample(np.random.default_rng([3, 7]), 64, 2.0, 128, 4.0, 3.0, 0.25)
    c = pairs.sample(np.random.default_rng([3, 8]), 64, 2.0, 128, 4.0, 3.0, 0.25)
    assert np.array_equal(a[1][0], b[1][0]) and np.array_equal(a[1][1], b[1][1])
    assert not np.array_equal(a[1][0], c[1][0])


def test_options_are_validated():
    with pytest.raises(ValueError, match="blur_prob"):
        CompositeOptions(blur_prob=1.5)
    with pytest.raises(ValueError, match="min_size"):
        CompositeOptions(min_size=50, max_size=20)


def test_bank_loader_errors(tmp_path):
    with pytest.raises(DatasetError, match="media bank not found"):
        MediaBank.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a media bank manifest"):
        MediaBank.load(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"splits": {"train": {"backgrounds": []}}}))
    with pytest.raises(DatasetError, match="no split 'calib'"):
        MediaBank.load(tmp_path, "calib")
    with pytest.raises(DatasetError, match="no backgrounds"):
        MediaBank.load(tmp_path, "train")
    (tmp_path / "manifest.json").write_text(json.dumps({"splits": {"train": {"backgrounds": [{"name": "a.jpg"}]}}}))
    with pytest.raises(DatasetError, match="manifest.json: split 'train' is not a list"):
        MediaBank.load(tmp_path, "train")


def test_pair_dataset_from_a_composite_source(tmp_path):
    root = _bank_folder(tmp_path / "bank")
    bank = MediaBank.load(root)
    assert len(bank.backgrounds) == 3 and len(bank.objects) == 4
    mcfg = ModelConfig(template_size=64, search_size=128, embed_dim=64, depth=2, num_heads=2)
    cfg = DataConfig(sources=(DataSource(format="composite", root=str(root), split="train",
                                         options={"blur_prob": 0.5}),), samples_per_epoch=8)
    ds = PairDataset.from_config(cfg, mcfg, seed=1)
    item = ds[(0, 3)]
    assert item["template"].shape == (3, 64, 64) and item["search"].shape == (3, 128, 128)
    assert item["heatmap"].shape == (8, 8)
    x, y, w, h = item["search_box"].tolist()
    assert 0 <= x + w / 2 < 1 and 0 <= y + h / 2 < 1 and w > 0 and h > 0
    assert np.array_equal(ds[(0, 3)]["search"].numpy(), item["search"].numpy())  # a pure function of (epoch, index)
    bad = DataConfig(sources=(DataSource(format="composite", root=str(root), options={"nope": 1}),))
    with pytest.raises(DatasetError, match="bad options"):
        PairDataset.from_config(bad, mcfg)
