"""Pair sampler: determinism (workers, ranks), crop geometry against pixels, jitter statistics, gaps, COCO."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from train_toy import write_toy_got10k

from dytrack_ros.config import ModelConfig
from dytrack_ros.data.sequence import DatasetError, Sequence
from dytrack_ros.tracker.preprocess import sample_target
from dytrack_ros.train.config import DataConfig, DataSource
from dytrack_ros.train.pairs import (
    EpochSampler,
    PairDataset,
    PairSamplingError,
    box_in_crop,
    jitter_box,
    load_coco,
    load_source,
)

pytestmark = pytest.mark.train

MCFG = ModelConfig(name="t", embed_dim=32, depth=2, num_heads=2, head_channels=16, template_size=64, search_size=128)


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return write_toy_got10k(tmp_path_factory.mktemp("toy"), num_sequences=3, frames=10, seed=1)


def _dataset(root, **kw) -> PairDataset:
    cfg = DataConfig(sources=(DataSource("got10k", str(root), "train"),), samples_per_epoch=16, **kw)
    return PairDataset.from_config(cfg, MCFG, seed=3)


def test_items_are_a_function_of_seed_epoch_index(toy_root):
    ds = _dataset(toy_root)
    a, b = ds[(0, 5)], ds[(0, 5)]
    for k in a:
        assert torch.equal(a[k], b[k])
    assert not torch.equal(ds[(0, 5)]["search"], ds[(1, 5)]["search"])
    assert not torch.equal(ds[(0, 5)]["search"], ds[(0, 6)]["search"])
    item = ds[(0, 0)]
    assert item["template"].shape == (3, 64, 64) and item["search"].shape == (3, 128, 128)
    assert item["heatmap"].shape == (8, 8) and float(item["heatmap"].max()) == 1.0


def test_worker_processes_give_identical_batches(toy_root):
    ds = _dataset(toy_root)
    batches = []
    for workers in (0, 2):
        sampler = EpochSampler(len(ds), 4)
        sampler.set_epoch(2)
        batches.append([b["search"] for b in DataLoader(ds, batch_size=4, sampler=sampler, num_workers=workers)])
    assert len(batches[0]) == 4
    assert all(torch.equal(x, y) for x, y in zip(*batches))


def test_sampler_splits_ranks_and_resumes():
    s0, s1 = EpochSampler(20, 3, 0, 2), EpochSampler(20, 3, 1, 2)
    assert s0.steps_per_epoch == 3
    i0, i1 = [i for _, i in s0], [i for _, i in s1]
    assert i0 == [0, 2, 4, 6, 8, 10, 12, 14, 16] and i1 == [1, 3, 5, 7, 9, 11, 13, 15, 17]
    s0.set_epoch(4, position=6)
    assert list(s0) == [(4, 12), (4, 14), (4, 16)] and len(s0) == 3
    with pytest.raises(PairSamplingError):
        EpochSampler(5, 3, 0, 2)


def test_search_box_matches_the_object_pixels(tmp_path):
    """Without jitter/augmentation the returned box must frame exactly the pasted object in the crop."""
    H, W = 240, 320
    frame = np.full((H, W, 3), 40, np.uint8)
    gt = np.array([150.0, 90.0, 40.0, 30.0])
    frame[90:120, 150:190] = (250, 10, 10)
    jb = jitter_box(gt, 3.0, 0.25, np.random.default_rng(0))
    patch = sample_target(frame, jb, 4.0, 128).patch
    box = box_in_crop(gt, jb, 4.0, 128) * 128
    x0, y0, x1, y1 = box[0], box[1], box[0] + box[2], box[1] + box[3]
    red = (patch[:, :, 0] > 150) & (patch[:, :, 1] < 80)
    ys, xs = np.nonzero(red)
    assert abs(xs.min() - x0) <= 1.5 and abs(xs.max() + 1 - x1) <= 1.5
    assert abs(ys.min() - y0) <= 1.5 and abs(ys.max() + 1 - y1) <= 1.5


def test_unjittered_template_is_centred(toy_root):
    ds = _dataset(toy_root, flip_prob=0.0)
    box = ds[(0, 1)]["template_box"].numpy()
    assert box[0] + box[2] / 2 == pytest.approx(0.5, abs=1 / 64)
    assert box[1] + box[3] / 2 == pytest.approx(0.5, abs=1 / 64)
    assert math.sqrt(box[2] * box[3]) == pytest.approx(0.5, abs=0.02)  # factor 2: target = half the crop side


def test_jitter_statistics_follow_the_ostrack_recipe():
    rng = np.random.default_rng(0)
    box = np.array([100.0, 100.0, 40.0, 40.0])
    js = np.stack([jitter_box(box, 3.0, 0.25, rng) for _ in range(4000)])
    log_scale = np.log(js[:, 2:] / 40.0)
    assert log_scale.std() == pytest.approx(0.25, rel=0.06) and abs(log_scale.mean()) < 0.02
    off = (js[:, :2] + js[:, 2:] / 2 - 120.0) / np.sqrt(js[:, 2:3] * js[:, 3:4])
    assert np.abs(off).max() <= 1.5 + 1e-9  # (U - 0.5) * 3
    assert off.std() == pytest.approx(3 / math.sqrt(12), rel=0.05)
    assert np.array_equal(jitter_box(box, 0.0, 0.0, rng), box)


def test_max_gap_and_visibility(toy_root):
    ds = _dataset(toy_root, max_gap=2)
    seq = ds.sources[0][0]
    usable = np.array([0, 1, 2, 5, 6, 9])
    rng = np.random.default_rng(0)
    for _ in range(300):
        t, s = ds._pick_frames(seq, usable, rng)
        assert t in usable and s in usable
        assert abs(s - t) <= 2
        if t in (0, 1, 5):
            assert s > t  # causal when a later frame is within the gap
    assert ds._pick_frames(seq, np.array([4]), rng) == (4, 4)


def test_dataset_ratios(toy_root, tmp_path):
    other = write_toy_got10k(tmp_path / "b", num_sequences=2, frames=6, seed=9)
    cfg = DataConfig(sources=(DataSource("got10k", str(toy_root), "train", weight=3.0),
                              DataSource("got10k", str(other), "train", weight=1.0)), samples_per_epoch=400,
                     flip_prob=0.0)
    ds = PairDataset.from_config(cfg, MCFG, seed=0)
    rng_share = np.mean([int(ds[(0, i)]["source"]) == 0 for i in range(200)])
    assert rng_share == pytest.approx(0.75, abs=0.09)


def test_coco_pseudo_sequences(tmp_path):
    img_dir = tmp_path / "images" / "train2017"
    img_dir.mkdir(parents=True)
    img = np.zeros((200, 300, 3), np.uint8)
    img[50:150, 100:220] = 200
    cv2.imwrite(str(img_dir / "a.jpg"), img)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"id": 10, "image_id": 1, "bbox": [100, 50, 120, 100], "iscrowd": 0},
                        {"id": 11, "image_id": 1, "bbox": [0, 0, 300, 200], "iscrowd": 1},
                        {"id": 12, "image_id": 1, "bbox": [5, 5, 20, 20], "iscrowd": 0}]}))
    seqs = load_coco(tmp_path, "train2017", min_size=50)
    assert [s.name for s in seqs] == ["coco_10", "coco_12"]
    assert seqs[0].visible.tolist() == [True] and seqs[1].visible.tolist() == [False]
    usable = load_source(DataSource("coco", str(tmp_path), "train2017"), coco_min_size=50)
    assert len(usable) == 1
    ds = PairDataset([usable], [1.0], DataConfig(samples_per_epoch=4), MCFG)
    assert ds[(0, 0)]["search"].shape == (3, 128, 128)
    with pytest.raises(DatasetError):
        load_coco(tmp_path, "val2017")


def test_empty_or_invalid_sources_raise(toy_root):
    with pytest.raises(PairSamplingError):
        PairDataset.from_config(DataConfig(sources=()), MCFG)
    with pytest.raises(PairSamplingError):
        PairDataset([[]], [1.0], DataConfig(), MCFG)
    with pytest.raises(DatasetError):
        load_source(DataSource("synth", str(toy_root / "missing")))
    invisible = Sequence("e", [toy_root / "x.jpg"], np.zeros((1, 4)), np.array([False]))
    with pytest.raises(PairSamplingError):
        PairDataset([[invisible]], [1.0], DataConfig(samples_per_epoch=2), MCFG)
