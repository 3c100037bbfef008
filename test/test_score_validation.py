"""The scorer refuses malformed result files with file:line, repairs invalid boxes only on request, and reports
scores in one unit with unmeasured values as '-' / null."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from dytrack_ros.cli import main
from dytrack_ros.data import load_dataset
from dytrack_ros.eval.report import markdown_tables, write_report
from dytrack_ros.eval.result_files import ResultFileError
from dytrack_ros.eval.score import score_results

# float boxes whose pixel-inclusive IoU with themselves rounds above 1 without clipping
FLOAT_GT = ["318.48,107.91,15.74,12.31", "319.02,108.44,15.80,12.27", "320.11,108.90,15.62,12.35",
            "321.37,109.26,15.91,12.40"]
INT_GT = ["10,10,20,20"] * 4


def _dataset(root: Path, gt_lines: list[str], name: str = "seq_a") -> Path:
    """A GOT-10k split folder with one sequence of tiny frames and the given ground truth."""
    folder = root / name
    folder.mkdir(parents=True)
    for i in range(len(gt_lines)):
        cv2.imwrite(str(folder / f"{i + 1:08d}.jpg"), np.zeros((8, 8, 3), np.uint8))
    (folder / "groundtruth.txt").write_text("\n".join(gt_lines) + "\n")
    (folder / "meta_info.ini").write_text("[METAINFO]\nresolution: (640, 480)\nattributes: fast_motion\n")
    (root / "list.txt").write_text(name + "\n")
    return root


def _results(folder: Path, boxes: list[str], times: list[str] | None = None, exits: list[str] | None = None,
             num_layers: int | None = None, name: str = "seq_a") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text("\n".join(boxes) + "\n")
    if times is not None:
        (folder / f"{name}_time.txt").write_text("\n".join(times) + "\n")
    if exits is not None:
        (folder / f"{name}_exit.txt").write_text("\n".join(exits) + "\n")
    if num_layers is not None:
        (folder / "run_info.json").write_text(json.dumps({"label": "m", "tracker": {"num_layers": num_layers}}))
    return folder


@pytest.fixture
def float_data(tmp_path):
    return load_dataset("got10k", _dataset(tmp_path / "data", FLOAT_GT))


@pytest.fixture
def int_data(tmp_path):
    return load_dataset("got10k", _dataset(tmp_path / "data", INT_GT))


def test_perfect_tracker_on_float_boxes_scores_the_21_threshold_ceiling(tmp_path, float_data):
    res = _results(tmp_path / "res", FLOAT_GT)
    sc = score_results(float_data, res)
    assert sc.ope.success_curve[-1] == 0.0  # IoU > 1.0 never succeeds
    assert sc.ope.auc == pytest.approx(20 / 21 * 100)  # 95.238, not 100
    assert sc.got10k.ao == pytest.approx(100.0) and sc.got10k.sr75 == pytest.approx(100.0)
    assert sc.per_sequence[0]["auc"] == pytest.approx(20 / 21 * 100)


def test_negative_width_refused_with_file_and_line(tmp_path, int_data):
    # row 3's pixel-inclusive centre (30 + (-20 - 1)/2 = 19.5) equals the GT's: unchecked, it scored as a hit
    res = _results(tmp_path / "res", ["10,10,20,20", "100,100,20,20", "30,10,-20,20", "10,10,20,20"])
    path = res / "seq_a.txt"
    with pytest.raises(ResultFileError, match=rf"^{path}:3: invalid box 30,10,-20,20 \(negative width or height\)"):
        score_results(int_data, res)
    fixed = score_results(int_data, res, repair_invalid=True)
    assert fixed.repaired == {str(path): [3]}
    # row 3 became row 2's miss: hits on frames 1 and 4 only
    assert fixed.ope.precision == pytest.approx(50.0)
    assert fixed.to_dict()["repaired_lines"] == {str(path): [3]}


@pytest.mark.parametrize("row, reason", [("nan,nan,nan,nan", "non-finite"), ("10,10,inf,20", "non-finite"),
                                         ("10,10,20,-1", "negative")])
def test_nonfinite_rows_refused_and_repaired_from_previous_box(tmp_path, int_data, row, reason):
    res = _results(tmp_path / "res", ["10,10,20,20", "12,10,20,20", row, "10,10,20,20"])
    with pytest.raises(ResultFileError, match=rf"seq_a.txt:3: invalid box .*{reason}"):
        score_results(int_data, res)
    fixed = score_results(int_data, res, repair_invalid=True)
    assert list(fixed.repaired.values()) == [[3]]
    # frame 3 takes frame 2's box (x shifted by 2: IoU 360/440): fails at thresholds >= 0.85, like frame 2
    assert fixed.ope.success_curve[-4] == pytest.approx(0.5)


def test_invalid_first_row_repaired_from_the_init_box(tmp_path, int_data):
    res = _results(tmp_path / "res", ["nan,0,0,0", "nan,0,0,0", "10,10,20,20", "10,10,20,20"])
    with pytest.raises(ResultFileError, match=r"seq_a.txt:1: "):
        score_results(int_data, res)
    fixed = score_results(int_data, res, repair_invalid=True)
    assert list(fixed.repaired.values()) == [[1, 2]]
    assert fixed.ope.auc == pytest.approx(20 / 21 * 100)


def test_zero_width_box_is_valid_and_takes_the_previous_prediction(tmp_path, int_data):
    res = _results(tmp_path / "res", ["10,10,20,20", "10,10,20,20", "500,500,0,20", "10,10,20,20"])
    sc = score_results(int_data, res)
    assert sc.repaired == {}
    assert sc.ope.auc == pytest.approx(20 / 21 * 100)


@pytest.mark.parametrize("lines, message", [
    (["0.5", "0.01", "0.01"], r"seq_a_time.txt:3: file ends after 3 times but the sequence has 4 frames"),
    (["0.5", "0.01", "0.01", "0.01", "0.01"], r"seq_a_time.txt:5: more times than the sequence's 4 frames"),
    (["0.5", "fast", "0.01", "0.01"], r"seq_a_time.txt:2: expected one number of seconds, got 'fast'"),
    (["0.5", "0.01", "-0.01", "0.01"], r"seq_a_time.txt:3: time -0.01 is not a finite number"),
    (["0.5", "0.01", "nan", "0.01"], r"seq_a_time.txt:3: time nan is not a finite number"),
    (["0.5", "", "0.01", "0.01"], r"seq_a_time.txt:2: empty line inside the file"),
])
def test_bad_time_files_refused_with_file_and_line(tmp_path, int_data, lines, message):
    res = _results(tmp_path / "res", INT_GT, times=lines)
    with pytest.raises(ResultFileError, match=message):
        score_results(int_data, res)


@pytest.mark.parametrize("exits, num_layers, message", [
    (["0", "2", "99", "6"], 6, r"seq_a_exit.txt:3: exit layer 99 is beyond the model's 6 layers"),
    (["0", "2", "-1", "6"], None, r"seq_a_exit.txt:3: exit layer -1 is not an integer >= 0"),
    (["0", "2", "2.5", "6"], None, r"seq_a_exit.txt:3: exit layer 2.5 is not an integer"),
    (["0", "2", "6"], None, r"seq_a_exit.txt:3: file ends after 3 exit layers"),
])
def test_bad_exit_files_refused_with_file_and_line(tmp_path, int_data, exits, num_layers, message):
    res = _results(tmp_path / "res", INT_GT, exits=exits, num_layers=num_layers)
    with pytest.raises(ResultFileError, match=message):
        score_results(int_data, res)


def test_exit_layers_within_the_recorded_depth_are_scored(tmp_path, int_data):
    res = _results(tmp_path / "res", INT_GT, times=["0.5", "0.01", "0.03", "0.02"], exits=["0", "2", "6", "6"],
                   num_layers=6)
    sc = score_results(int_data, res)
    assert sc.speed.exit_histogram == {2: 1, 6: 2}
    assert sc.speed.ms_per_frame == pytest.approx(20.0) and sc.speed.fps == pytest.approx(50.0)


def test_without_time_files_speed_is_dash_and_null(tmp_path, int_data):
    res = _results(tmp_path / "res", INT_GT)
    sc = score_results(int_data, res)
    assert sc.speed.fps is None and sc.speed.ms_per_frame is None
    row = [ln for ln in markdown_tables([sc]).splitlines() if ln.startswith("| res |")][0]
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Tracker | AUC | P@20 | NP | AO | SR0.5 | SR0.75 | fps | ms/frame | mean layers | seqs | frames
    assert cells[7:10] == ["-", "-", "-"]
    assert cells[4] == "100.0"  # AO in percent
    write_report([sc], tmp_path / "report")
    payload = json.loads((tmp_path / "report" / "scores.json").read_text())
    r = payload["results"][0]
    assert r["speed"]["fps"] is None and r["speed"]["ms_per_frame"] is None
    assert r["per_sequence"][0]["fps"] is None


def test_scores_json_is_in_percent_everywhere(tmp_path, float_data):
    res = _results(tmp_path / "res", FLOAT_GT, times=["0.5", "0.01", "0.01", "0.01"])
    sc = score_results(float_data, res)
    write_report([sc], tmp_path / "report")
    payload = json.loads((tmp_path / "report" / "scores.json").read_text())
    assert payload["format_version"] == 2
    assert any("percent" in unit for unit in payload["units"].values())
    r = payload["results"][0]
    assert r["got10k"]["ao"] == pytest.approx(100.0) and r["got10k"]["sr50"] == pytest.approx(100.0)
    assert r["per_sequence"][0]["ao"] == pytest.approx(100.0)
    assert r["per_attribute"]["fast_motion"]["ao"] == pytest.approx(100.0)
    assert r["ope"]["auc"] == pytest.approx(20 / 21 * 100)
    assert "avg_overlap" not in json.dumps(payload)
    assert r["speed"]["ms_per_frame"] == pytest.approx(10.0)


def test_cli_refuses_invalid_rows_and_repairs_on_request(tmp_path, capsys):
    root = _dataset(tmp_path / "data", INT_GT)
    res = _results(tmp_path / "res", ["10,10,20,20", "nan,nan,nan,nan", "30,10,-20,20", "10,10,20,20"])
    args = ["score", "--format", "got10k", "--root", str(root), "--results", str(res), "--report",
            str(tmp_path / "report")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{res / 'seq_a.txt'}:2: invalid box nan,nan,nan,nan (non-finite value)" in err
    assert err.count("\n") == 1
    assert main([*args, "--repair-invalid"]) == 0
    out = capsys.readouterr().out
    assert f"repaired 2 invalid row(s) in {res / 'seq_a.txt'} (lines 2,3)" in out
    assert "2 invalid box row(s) in 1 file(s) replaced" in (tmp_path / "report" / "scores.md").read_text()


def test_unreadable_run_info_refused_with_its_path(tmp_path, int_data):
    from dytrack_ros.eval.score import ScoreError

    res = _results(tmp_path / "res", INT_GT, exits=["0", "1", "1", "1"])
    (res / "run_info.json").write_text(json.dumps({"tracker": {"num_layers": "six"}}))
    with pytest.raises(ScoreError, match=rf"^{res / 'run_info.json'}: tracker.num_layers is 'six'"):
        score_results(int_data, res)
    (res / "run_info.json").write_text("{not json")
    with pytest.raises(ScoreError, match=rf"^{res / 'run_info.json'}: not valid JSON"):
        score_results(int_data, res)
