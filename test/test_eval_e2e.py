"""End-to-end: synth -> eval -> score, with a small DyTrack model and OpenCV baselines; resume; plots."""
from __future__ import annotations

import json
import shutil
import threading

import cv2
import numpy as np
import pytest

from dytrack_ros.cli import main
from dytrack_ros.data import load_dataset
from dytrack_ros.data.synth import generate_dataset
from dytrack_ros.eval.plots import plot_curves, plot_tradeoff
from dytrack_ros.eval.runner import NullEvalTracker, RunnerError, TrackerSpec, run_sequence, run_tracker
from dytrack_ros.eval.score import ScoreError, score_results

SIZE = (192, 144)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate_dataset(root, 2, preset="easy", seed=1, frames=24, size=SIZE, progress=False)
    generate_dataset(root, 1, preset="hard", seed=1, frames=60, size=SIZE, progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from dytrack_ros.model import create_model
    from dytrack_ros.model_io.model_file import save_model_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "dytrack_tiny.safetensors"
    save_model_file(create_model("dytrack_tiny"), path)
    return path


def _valid_png(path, min_w=400):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path))
    assert img is not None and img.shape[1] >= min_w
    return img


def test_result_files_and_oracle_score(synth_root, tmp_path):
    seqs = load_dataset("got10k", synth_root, "val")
    summary = run_tracker(TrackerSpec("opencv:kcf"), seqs, tmp_path / "kcf", progress=False)
    assert sorted(r.name for r in summary.ran) == sorted(s.name for s in seqs)
    for s in seqs:
        boxes = np.loadtxt(tmp_path / "kcf" / f"{s.name}.txt", delimiter=",")
        times = np.loadtxt(tmp_path / "kcf" / f"{s.name}_time.txt")
        assert boxes.shape == (len(s), 4) and times.shape == (len(s),)
        np.testing.assert_allclose(boxes[0], s.gt[0])  # first line = init box
        assert (times > 0).all()
    # an oracle result set (GT as prediction) scores exactly the share of visible frames
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    for s in seqs:
        np.savetxt(oracle / f"{s.name}.txt", s.gt, fmt="%.4f", delimiter=",")
    sc = score_results(seqs, oracle)
    vis = [s.visible.mean() for s in seqs]
    assert sc.ope.auc == pytest.approx(np.mean(vis) * 20 / 21 * 100)
    assert sc.got10k.ao == pytest.approx(100.0)  # percent, like AUC
    assert sc.ope.precision == pytest.approx(np.mean(vis) * 100)
    hard = [s for s in seqs if "hard" in s.name][0]
    assert not hard.visible.all()  # the hard sequence has invisible frames that count as failures
    assert sc.per_attribute["similar_distractors"]["num_sequences"] == 1


class ThreadCountingTracker(NullEvalTracker):
    """Records how many Python threads are alive while each frame is being tracked."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def initialize(self, frame, box) -> None:
        self.threads.append(threading.active_count())
        super().initialize(frame, box)

    def track(self, frame):
        self.threads.append(threading.active_count())
        return super().track(frame)


def test_no_frame_decoding_runs_beside_the_timed_tracker(synth_root, tmp_path):
    """A decoder thread running during track() competes for the tracker's cores and inflates _time.txt."""
    seq = load_dataset("got10k", synth_root, "val")[0]
    tracker = ThreadCountingTracker()
    before = threading.active_count()
    run = run_sequence(tracker, seq, tmp_path)
    assert run.frames == len(seq) and len(tracker.threads) == len(seq)
    assert set(tracker.threads) == {before}
    assert len(np.loadtxt(tmp_path / f"{seq.name}_time.txt")) == len(seq)


def test_resume_skips_finished_and_refuses_other_tracker(synth_root, tmp_path):
    seqs = load_dataset("got10k", synth_root, "val")
    out = tmp_path / "res"
    run_tracker(TrackerSpec("opencv:kcf"), seqs, out, progress=False)
    keep = (out / f"{seqs[0].name}.txt").stat().st_mtime_ns
    (out / f"{seqs[1].name}.txt").unlink()  # as if interrupted before this sequence finished
    (out / f"{seqs[2].name}.txt").write_text("1,2,3,4\n")  # a truncated file is not "finished"
    again = run_tracker(TrackerSpec("opencv:kcf"), seqs, out, progress=False)
    assert again.skipped == [seqs[0].name]
    assert sorted(r.name for r in again.ran) == sorted([seqs[1].name, seqs[2].name])
    assert (out / f"{seqs[0].name}.txt").stat().st_mtime_ns == keep
    with pytest.raises(RunnerError, match="another tracker"):
        run_tracker(TrackerSpec("opencv:mil"), seqs, out, progress=False)
    with pytest.raises(RunnerError, match="unknown OpenCV tracker"):
        run_tracker(TrackerSpec("opencv:goturn"), seqs, tmp_path / "x", progress=False)
    with pytest.raises(RunnerError, match="model file not found"):
        run_tracker(TrackerSpec(str(tmp_path / "none.safetensors")), seqs, tmp_path / "y", progress=False)
    (out / f"{seqs[0].name}.txt").unlink()
    with pytest.raises(ScoreError, match="no results for 1 of 3"):
        score_results(seqs, out)
    assert score_results(seqs, out, allow_missing=True).missing == [seqs[0].name]


