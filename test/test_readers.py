"""Reader tests on small fixtures written in each benchmark layout, including the known quirks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dytrack_ros.data import DatasetError, load_dataset
from dytrack_ros.data.lasot_split import LASOT_TEST_SEQUENCES


def _write_frames(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = np.full((24, 32, 3), 127, np.uint8)
    for n in names:
        cv2.imwrite(str(folder / n), img)


def _boxes(n: int, start: float = 1.0) -> np.ndarray:
    return np.array([[start + i, 2 + i, 10 + i, 12] for i in range(n)], dtype=float)


def _got_seq(folder: Path, n: int, sep: str = ",", trailing_newline: bool = True, labels: bool = True) -> np.ndarray:
    _write_frames(folder, [f"{i:08d}.jpg" for i in range(1, n + 1)])
    gt = _boxes(n)
    text = "\n".join(sep.join(f"{v:.4f}" for v in row) for row in gt)
    (folder / "groundtruth.txt").write_text(text + ("\n" if trailing_newline else ""))
    if labels:
        (folder / "absence.label").write_text("\n".join(["0"] * (n - 1) + ["1"]) + "\n")
        (folder / "cover.label").write_text("\n".join(["8", "0"] + ["5"] * (n - 2)) + "\n")
        (folder / "meta_info.ini").write_text("[METAINFO]\nobject_class: cat\nresolution: (32, 24)\n"
                                              "attributes: fast_motion, out_of_view\n")
    return gt


def test_got10k_val_with_labels_and_missing_trailing_newline(tmp_path):
    val = tmp_path / "got10k" / "val"
    gt = _got_seq(val / "GOT-10k_Val_000001", 5, trailing_newline=False)
    _got_seq(val / "GOT-10k_Val_000002", 3, sep="\t", labels=False)
    (val / "list.txt").write_text("GOT-10k_Val_000001\nGOT-10k_Val_000002")
    seqs = load_dataset("got10k", tmp_path / "got10k", split="val")
    assert [s.name for s in seqs] == ["GOT-10k_Val_000001", "GOT-10k_Val_000002"]
    s = seqs[0]
    np.testing.assert_allclose(s.gt, gt)
    assert [p.name for p in s.frames][:2] == ["00000001.jpg", "00000002.jpg"]
    # visible = !absence & cover > 0: frame 2 (cover 0) and frame 5 (absent) are invisible
    assert s.visible.tolist() == [True, False, True, True, False]
    assert s.meta["object_class"] == "cat"
    assert s.tags() == ["absent", "fast_motion", "out_of_view"]
    assert seqs[1].visible.all() and seqs[1].has_full_gt
    # the split folder itself also works as root, and --sequences filters
    only = load_dataset("got10k", val, sequences=["GOT-10k_Val_000002"])
    assert [s.name for s in only] == ["GOT-10k_Val_000002"]


def test_got10k_test_split_first_box_only(tmp_path):
    seq = tmp_path / "test" / "GOT-10k_Test_000001"
    _write_frames(seq, [f"{i:08d}.jpg" for i in range(1, 5)])
    (seq / "groundtruth.txt").write_text("3,4,10,12\n\n")
    (tmp_path / "test" / "list.txt").write_text("GOT-10k_Test_000001\n")
    (s,) = load_dataset("got10k", tmp_path, split="test")
    assert len(s) == 4 and not s.has_full_gt and s.init_box == (3, 4, 10, 12)


def test_got10k_broken_layouts_give_clear_errors(tmp_path):
    val = tmp_path / "val"
    _got_seq(val / "A", 4, labels=False)
    (val / "list.txt").write_text("A\nB\n")
    with pytest.raises(DatasetError, match="do not exist.*B"):
        load_dataset("got10k", tmp_path, split="val")
    (val / "list.txt").write_text("A\n")
    (val / "A" / "groundtruth.txt").write_text("1,2,3,4\n1,2,3\n1,2,3,4\n1,2,3,4\n")
    with pytest.raises(DatasetError, match=r"groundtruth.txt:2: expected 4 numbers"):
        load_dataset("got10k", tmp_path, split="val")
    (val / "A" / "groundtruth.txt").write_text("1,2,3,4\n1,2,3,4\n")
    with pytest.raises(DatasetError, match="4 frames but 2 ground-truth"):
        load_dataset("got10k", tmp_path, split="val")
    (val / "A" / "groundtruth.txt").write_text("1,2,3,4\n\n1,2,3,4\n1,2,3,4\n1,2,3,4\n")
    with pytest.raises(DatasetError, match="empty line inside"):
        load_dataset("got10k", tmp_path, split="val")
    with pytest.raises(DatasetError, match="split folder 'train' not found"):
        load_dataset("got10k", tmp_path, split="train")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset("vot", tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("got10k", tmp_path / "missing")


def _lasot_seq(root: Path, name: str, n: int, one_line_flags: bool = True) -> None:
    cls = name.rsplit("-", 1)[0]
    folder = root / cls / name
    _write_frames(folder / "img", [f"{i:08d}.jpg" for i in range(1, n + 1)])
    np.savetxt(folder / "groundtruth.txt", _boxes(n), fmt="%d", delimiter=",")
    occ = ["0"] * n
    occ[1] = "1"
    oov = ["0"] * n
    oov[-1] = "1"
    joiner = "," if one_line_flags else "\n"
    (folder / "full_occlusion.txt").write_text(joiner.join(occ))
    (folder / "out_of_view.txt").write_text(joiner.join(oov) + "\n")
    (folder / "nlp.txt").write_text("a small thing\n")


def test_lasot_class_layout_splits_and_flags(tmp_path):
    _lasot_seq(tmp_path, "airplane-1", 4)
    _lasot_seq(tmp_path, "airplane-2", 3, one_line_flags=False)
    assert len(LASOT_TEST_SEQUENCES) == 280 and "airplane-1" in LASOT_TEST_SEQUENCES
    with pytest.raises(DatasetError, match="279 of the 280 LaSOT test sequences are missing"):
        load_dataset("lasot", tmp_path, split="test")
    (s,) = load_dataset("lasot", tmp_path, sequences=["airplane-1"])
    assert s.visible.tolist() == [True, False, True, False]
    assert s.attributes == {"full_occlusion": True, "out_of_view": True}
    assert s.meta["nlp"] == "a small thing" and s.meta["class"] == "airplane"
    (train,) = load_dataset("lasot", tmp_path, split="train")
    assert train.name == "airplane-2" and train.visible.tolist() == [True, False, False]
    assert [x.name for x in load_dataset("lasot", tmp_path, split="all")] == ["airplane-1", "airplane-2"]
    # flat layout (the test archive unpacks to <root>/<seq>/)
    flat = tmp_path / "flat"
    (flat).mkdir()
    (tmp_path / "airplane" / "airplane-1").rename(flat / "airplane-1")
    assert [x.name for x in load_dataset("lasot", flat, split="all")] == ["airplane-1"]
    (flat / "airplane-1" / "out_of_view.txt").write_text("0,0")
    with pytest.raises(DatasetError, match="2 flags for 4 frames"):
        load_dataset("lasot", flat, split="all")


def test_otb_separators_multi_target_and_late_start(tmp_path):
    # Basketball-like: mixed separators, 4-digit names
    b = tmp_path / "Basketball"
    _write_frames(b / "img", [f"{i:04d}.jpg" for i in range(1, 5)])
    (b / "groundtruth_rect.txt").write_text("1,2,10,12\n2\t3\t10\t12\n3 4 10 12\n4, 5, 10, 12")
    # Jogging-like: two targets
    j = tmp_path / "Jogging"
    _write_frames(j / "img", [f"{i:04d}.jpg" for i in range(1, 4)])
    for k in (1, 2):
        np.savetxt(j / f"groundtruth_rect.{k}.txt", _boxes(3, start=k), fmt="%d", delimiter="\t")
    # David-like: annotation starts at image 300 (5-digit Board-style names also sort numerically)
    d = tmp_path / "David"
    _write_frames(d / "img", [f"{i:04d}.jpg" for i in range(298, 303)])
    np.savetxt(d / "groundtruth_rect.txt", _boxes(3), fmt="%d", delimiter=",")
    seqs = {s.name: s for s in load_dataset("otb", tmp_path)}
    assert sorted(seqs) == ["Basketball", "David", "Jogging_1", "Jogging_2"]
    np.testing.assert_allclose(seqs["Basketball"].gt[:, 0], [1, 2, 3, 4])
    assert [p.name for p in seqs["David"].frames] == ["0300.jpg", "0301.jpg", "0302.jpg"]
    assert seqs["Jogging_2"].gt[0, 0] == 2
    assert [s.name for s in load_dataset("otb", tmp_path, sequences=["Jogging_2"])] == ["Jogging_2"]
    (b / "groundtruth_rect.txt").write_text("1,2,10,12\nx,3,10,12\n")
    with pytest.raises(DatasetError, match="groundtruth_rect.txt:2: not a number"):
        load_dataset("otb", tmp_path)


def test_trackingnet_unpadded_zero_based_frames(tmp_path):
    for chunk, video, n, full in (("TRAIN_0", "vidA", 12, True), ("TRAIN_1", "vidB", 3, True),
                                  ("TEST", "vidT", 11, False)):
        _write_frames(tmp_path / chunk / "frames" / video, [f"{i}.jpg" for i in range(n)])
        gt = _boxes(n if full else 1)
        (tmp_path / chunk / "anno").mkdir(parents=True, exist_ok=True)
        np.savetxt(tmp_path / chunk / "anno" / f"{video}.txt", gt, fmt="%.2f", delimiter=",")
    train = load_dataset("trackingnet", tmp_path, split="train")
    assert [s.name for s in train] == ["vidA", "vidB"]
    # numeric order: 0,1,2,...,9,10,11 (not 0,1,10,11,2,...)
    assert [p.stem for p in train[0].frames] == [str(i) for i in range(12)]
    (test,) = load_dataset("trackingnet", tmp_path)  # default split: TEST
    assert test.name == "vidT" and not test.has_full_gt
    (chunk,) = load_dataset("trackingnet", tmp_path / "TRAIN_1")
    assert chunk.name == "vidB"
    with pytest.raises(DatasetError, match="not found under"):
        load_dataset("trackingnet", tmp_path, split="train", sequences=["nope"])


def test_nan_boxes_and_bom(tmp_path):
    val = tmp_path / "val"
    _got_seq(val / "A", 3, labels=False)
    (val / "A" / "groundtruth.txt").write_text("\ufeff1,2,3,4\nNaN,NaN,NaN,NaN\n1,2,3,4\n", encoding="utf-8")
    (s,) = load_dataset("got10k", val)
    assert s.visible.tolist() == [True, False, True]
    np.testing.assert_allclose(s.gt[1], 0)
