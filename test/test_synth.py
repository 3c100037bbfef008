"""Synthetic sequence generator: determinism, exact ground truth, labels, GOT-10k round trip."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from dytrack_ros.data import load_dataset
from dytrack_ros.data.synth import (
    PRESETS,
    SynthError,
    _prepare,
    _sequence_rng,
    generate_dataset,
    generate_sequence,
    load_photo_library,
    plan_sequence,
    render_frame,
)


def test_deterministic_by_seed_and_index():
    a = generate_sequence(index=2, preset="medium", seed=7, frames=12, size=(160, 120))
    b = generate_sequence(index=2, preset="medium", seed=7, frames=12, size=(160, 120))
    c = generate_sequence(index=2, preset="medium", seed=8, frames=12, size=(160, 120))
    np.testing.assert_array_equal(a.gt, b.gt)
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa, fb)
    assert a.frames[0].shape == (120, 160, 3) and a.frames[0].dtype == np.uint8
    assert not all(np.array_equal(fa, fc) for fa, fc in zip(a.frames, c.frames))


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_gt_box_is_exactly_where_the_target_pixels_are(index):
    """Render each frame with and without the target: the changed pixels span exactly the GT box."""
    preset = PRESETS["easy"]  # no occluders, distractors, blur or lighting change: only the target differs
    lib = load_photo_library()
    plan = plan_sequence(_sequence_rng(3, index, "easy"), preset, 20, (200, 150), lib)
    cache = _prepare(plan, lib)
    away = dataclasses.replace(plan, boxes=plan.boxes + np.array([10_000, 10_000, 0, 0]))
    checked = 0
    for t in range(0, 20, 3):
        with_target = render_frame(plan, cache, t, preset)
        without = render_frame(away, cache, t, preset)
        ys, xs = np.nonzero((with_target != without).any(axis=2))
        x, y, w, h = plan.gt[t]
        if w == 0:
            continue
        assert (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()) == (x, y, w, h)
        checked += 1
    assert checked >= 5


def test_hard_preset_labels_are_consistent():
    s = generate_sequence(index=0, preset="hard", seed=11, frames=150, size=(320, 240))
    absent = s.flags["absence"] == 1
    assert absent.any() and (~absent).any()
    np.testing.assert_array_equal(s.gt[absent], 0.0)
    assert (s.gt[~absent, 2:] > 0).all()
    assert set(np.unique(s.flags["cover"])) <= set(range(9))
    np.testing.assert_array_equal(s.flags["cover"] == 0, absent)
    np.testing.assert_array_equal(absent, (s.flags["out_of_view"] == 1) | (s.flags["full_occlusion"] == 1))
    assert not s.flags["absence"][0] and s.flags["cover"][0] == 8  # initialisation frame fully visible
    # boxes stay inside the image
    assert (s.gt[:, 0] + s.gt[:, 2] <= 320).all() and (s.gt[:, 1] + s.gt[:, 3] <= 240).all()
    assert s.attributes["out_of_view"] == bool(s.flags["out_of_view"].any())
    assert s.attributes["full_occlusion"] == bool(s.flags["full_occlusion"].any())
    assert s.attributes["similar_distractors"]


def test_presets_differ_in_difficulty():
    def absent_share(preset):
        return np.mean([generate_sequence(i, preset, 5, 80, (160, 120)).flags["absence"].mean() for i in range(4)])

    assert absent_share("easy") == 0.0
    assert absent_share("hard") > 0.02


def test_generate_dataset_round_trip_through_got10k_reader(tmp_path):
    paths = generate_dataset(tmp_path, 2, preset="medium", seed=4, frames=15, size=(192, 144), progress=False)
    assert [p.name for p in paths] == ["synth_medium_000001", "synth_medium_000002"]
    seqs = load_dataset("got10k", tmp_path, split="val")
    assert [s.name for s in seqs] == [p.name for p in paths]
    ref = generate_sequence(index=1, preset="medium", seed=4, frames=15, size=(192, 144))
    got = seqs[1]
    np.testing.assert_allclose(got.gt, ref.gt)
    np.testing.assert_array_equal(got.visible, ref.visible)
    assert got.tags() == sorted(k for k, v in ref.attributes.items() if v)
    assert got.meta["preset"] == "medium" and got.meta["seed"] == "4"
    img = cv2.imread(str(got.frames[5]))
    assert img.shape == (144, 192, 3)
    # JPEG q90 stays close to the rendered frame
    assert np.abs(img[..., ::-1].astype(int) - ref.frames[5].astype(int)).mean() < 6
    # resume: complete sequences are not rewritten, list.txt has no duplicates
    stamp = (paths[0] / "00000001.jpg").stat().st_mtime_ns
    generate_dataset(tmp_path, 3, preset="medium", seed=4, frames=15, size=(192, 144), progress=False)
    assert (paths[0] / "00000001.jpg").stat().st_mtime_ns == stamp
    assert (tmp_path / "val" / "list.txt").read_text().split() == [f"synth_medium_00000{i}" for i in (1, 2, 3)]


def test_photo_folder_extends_the_library(tmp_path):
    photo = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "extra.png"), photo)
    base = load_photo_library()
    lib = load_photo_library(str(tmp_path))
    assert len(lib.backgrounds) == len(base.backgrounds) + 1
    assert "extra_crop" in lib.describe()["targets"]


def test_bad_arguments(tmp_path):
    with pytest.raises(SynthError, match="unknown synth preset"):
        generate_sequence(preset="impossible")
    with pytest.raises(SynthError, match="at least 2"):
        generate_sequence(frames=1)
    with pytest.raises(SynthError, match="64x64"):
        generate_sequence(size=(32, 32))
    with pytest.raises(SynthError, match="photo folder not found"):
        load_photo_library(str(tmp_path / "missing"))


def _noise_photos(folder, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(str(folder / f"p{i}.png"), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))


def test_photos_only_uses_just_the_folder(tmp_path):
    _noise_photos(tmp_path / "photos", 3)
    lib = load_photo_library(tmp_path / "photos", photos_only=True)
    assert lib.describe() == {"targets": ["p0_crop", "p1_crop", "p2_crop"], "backgrounds": ["p0", "p1", "p2"]}
    with_skimage = load_photo_library(tmp_path / "photos")
    assert len(with_skimage.backgrounds) > 3  # the default still adds scikit-image's photos


def test_photos_only_dataset_and_cli(tmp_path):
    from dytrack_ros.cli import main as cli_main

    photos = tmp_path / "photos"
    _noise_photos(photos, 2)
    rc = cli_main(["synth", "--out", str(tmp_path / "ds"), "--num-sequences", "2", "--frames", "4", "--size", "96x72",
                   "--photos", str(photos), "--photos-only", "--seed", "3", "--split", "test", "--quiet"])
    assert rc == 0
    for name in ("synth_medium_000001", "synth_medium_000002"):
        meta = (tmp_path / "ds/test" / name / "meta_info.ini").read_text()
        assert "object_class: p0_crop" in meta or "object_class: p1_crop" in meta
        assert "background: p0" in meta or "background: p1" in meta
    with pytest.raises(SynthError, match="needs a photo folder"):
        generate_dataset(tmp_path / "x", 1, frames=4, size=(96, 72), photos_only=True, progress=False)
    _noise_photos(tmp_path / "one", 1)
    with pytest.raises(SynthError, match="at least 2 usable photos"):
        generate_dataset(tmp_path / "y", 1, frames=4, size=(96, 72), photo_dir=tmp_path / "one", photos_only=True,
                         progress=False)
    assert not (tmp_path / "y").exists()
