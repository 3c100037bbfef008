"""The tracker as a managed (lifecycle) node, driven through the standard ~/change_state and ~/get_state
services from another process, as `ros2 lifecycle set` or a lifecycle manager would."""
from __future__ import annotations

import time

import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState

from dytrack_ros.msg import TrackedTarget
from dytrack_ros.ros.launcher import wait_for

pytestmark = pytest.mark.slow  # node processes

NODE = "/tracker_node"


class Lifecycle:
    """~/change_state and ~/get_state of the tracker, through a TrackerClient's node."""

    def __init__(self, client) -> None:
        self.c = client
        self.change = client.node.create_client(ChangeState, f"{NODE}/change_state")
        self.get = client.node.create_client(GetState, f"{NODE}/get_state")

    def state(self) -> str:
        # a query: sent again after 3 s without an answer (a response lost to the DDS discovery race)
        return self.c._call(self.get, GetState.Request(), 30, resend_after=3.0).current_state.label

    def transition(self, transition_id: int) -> bool:
        return bool(self.c._call(self.change, ChangeState.Request(transition=Transition(id=transition_id)),
                                 120).success)


def _services(client) -> set[str]:
    """The services the tracker node offers (servers only; the client's own clients are not counted)."""
    return {name for name, _ in client.node.get_service_names_and_types_by_node("tracker_node", "/")}


def test_every_transition_through_the_lifecycle_services(rig, tiny_dytrack_file, tiny_plain_file, sequence,
                                                         tmp_path):
    frames, gt = sequence
    node = rig.start_node(tmp_path / "missing.safetensors", {"autostart": False, "cpu_threads": 1})
    c = rig.client()
    lc = Lifecycle(c)
    assert lc.state() == "unconfigured"

    # a missing model is a failed transition with the reason in the log; the process keeps running
    assert not lc.transition(Transition.TRANSITION_CONFIGURE)
    assert lc.state() == "unconfigured" and node.alive()
    assert wait_for(lambda: "configure failed: model file not found" in node.output(), 5), node.output()

    # configure-time parameters change while unconfigured
    assert c.set_parameters({"model_path": str(tiny_dytrack_file)})[0][0]
    assert lc.transition(Transition.TRANSITION_CONFIGURE)
    assert lc.state() == "inactive"
    assert f"{NODE}/init_target" not in _services(c)
    assert c.image_pub.get_subscription_count() == 0  # inactive: not subscribed to the camera
    ok, reason = c.set_parameters({"model_path": str(tiny_plain_file)})[0]
    assert not ok and "read-only" in reason

    # active: subscribed, serving, tracking
    assert lc.transition(Transition.TRANSITION_ACTIVATE)
    assert lc.state() == "active"
    c.wait_for_tracker(timeout=30)
    for f in frames[:3]:
        c.publish(f)
        time.sleep(0.05)
    assert wait_for(lambda: c.init(tuple(float(v) for v in gt[2])).success, 10)
    for f in frames[3:8]:
        c.publish(f)
        time.sleep(0.05)
    assert c.wait_until(lambda: len(c.targets) >= 2, 10)

    # inactive again: no input, no services; the target is dropped with an IDLE ~/target, the last one published
    assert lc.transition(Transition.TRANSITION_DEACTIVATE)
    assert lc.state() == "inactive"
    assert wait_for(lambda: c.image_pub.get_subscription_count() == 0, 5)
    assert wait_for(lambda: f"{NODE}/init_target" not in _services(c), 5)
    inactive_stamps = set()
    for f in frames[8:12]:
        stamp = c.publish(f).stamp
        inactive_stamps.add((stamp.sec, stamp.nanosec))
        time.sleep(0.05)
    assert c.wait_until(lambda: any(r.msg.status == TrackedTarget.STATUS_IDLE for r in c.targets), 5)
    time.sleep(0.5)
    assert c.targets[-1].msg.status == TrackedTarget.STATUS_IDLE and c.targets[-1].msg.track_id == 0
    # targets published before the deactivate may still arrive now; none is for a frame sent while inactive
    assert not any((r.msg.header.stamp.sec, r.msg.header.stamp.nanosec) in inactive_stamps for r in c.targets)

    # cleanup releases the model: another model_path without a restart
    assert lc.transition(Transition.TRANSITION_CLEANUP)
    assert lc.state() == "unconfigured"
    assert c.set_parameters({"model_path": str(tiny_plain_file)})[0][0]
    assert lc.transition(Transition.TRANSITION_CONFIGURE) and lc.transition(Transition.TRANSITION_ACTIVATE)
    assert c.get_parameters(["model_path"])["model_path"] == str(tiny_plain_file)
    assert wait_for(lambda: "ready: model ostrack_tiny" in node.output(), 10), node.output()
    assert wait_for(lambda: c.image_pub.get_subscription_count() == 1, 10)
    assert wait_for(lambda: f"{NODE}/init_target" in _services(c), 10)  # serving again

    # shutdown from active: finalized, and the process still ends cleanly on SIGINT
    assert lc.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert lc.state() == "finalized"
    assert node.stop() == 0
    assert "Traceback" not in node.output(), node.output()


def test_autostart_is_active_at_once(rig, tiny_dytrack_file):
    rig.start_node(tiny_dytrack_file, {"cpu_threads": 1})
    c = rig.client()
    c.wait_for_tracker(timeout=90)
    assert Lifecycle(c).state() == "active"
