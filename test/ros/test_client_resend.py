"""TrackerClient._call: an idempotent request is sent again when its answer does not come (a lost response).

Real rclpy in-process: a Trigger server (own context, same domain) that answers its first request only after
the client has given up on it, the way a response lost to a discovery race never arrives in time.
"""
from __future__ import annotations

import threading
import time

import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from std_srvs.srv import Trigger

from dytrack_ros.ros.client import ClientError, TrackerClient


@pytest.fixture
def slow_first_server(domain_id):
    """A /flaky/reset service whose first answer takes 4 s; later ones are immediate. Yields (client, calls)."""
    ctx = rclpy.Context()
    rclpy.init(args=[], context=ctx, domain_id=domain_id)
    node = Node("flaky", context=ctx)
    calls = []

    def serve(_req, resp):
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(4.0)
        resp.success, resp.message = True, f"answer {len(calls)}"
        return resp

    node.create_service(Trigger, "/flaky/reset", serve, callback_group=ReentrantCallbackGroup())
    ex = MultiThreadedExecutor(num_threads=2, context=ctx)
    ex.add_node(node)
    thread = threading.Thread(target=ex.spin, daemon=True)
    thread.start()
    client = TrackerClient(tracker="/flaky", domain_id=domain_id, name="resend_client", publish_images=False)
    try:
        yield client, calls
    finally:
        client.close()
        ex.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def test_an_unanswered_request_is_sent_again(slow_first_server):
    client, calls = slow_first_server
    t0 = time.monotonic()
    resp = client._call(client.reset_client, Trigger.Request(), timeout=20.0, resend_after=1.0)
    assert resp.message == "answer 2" and len(calls) >= 2
    assert time.monotonic() - t0 < 4.0  # did not wait for the slow first answer


def test_without_resend_a_late_answer_is_a_clear_timeout(slow_first_server):
    client, calls = slow_first_server
    with pytest.raises(ClientError, match="no answer from /flaky/reset within 2 s"):
        client._call(client.reset_client, Trigger.Request(), timeout=2.0)
    assert len(calls) == 1
