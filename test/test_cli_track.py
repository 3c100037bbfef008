"""`dytrack track` as a real subprocess on a generated video."""
from __future__ import annotations

import subprocess
import sys

import cv2
import pytest
from square_frames import moving_square_frames


def _dytrack(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "dytrack_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames, gts = moving_square_frames(n=15)
    path = tmp_path_factory.mktemp("video") / "square.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (320, 240))
    for f in frames:
        w.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    w.release()
    return path, gts


@pytest.mark.slow
def test_track_writes_annotated_video_boxes_and_summary(video, tiny_dytrack_file, tmp_path):
    path, gts = video
    out, boxes = tmp_path / "annotated.mp4", tmp_path / "boxes.txt"
    init = ",".join(str(v) for v in gts[0])
    r = _dytrack("track", path, "--init", init, "--model", tiny_dytrack_file, "--out", out, "--boxes", boxes)
    assert r.returncode == 0, r.stderr
    assert "exit depth: mean" in r.stdout and "fps" in r.stdout and "layer" in r.stdout
    lines = boxes.read_text().splitlines()
    assert len(lines) == 15
    assert lines[0].startswith("100.00,80.00,40.00,30.00,1.0000,tracking,0")
    fields = lines[5].split(",")
    assert len(fields) == 7 and fields[5] in {"tracking", "uncertain", "lost"} and int(fields[6]) in (1, 2, 4)
    cap = cv2.VideoCapture(str(out))
    n, first = 0, None
    while True:
        ok, img = cap.read()
        if not ok:
            break
        first = img if first is None else first
        n += 1
    assert n == 15
    # the init box was drawn on frame 0 (green "tracking" colour along its top edge)
    edge = first[80, 105:135].astype(int)
    assert (edge[:, 1] > 150).mean() > 0.8 and (edge[:, 2] < 120).mean() > 0.8


@pytest.mark.slow
def test_track_errors_are_clear(video, tiny_dytrack_file, tmp_path):
    path, _ = video
    r = _dytrack("track", path, "--init", "10,10,0,5", "--model", tiny_dytrack_file)
    assert r.returncode == 2 and "bad --init" in r.stderr and "positive" in r.stderr
    r = _dytrack("track", path, "--init", "10,10,5,5", "--model", tmp_path / "none.safetensors")
    assert r.returncode == 2 and "not found" in r.stderr
    r = _dytrack("track", tmp_path / "missing.mp4", "--init", "10,10,5,5", "--model", tiny_dytrack_file)
    assert r.returncode == 2 and "not found" in r.stderr
    r = _dytrack("track", path, "--init", "1,2,3", "--model", tiny_dytrack_file)
    assert r.returncode == 2 and "x,y,w,h" in r.stderr


@pytest.mark.slow
def test_help_documents_every_option():
    r = _dytrack("--help")
    assert r.returncode == 0 and "track" in r.stdout
    r = _dytrack("track", "--help")
    for opt in ("--init", "--model", "--backend", "--device", "--precision", "--exit-thresholds", "--out", "--boxes"):
        assert opt in r.stdout
