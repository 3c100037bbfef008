"""Latency budget through the node: parameters changeable at run time, TrackedTarget and /diagnostics report it."""
from __future__ import annotations

import pytest

from dytrack_ros.ros.client import CameraStream

pytestmark = pytest.mark.slow  # starts a node process


def test_budget_parameters_apply_at_run_time_and_are_reported(rig, tiny_dytrack_file, sequence):
    frames, _ = sequence
    rig.start_node(tiny_dytrack_file)
    c = rig.client()
    c.wait_for_tracker()
    # refused: a deadline without a budget, a negative budget; nothing changes
    assert c.set_parameters({"deadline": True})[0][0] is False
    assert c.set_parameters({"latency_budget_ms": -1.0})[0][0] is False
    cam = CameraStream(c, frames, rate=20.0, loop=True).start()
    assert c.wait_until(lambda: len(cam.headers) >= 2, 10)
    assert c.init((60, 90, 48, 40)).success
    assert c.wait_until(lambda: len(c.targets_since()) >= 3, 10)
    before = c.targets_since()[-1]
    assert before.latency_budget_ms == 0.0 and list(before.exit_thresholds) == pytest.approx([0.8, 0.8, 0.0])
    # a tiny budget with the deadline: every frame answers at the first exit, cut by the deadline
    ok = c.set_parameters({"latency_budget_ms": 0.001, "deadline": True, "threshold_floor": 1.0})
    assert all(r[0] for r in ok), ok
    n = len(c.targets_since())
    assert c.wait_until(lambda: len(c.targets_since()) >= n + 5, 10)
    late = c.targets_since()[n + 1:]
    assert all(m.latency_budget_ms == pytest.approx(0.001) for m in late)
    assert all(m.exit_layer == 1 and m.cut_by_deadline for m in late)
    assert all(list(m.exit_thresholds) == pytest.approx([1.0, 1.0, 0.0]) for m in late)  # floor = 1.0
    diag = c.latest_diagnostics()
    assert c.wait_until(lambda: (c.latest_diagnostics() or {}).get("budget met") == "False", 5)
    diag = c.latest_diagnostics()
    assert float(diag["latency budget (ms)"]) == pytest.approx(0.001) and diag["deadline"] == "True"
    assert float(diag["budget p95 (ms)"]) > 0.001
    # switched off again: the model's thresholds apply, no cuts
    assert all(r[0] for r in c.set_parameters({"deadline": False, "latency_budget_ms": 0.0}))
    n = len(c.targets_since())
    assert c.wait_until(lambda: len(c.targets_since()) >= n + 3, 10)
    assert not any(m.cut_by_deadline for m in c.targets_since()[n + 1:])
    cam.stop()
