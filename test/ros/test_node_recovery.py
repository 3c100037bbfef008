"""Lost-target recovery through the node: statuses, lost duration, last confident box, re-acquisition count,
diagnostics counters and the recovery parameters, on the vanishing-target sequence (exact ground truth)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from vanish_frames import RETURNS_AT, VISIBLE_UNTIL, vanish_frames

from dytrack_ros.msg import TrackedTarget
from dytrack_ros.ros.client import time_to_ns

pytestmark = pytest.mark.slow

TRAINED_MODEL = Path(__file__).resolve().parents[2] / "models" / "dytrack_small.safetensors"
FRAME_NS = 100_000_000  # image stamps 0.1 s apart


def lock_step(client, frames, first_stamp_ns: int) -> list[TrackedTarget]:
    """Publish each frame only after the node answered the previous one (no frame skipped)."""
    out = []
    for i, frame in enumerate(frames):
        n = len(client.targets_since())
        client.publish(frame, first_stamp_ns + i * FRAME_NS)
        assert client.wait_until(lambda: len(client.targets_since()) > n, 20), f"no answer to frame {i}"
        out.append(client.targets_since()[-1])
    return out


def test_node_reports_loss_search_and_reacquisition(rig):
    frames, gt = vanish_frames()
    rig.start_node(TRAINED_MODEL)
    c = rig.client()
    c.wait_for_tracker()
    ok, reason = c.set_parameters({"redetect_windows": -1})[0]
    assert not ok
    assert c.set_parameters({"redetect_windows": 2}) == [(True, "")]
    t0 = 1_000_000_000_000
    c.publish(frames[0], t0)
    deadline = time.monotonic() + 10
    while not (resp := c.init(gt[0], t0)).success and time.monotonic() < deadline:
        time.sleep(0.05)
        c.publish(frames[0], t0)
    assert resp.success, resp.message
    msgs = lock_step(c, frames[1:], t0 + FRAME_NS)
    codes = [m.status for m in msgs]
    assert TrackedTarget.STATUS_LOST in codes and TrackedTarget.STATUS_SEARCHING in codes
    assert codes.count(TrackedTarget.STATUS_REDETECTED) == 1
    back = codes.index(TrackedTarget.STATUS_REDETECTED) + 1  # frame index of the re-acquisition
    # the in-process test pins re-acquisition within 4 frames of the return; in the node (2 inference threads
    # beside the executor's) scores near the thresholds vary in the last digits, so allow a few frames more
    assert RETURNS_AT <= back <= RETURNS_AT + 8
    lost = [m for m in msgs if m.status in (TrackedTarget.STATUS_LOST, TrackedTarget.STATUS_SEARCHING)]
    # lost duration from the image stamps: 0 on the frame that declares the loss, +0.1 s per frame
    assert [round(m.lost_duration, 3) for m in lost] == [round(0.1 * k, 3) for k in range(len(lost))]
    assert [m.lost_frames for m in lost] == list(range(1, len(lost) + 1))
    last_seen = gt[VISIBLE_UNTIL - 1]
    for m in lost:  # where the target was last seen for sure
        assert abs(m.last_confident_center_x - (last_seen[0] + 20)) < 6
        assert abs(m.last_confident_center_y - (last_seen[1] + 20)) < 6
    assert all(m.redetections == 0 for m in msgs[:back - 1]) and all(m.redetections == 1 for m in msgs[back - 1:])
    after = msgs[back - 1]
    assert abs(after.center_x - (gt[back][0] + 20)) < 10 and after.lost_duration == 0.0
    t = time.monotonic()
    assert c.wait_until(lambda: c.latest_diagnostics(after=t) is not None, 5)
    d = c.latest_diagnostics(after=t)
    assert d["losses (this track)"] == "1" and d["re-acquisitions (this track)"] == "1"
    assert int(d["re-detection windows (this track)"]) >= 2 * 5
    # recovery switched off at run time: the next loss is never followed by a search
    assert c.set_parameters({"recovery": False}) == [(True, "")]
    again = lock_step(c, frames[VISIBLE_UNTIL:RETURNS_AT], t0 + 100 * FRAME_NS)
    assert not any(m.status in (TrackedTarget.STATUS_SEARCHING, TrackedTarget.STATUS_REDETECTED) for m in again)
    assert time_to_ns(again[-1].header.stamp) == t0 + (100 + RETURNS_AT - VISIBLE_UNTIL - 1) * FRAME_NS
