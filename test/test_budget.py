"""Latency budget: the threshold controller on recorded traces (deterministic), the deadline gate on a real
model, and the interfaces (Tracker API, `dytrack track --latency-budget-ms ... --stats`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dytrack_ros.cli import main as cli_main
from dytrack_ros.config import ConfigError
from dytrack_ros.exit_policy import ExitPolicy
from dytrack_ros.tracker import Tracker
from dytrack_ros.tracker.budget import P95_TAIL, BudgetConfig, BudgetController, ExitSweep

LAYERS = (2, 4, 6)
BASE_MS = (3.0, 2.5, 2.5)  # stage costs at no load
OVERHEAD_MS = 0.5


def recorded_pred_ious(n: int, shift: float, seed: int) -> np.ndarray:
    """Decisioner outputs of n frames (K = 3), as a tracker records them; ``shift`` lowers them (harder footage)."""
    return np.clip(np.random.default_rng(seed).beta(5, 2, (n, 3)) - shift, 0.0, 1.0)


def calibration_sweep(q: np.ndarray) -> ExitSweep:
    table = []
    for tau in np.round(np.arange(0.0, 1.0001, 0.05), 2):
        e = ExitPolicy.for_model(LAYERS, float(tau)).first_exits(q)
        table.append({"tau": float(tau), "exit_fractions": [float((e == k).mean()) for k in range(3)]})
    return ExitSweep.from_calibration(table, 3)


def replay(controller: BudgetController, live_q: np.ndarray, load: np.ndarray, noise_seed: int = 1):
    """Drive the controller with a recorded trace: per frame the exit follows its thresholds on the recorded
    predicted IoUs, stage times are the base costs times the load (plus 5 % noise)."""
    rng = np.random.default_rng(noise_seed)
    times, taus, exits = [], [], []
    for q, scale in zip(live_q, load):
        controller.choose()
        taus.append(controller.tau)
        e = controller.policy().first_exit(q)
        stage_ms = [b * scale * (1.0 + 0.05 * rng.standard_normal()) for b in BASE_MS[:e + 1]]
        total = sum(stage_ms) + OVERHEAD_MS
        controller.update(stage_ms, total, e, list(q[:e + 1]))
        times.append(total)
        exits.append(e)
    return np.asarray(times), np.asarray(taus), np.asarray(exits)


@pytest.fixture(scope="module")
def sweep():
    return calibration_sweep(recorded_pred_ious(2000, 0.0, seed=0))


def load_step(n=600, start=200, stop=400, factor=2.0) -> np.ndarray:
    load = np.ones(n)
    load[start:stop] = factor
    return load


@pytest.mark.parametrize("shift", [0.0, 0.1])  # live footage like the calibration data, and harder
def test_controller_holds_the_budget_through_a_load_step(sweep, shift):
    budget = 7.0  # between the first exit (3.5 ms at no load, 6.5 ms under load) and full depth (8.5 / 16.5 ms)
    ctrl = BudgetController(BudgetConfig(latency_budget_ms=budget), LAYERS, BASE_MS, sweep, tau=0.8)
    times, taus, _ = replay(ctrl, recorded_pred_ious(600, shift, seed=3), load_step())
    during = times[230:400]  # load on, after about one second (30 frames) of settling
    assert np.percentile(during, 95) <= 1.1 * budget
    assert np.percentile(times[430:600], 95) <= 1.1 * budget
    # fixed thresholds at the pre-load operating point break the budget under load
    fixed = BudgetController(BudgetConfig(latency_budget_ms=budget, min_threshold=taus[150], max_threshold=taus[150]),
                             LAYERS, BASE_MS, sweep, tau=taus[150])
    fixed_times, _, _ = replay(fixed, recorded_pred_ious(600, shift, seed=3), load_step())
    assert np.percentile(fixed_times[230:400], 95) > 1.1 * budget


def test_controller_settles_within_a_second_and_does_not_oscillate(sweep):
    ctrl = BudgetController(BudgetConfig(latency_budget_ms=7.0), LAYERS, BASE_MS, sweep, tau=0.8)
    _, taus, _ = replay(ctrl, recorded_pred_ious(600, 0.0, seed=4), load_step())
    settled = np.median(taus[300:400])
    assert np.all(np.abs(taus[230:400] - settled) <= 0.06)  # within 30 frames of the step
    assert taus[230:400].std() < 0.03 and taus[430:600].std() < 0.03
    assert np.median(taus[430:600]) > settled + 0.1  # the load is gone: accuracy comes back
    # no limit cycle: few direction changes of tau once settled
    d = np.sign(np.diff(taus[230:400]))
    d = d[d != 0]
    assert np.count_nonzero(np.diff(d)) <= 12


def test_the_accuracy_floor_is_never_crossed_and_a_miss_is_reported(sweep):
    ctrl = BudgetController(BudgetConfig(latency_budget_ms=2.0, min_threshold=0.5), LAYERS, BASE_MS, sweep, tau=0.9)
    _, taus, _ = replay(ctrl, recorded_pred_ious(120, 0.0, seed=5), np.ones(120))
    assert taus.min() >= 0.5
    st = ctrl.state()
    assert st.deepest_affordable_exit is None and not st.budget_met and st.achieved_p95_ms > 2.0


def test_target_depth_is_held(sweep):
    ctrl = BudgetController(BudgetConfig(target_depth=3.0), LAYERS, BASE_MS, sweep, tau=1.0)
    _, _, exits = replay(ctrl, recorded_pred_ious(400, 0.1, seed=6), np.ones(400))
    depth = np.asarray(LAYERS)[exits[60:]].mean()
    assert 2.5 <= depth <= 3.0 + 0.15


def test_without_calibration_the_neutral_prior_and_feedback_still_hold_the_budget():
    ctrl = BudgetController(BudgetConfig(latency_budget_ms=7.0), LAYERS, BASE_MS, ExitSweep.neutral(3), tau=0.8)
    times, _, _ = replay(ctrl, recorded_pred_ious(400, 0.0, seed=7), np.ones(400))
    assert np.mean(times[60:] > 7.0) <= 2 * P95_TAIL


def test_budget_config_validation():
    with pytest.raises(ConfigError, match="deadline"):
        BudgetConfig(deadline=True)
    with pytest.raises(ConfigError, match=">= 0"):
        BudgetConfig(latency_budget_ms=-1)
    with pytest.raises(ConfigError, match="min_threshold"):
        BudgetConfig(latency_budget_ms=5, min_threshold=0.9, max_threshold=0.5)
    assert not BudgetConfig().active


# --- the real tracker -------------------------------------------------------------------------------

def test_deadline_mode_cuts_deeper_stages_on_a_real_model(tiny_dytrack_file, square_sequence):
    frames, gts = square_sequence
    t = Tracker.from_model(tiny_dytrack_file)
    base = t.measure_stage_ms(repeats=2)
    # the exit rule alone would always run full depth (floor = ceiling = 1.0); the deadline cuts it
    t.set_budget(BudgetConfig(latency_budget_ms=1e-3, deadline=True, min_threshold=1.0), stage_base_ms=base)
    t.initialize(frames[0], gts[0])
    r = t.track(frames[1])
    assert r.cut_by_deadline and r.exit_index == 0 and len(r.stage_ms) == 1 and r.exit_layer == 1
    assert r.thresholds == (1.0, 1.0, 0.0) and r.budget is not None and not r.budget.budget_met
    # a generous deadline never cuts
    t.set_budget(BudgetConfig(latency_budget_ms=1e6, deadline=True, min_threshold=1.0))
    r = t.track(frames[2])
    assert not r.cut_by_deadline and r.exit_index == 2 and len(r.stage_ms) == 3
    t.set_budget(None)
    assert t.budget is None and t.track(frames[3]).budget is None


def test_budget_needs_a_model_with_exits(tiny_plain_file):
    from dytrack_ros.tracker import TrackerStateError

    t = Tracker.from_model(tiny_plain_file)
    with pytest.raises(TrackerStateError, match="early exits"):
        t.set_budget(BudgetConfig(latency_budget_ms=5.0))


def test_track_cli_writes_per_frame_stats_with_the_thresholds_in_force(tiny_dytrack_file, square_sequence, tmp_path):
    import cv2

    frames, gts = square_sequence
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    stats = tmp_path / "stats.jsonl"
    x, y, w, h = gts[0]
    rc = cli_main(["track", str(folder), "--init", f"{x},{y},{w},{h}", "--model", str(tiny_dytrack_file),
                   "--latency-budget-ms", "1000", "--deadline", "--stats", str(stats), "--quiet", "--threads", "1"])
    assert rc == 0
    rows = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(1, len(frames)))
    for r in rows:
        assert len(r["thresholds"]) == 3 and r["tracker_ms"] > 0 and r["exit_layer"] in (1, 2, 4)
        assert len(r["stage_ms"]) == {1: 1, 2: 2, 4: 3}[r["exit_layer"]]
        assert r["budget"]["p95_ms"] > 0 and r["budget"]["met"] is True


def test_eval_spec_carries_the_budget_into_the_tracker_and_the_run_identity(tiny_dytrack_file):
    from dytrack_ros.cli import build_parser
    from dytrack_ros.cli.common import budget_config_from_args
    from dytrack_ros.eval.runner import TrackerSpec, build_tracker

    args = build_parser().parse_args(["eval", "--format", "got10k", "--root", "x", "--results", "r",
                                      "--latency-budget-ms", "25", "--deadline", "--threshold-floor", "0.3"])
    budget = budget_config_from_args(args)
    assert budget == BudgetConfig(latency_budget_ms=25.0, deadline=True, min_threshold=0.3)
    spec = TrackerSpec(str(tiny_dytrack_file), threads=1, budget=budget)
    tracker = build_tracker(spec, threads=1).tracker
    assert tracker.budget is not None and tracker.budget.config == budget
    assert spec.identity()["budget"]["latency_budget_ms"] == 25.0 and "budget:25ms+deadline" in spec.label
    # without a budget the identity of older result folders is unchanged (no key)
    assert "budget" not in TrackerSpec(str(tiny_dytrack_file)).identity()
