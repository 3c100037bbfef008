"""Replay a rosbag2 recording (written by ros2 bag or rosbags) into live topics.

`ros2 bag play` is not installable from PyPI; this is the small part of it the
offline evaluation needs: every message of the chosen topics, published as the
recorded CDR bytes (no re-serialisation, so headers stay as recorded) with the
recorded timing scaled by ``rate``.

  python -m dytrack_ros.ros.bag_player --ros-args -p bag:=recording/ -p "topics:=[/camera/image_raw]"
"""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy


class BagError(ValueError):
    """The bag cannot be read or holds none of the requested topics."""


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    try:
        pkg, kind, name = type_name.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ValueError, ImportError, AttributeError) as exc:
        raise BagError(f"message type {type_name} is not available in this ROS installation") from exc


class BagPlayer(Node):
    def __init__(self) -> None:
        super().__init__("bag_player")
        self.bag = Path(str(self.declare_parameter("bag", "").value))
        self.topics = [t for t in self.declare_parameter("topics", [""]).value if t]
        self.rate = float(self.declare_parameter("rate", 1.0).value)
        self.wait_for_subscribers = int(self.declare_parameter("wait_for_subscribers", 0).value)
        if not self.bag.exists():
            raise BagError(f"bag not found: {self.bag}")
        if self.rate <= 0:
            raise BagError(f"rate must be > 0, got {self.rate}")
        self.published = 0

    def run(self) -> None:
        from rosbags.rosbag2 import Reader

        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        try:
            reader = Reader(self.bag)
            reader.open()
        except Exception as exc:  # rosbags raises its own error types for bad bags
            raise BagError(f"cannot read bag {self.bag}: {exc}") from exc
        try:
            conns = [c for c in reader.connections if not self.topics or c.topic in self.topics]
            if not conns:
                raise BagError(f"none of the topics {self.topics} in {self.bag}; "
                               f"it has {sorted({c.topic for c in reader.connections})}")
            pubs = {}
            for c in conns:
                if c.topic not in pubs:
                    # relative names would be namespaced; bag topics are absolute
                    pubs[c.topic] = self.create_publisher(message_class(c.msgtype), c.topic, qos)
            deadline = time.monotonic() + 30.0
            while any(p.get_subscription_count() < self.wait_for_subscribers for p in pubs.values()):
                if time.monotonic() > deadline or not rclpy.ok():
                    break
                time.sleep(0.02)
            self.get_logger().info(f"playing {self.bag} ({', '.join(pubs)}) at x{self.rate}")
            t0_bag = t0_wall = None
            for conn, t_ns, raw in reader.messages(connections=conns):
                if not rclpy.ok():
                    return
                if t0_bag is None:
                    t0_bag, t0_wall = t_ns, time.monotonic()
                delay = t0_wall + (t_ns - t0_bag) / 1e9 / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pubs[conn.topic].publish(bytes(raw))
                self.published += 1
        finally:
            reader.close()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = BagPlayer()
        node.run()
        node.get_logger().info(f"done: {node.published} messages published")
        time.sleep(0.2)
    except BagError as exc:
        print(f"bag_player: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    except KeyboardInterrupt:
        pass
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
