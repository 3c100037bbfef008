"""A camera without a camera: play a video file or image folder as an image topic.

Like image_tools' burger mode, it lets the whole pipeline run (demo, CI) with no
hardware. Publishes ``image`` (sensor_msgs/Image) or ``image/compressed`` at the
source's frame rate, paced on wall-clock time, stamped with the current time
(like a live camera), reliable QoS like camera drivers (REP-2003).

  python -m dytrack_ros.ros.video_player --ros-args -p source:=data/media/cup.mp4 -r image:=/camera/image_raw
"""
from __future__ import annotations

import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..video import FrameSource, VideoSourceError
from .image_conversion import rgb_to_compressed, rgb_to_image


class VideoPlayer(Node):
    def __init__(self) -> None:
        super().__init__("video_player")
        self.source = str(self.declare_parameter("source", "").value)
        self.rate = float(self.declare_parameter("rate", 0.0).value)  # 0: the source's fps
        self.loop = bool(self.declare_parameter("loop", False).value)
        self.frame_id = str(self.declare_parameter("frame_id", "camera_optical_frame").value)
        self.encoding = str(self.declare_parameter("encoding", "rgb8").value)
        self.transport = str(self.declare_parameter("transport", "raw").value)
        self.wait_for_subscribers = int(self.declare_parameter("wait_for_subscribers", 0).value)
        self.max_frames = int(self.declare_parameter("max_frames", 0).value)  # 0: all
        if not self.source:
            raise VideoSourceError("parameter 'source' (video file or image folder) is required")
        self.frames = FrameSource(self.source)
        self.fps = self.rate or float(self.frames.fps)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
        if self.transport == "compressed":
            self.pub = self.create_publisher(CompressedImage, "image/compressed", qos)
        else:
            self.pub = self.create_publisher(Image, "image", qos)
        self.published = 0

    def run(self) -> None:
        deadline = time.monotonic() + 30.0
        while self.pub.get_subscription_count() < self.wait_for_subscribers and rclpy.ok():
            if time.monotonic() > deadline:
                self.get_logger().warning(f"only {self.pub.get_subscription_count()} subscriber(s) after 30 s; playing")
                break
            time.sleep(0.02)
        self.get_logger().info(f"playing {self.source} ({len(self.frames)} frames) at {self.fps:.2f} Hz "
                               f"on {self.pub.topic_name}")
        period = 1.0 / self.fps
        t_next = time.monotonic()
        while rclpy.ok():
            for rgb in self.frames:
                if not rclpy.ok() or (self.max_frames and self.published >= self.max_frames):
                    return
                header = Header(stamp=self.get_clock().now().to_msg(), frame_id=self.frame_id)
                if self.transport == "compressed":
                    msg = rgb_to_compressed(rgb, header)
                else:
                    msg = rgb_to_image(rgb, header, self.encoding)
                self.pub.publish(msg)
                self.published += 1
                t_next += period
                delay = t_next - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    t_next = time.monotonic()
            if not self.loop:
                return


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    try:
        node = VideoPlayer()
    except VideoSourceError as exc:
        print(f"video_player: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 1
    try:
        node.run()
        node.get_logger().info(f"done: {node.published} frames published")
        time.sleep(0.2)  # let reliable QoS deliver the last frames
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
