"""Lost-status score and the per-frame status files the runner writes, against exact absence labels."""
from __future__ import annotations

import numpy as np
import pytest

from dytrack_ros.config import TrackerConfig
from dytrack_ros.data import load_dataset
from dytrack_ros.data.synth import generate_dataset
from dytrack_ros.eval.lost_status import (
    StatusFileError,
    absent_frames,
    lost_status_score,
    read_statuses,
    score_results_dir,
)
from dytrack_ros.eval.runner import RunnerError, TrackerSpec, run_tracker
from dytrack_ros.eval.score import score_results


def test_precision_and_recall_count_lost_and_searching_against_absence():
    statuses = [["init", "tracking", "lost", "searching", "redetected", "uncertain", "lost"]]
    absent = [np.array([0, 0, 1, 1, 1, 0, 0], bool)]
    s = lost_status_score(statuses, absent)
    # reported no-target on frames 2, 3, 6; absent on 2, 3, 4
    assert (s.true_positive, s.false_positive, s.false_negative, s.frames, s.absent) == (2, 1, 1, 6, 3)
    assert s.precision == pytest.approx(200 / 3) and s.recall == pytest.approx(200 / 3)
    # frame 0 (init) is never counted, even when labelled absent
    s0 = lost_status_score([["init", "tracking"]], [np.array([1, 0], bool)])
    assert s0.absent == 0 and s0.recall is None and s0.precision is None


def test_status_files_are_checked(tmp_path):
    path = tmp_path / "a_status.txt"
    path.write_text("init\ntracking\n")
    assert read_statuses(path, 2) == ["init", "tracking"]
    with pytest.raises(StatusFileError, match="3 frames"):
        read_statuses(path, 3)
    path.write_text("init\nhappy\n")
    with pytest.raises(StatusFileError, match="unknown"):
        read_statuses(path, 2)


@pytest.mark.slow
def test_runner_writes_statuses_and_score_reports_lost_status(tmp_path, tiny_dytrack_file):
    root = tmp_path / "synth"
    generate_dataset(root, 1, preset="hard", seed=3, frames=40, size=(192, 144), progress=False)
    seqs = load_dataset("got10k", root, "val")
    assert absent_frames(seqs[0]).any()  # the hard preset's sequence has absent frames
    # thresholds at 1: every frame is low, so the tracker declares the target lost after 3 frames and stays so
    cfg = TrackerConfig(uncertain_threshold=1.0, lost_threshold=1.0, reacquire_threshold=1.0)
    spec = TrackerSpec(str(tiny_dytrack_file), threads=1, tracker_config=cfg)
    run_tracker(spec, seqs, tmp_path / "res", progress=False)
    st = read_statuses(tmp_path / "res" / f"{seqs[0].name}_status.txt", len(seqs[0]))
    assert st[:4] == ["init", "uncertain", "uncertain", "lost"] and set(st[3:]) <= {"lost", "searching"}
    absent = absent_frames(seqs[0])
    expected_tp = int(absent[3:].sum())
    score = score_results(seqs, tmp_path / "res").lost_status
    assert score["true_positive"] == expected_tp and score["recall"] == pytest.approx(
        100 * expected_tp / absent[1:].sum())
    assert score == score_results_dir(seqs, tmp_path / "res").to_dict()
    # the recovery settings are part of the run's identity: resuming with other settings is refused
    with pytest.raises(RunnerError, match="another tracker"):
        run_tracker(TrackerSpec(str(tiny_dytrack_file), threads=1, tracker_config=cfg.replace(recovery=False)),
                    seqs, tmp_path / "res", progress=False)
    # ... and the same settings resume (nothing to redo)
    again = run_tracker(spec, seqs, tmp_path / "res", progress=False)
    assert again.skipped == [seqs[0].name]