@pytest.mark.slow
def test_parallel_workers_match_serial(synth_root, tmp_path):
    seqs = load_dataset("got10k", synth_root, "val")[:2]
    run_tracker(TrackerSpec("opencv:kcf"), seqs, tmp_path / "serial", progress=False)
    par = run_tracker(TrackerSpec("opencv:kcf"), seqs, tmp_path / "par", workers=2, progress=False)
    assert len(par.ran) == 2
    for s in seqs:
        a = np.loadtxt(tmp_path / "serial" / f"{s.name}.txt", delimiter=",")
        b = np.loadtxt(tmp_path / "par" / f"{s.name}.txt", delimiter=",")
        np.testing.assert_allclose(a, b)


@pytest.mark.slow
def test_cli_synth_eval_score_with_model_sweep_and_baselines(tmp_path, tiny_model):
    data = tmp_path / "data"
    assert main(["synth", "--out", str(data), "--num-sequences", "1", "--frames", "10", "--preset", "medium",
                 "--seed", "3", "--size", "160x120", "--quiet"]) == 0
    common = ["--format", "got10k", "--root", str(data), "--split", "val", "--quiet"]
    res = tmp_path / "res"
    assert main(["eval", *common, "--model", str(tiny_model), "--results", str(res / "tiny"),
                 "--sweep-thresholds", "0,1"]) == 0
    assert main(["eval", *common, "--model", "opencv:csrt", "--results", str(res / "csrt")]) == 0
    for thr, layer in (("thr_0.000", 1), ("thr_1.000", 4)):
        exits = np.loadtxt(res / "tiny" / thr / "synth_medium_000001_exit.txt")
        assert exits[0] == 0 and (exits[1:] == layer).all()  # threshold 0: first exit; 1: full depth
    report = tmp_path / "report"
    assert main(["score", "--format", "got10k", "--root", str(data), "--results", str(res / "tiny"),
                 "--results", str(res / "csrt"), "--report", str(report)]) == 0
    payload = json.loads((report / "scores.json").read_text())
    labels = [r["label"] for r in payload["results"]]
    assert labels == ["dytrack_tiny@0", "dytrack_tiny@1", "opencv-csrt"]
    depth = {r["label"]: r["speed"]["mean_layers"] for r in payload["results"]}
    assert depth["dytrack_tiny@0"] == 1.0 and depth["dytrack_tiny@1"] == 4.0 and depth["opencv-csrt"] is None
    for r in payload["results"]:
        assert len(r["ope"]["success_curve"]["values"]) == 21 and 0 <= r["ope"]["auc"] <= 100
    md = (report / "scores.md").read_text()
    assert "| opencv-csrt |" in md and "Exit depth" in md
    _valid_png(report / "curves.png")
    _valid_png(report / "tradeoff.png")
    # eval's own report exists too
    _valid_png(res / "csrt" / "report" / "curves.png")
    assert main(["score", "--format", "got10k", "--root", str(data), "--results", str(tmp_path / "nope")]) == 2


@pytest.mark.slow
def test_plot_series_and_csrt_beats_kcf_on_easy_sequences(synth_root, tmp_path):
    seqs = [s for s in load_dataset("got10k", synth_root, "val") if "easy" in s.name]
    scores = []
    for name in ("csrt", "kcf"):
        run_tracker(TrackerSpec(f"opencv:{name}"), seqs, tmp_path / name, progress=False)
        scores.append(score_results(seqs, tmp_path / name))
    csrt, kcf = scores
    assert csrt.ope.auc > 60.0, csrt.ope.auc  # easy sequences: a correlation-filter tracker follows the target
    drawn = plot_curves(scores, tmp_path / "c.png")
    assert set(drawn["success"]) == {"opencv-csrt", "opencv-kcf"}
    xs, ys = drawn["success"]["opencv-csrt"]
    assert len(xs) == 21 and ys.mean() * 100 == pytest.approx(csrt.ope.auc)
    assert set(plot_tradeoff(scores, tmp_path / "t.png")["fps"]) == {"opencv-csrt", "opencv-kcf"}
    _valid_png(tmp_path / "c.png")
    _valid_png(tmp_path / "t.png")
    shutil.rmtree(tmp_path / "kcf")


@pytest.mark.slow
def test_eval_refuses_an_invalid_box_row_unless_repair_is_asked(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["synth", "--out", str(data), "--num-sequences", "1", "--frames", "8", "--preset", "easy",
                 "--seed", "2", "--size", "160x120", "--quiet"]) == 0
    res = tmp_path / "res"
    common = ["eval", "--format", "got10k", "--root", str(data), "--split", "val", "--quiet", "--model",
              "opencv:kcf", "--results", str(res)]
    assert main([*common, "--no-score"]) == 0
    box_file = next(p for p in res.glob("*.txt") if not p.stem.endswith(("_time", "_exit")))
    lines = box_file.read_text().splitlines()
    lines[4] = "nan,nan,nan,nan"  # what a tracker that lost its numbers would write
    box_file.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(common) == 2  # resumes (nothing to run) and scores: the bad row is refused
    assert f"{box_file}:5: invalid box nan,nan,nan,nan (non-finite value)" in capsys.readouterr().err
    assert main([*common, "--repair-invalid"]) == 0
    assert f"repaired 1 invalid row(s) in {box_file} (lines 5)" in capsys.readouterr().out
    payload = json.loads((res / "report" / "scores.json").read_text())
    assert payload["results"][0]["repaired_lines"] == {str(box_file): [5]}
