"""The whole ROS pipeline in one command, no camera needed.

  python -m dytrack_ros.ros.demo                      # data/media/cup.mp4, its known init box
  python -m dytrack_ros.ros.demo --video clip.mp4 --box X Y W H --model my.safetensors

Starts three nodes as processes on this machine only (LOCALHOST discovery,
shared-memory transport): ``video_player`` (the video as a camera topic at its
frame rate), ``tracker_node`` and ``target_recorder``; calls
``~/init_target`` with the box on the first frame's stamp; when the video
ends, stops everything with SIGINT and prints the recorder's summary. Writes
``tracked.mp4``, ``targets.csv``, ``summary.json`` and ``exit_depth.png``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..paths import default_model_path
from ..video import FrameSource, VideoSourceError
from .launcher import NodeProcess, local_ros_env, ros_args

CUP_VIDEO = Path("data/media/cup.mp4")
CUP_BOX = (300.0, 120.0, 126.0, 250.0)  # x, y, w, h of the cup in the first frame of cup.mp4 (640x480)
CAMERA_TOPIC = "/demo/camera/image_raw"


class DemoError(RuntimeError):
    """The demo cannot run (missing video/model, a node failed)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m dytrack_ros.ros.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, default=CUP_VIDEO, help="video file or image folder (default: %(default)s)")
    ap.add_argument("--box", type=float, nargs=4, metavar=("X", "Y", "W", "H"), default=None,
                    help="init box on the first frame, top-left x, y, width, height in pixels "
                         "(default: the known box of cup.mp4)")
    ap.add_argument("--model", type=Path, default=None, help="model file (default: the shipped default model)")
    ap.add_argument("--params-file", type=Path, default=None,
                    help="tracker parameter YAML (default: config/tracker.yaml)")
    ap.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default: %(default)s)")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: whole video)")
    ap.add_argument("--rate", type=float, default=0.0, help="camera rate in Hz (0: the video's fps)")
    ap.add_argument("--domain-id", type=int, default=None,
                    help="ROS_DOMAIN_ID (default: from the environment, else 42)")
    return ap.parse_args(argv)


def run_demo(args: argparse.Namespace) -> dict:
    from tqdm import tqdm

    from .client import ClientError, TrackerClient, time_to_ns

    if not args.video.exists():
        hint = " (run scripts/fetch_media.sh)" if args.video == CUP_VIDEO else ""
        raise DemoError(f"video not found: {args.video}{hint}")
    box = tuple(args.box) if args.box else (CUP_BOX if args.video.name == CUP_VIDEO.name else None)
    if box is None:
        raise DemoError("--box X Y W H is required for videos other than cup.mp4")
    model = args.model or default_model_path()
    if not Path(model).is_file():
        raise DemoError(f"model not found: {model} (pass --model)")
    try:
        source = FrameSource(args.video)
    except VideoSourceError as exc:
        raise DemoError(str(exc)) from exc
    fps = args.rate or source.fps
    n_frames = min(len(source), args.max_frames) if args.max_frames else len(source)

    domain = args.domain_id if args.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID", "42"))
    env = local_ros_env(domain_id=domain)
    # player and recorder decode/encode video: single-threaded, so their thread pools do not steal the cores
    # the tracker needs (OpenCV and OpenMP pools oversubscribe a small CPU and stall each other)
    helper_env = {**env, "OMP_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")
                       if k in env})
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    remap = {"image": CAMERA_TOPIC}
    # leave one core to the camera player and the recorder (they share this machine with the tracker)
    tracker_params = {"model_path": str(Path(model).resolve()), "publish_debug_image": True,
                      "expected_rate": round(fps, 2), "cpu_threads": max(1, (os.cpu_count() or 2) - 1)}
    tracker = NodeProcess("dytrack_ros", ros_args(tracker_params, remap, params_file=args.params_file),
                          env=env, log_path=logs / "tracker_node.log", name="tracker_node")
    recorder = NodeProcess("dytrack_ros.ros.target_recorder",
                           ros_args({"output_dir": str(out.resolve()), "video_fps": round(fps, 3)}, remap),
                           env=helper_env, log_path=logs / "target_recorder.log", name="target_recorder")
    player = NodeProcess("dytrack_ros.ros.video_player",
                         ros_args({"source": str(args.video.resolve()), "rate": float(fps),
                                   "wait_for_subscribers": 3, "max_frames": args.max_frames}, remap),
                         env=helper_env, log_path=logs / "video_player.log", name="video_player")
    client = None
    try:
        tracker.start()
        recorder.start()
        client = TrackerClient(domain_id=domain, name="demo", publish_images=False)
        first: list = []
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        client.node.create_subscription(Image, CAMERA_TOPIC, lambda m: first or first.append(m.header),
                                        qos_profile_sensor_data)
        t0 = time.monotonic()
        while not client.init_client.wait_for_service(timeout_sec=0.5):
            if not tracker.alive():
                raise DemoError(f"tracker_node exited:\n{tracker.output()[-2000:]}")
            if time.monotonic() - t0 > 120:
                raise DemoError("tracker_node did not come up within 120 s")
        try:
            client.wait_for_tracker(30)  # two-sided discovery: the node can answer us now
        except ClientError as exc:
            raise DemoError(str(exc)) from None
        player.start()
        if not client.wait_until(lambda: bool(first), 60):
            raise DemoError(f"no camera frame within 60 s; player log:\n{player.output()[-2000:]}")
        # the node may match the new player a moment after this client does: retry while it has no frame yet
        deadline = time.monotonic() + 15.0
        while True:
            resp = client.init(box, time_to_ns(first[0].stamp))
            if resp.success or "no image received" not in resp.message or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if not resp.success:
            raise DemoError(f"init_target failed: {resp.message}")
        print(f"init_target: {resp.message}", flush=True)
        with tqdm(total=n_frames, desc="frames tracked", unit="frame") as bar:
            while player.alive():
                bar.n = min(len(client.targets), n_frames)
                bar.refresh()
                time.sleep(0.2)
            time.sleep(1.0)  # the last frames in flight
            bar.n = min(len(client.targets), n_frames)
            bar.refresh()
        if player.proc.returncode != 0:
            raise DemoError(f"video_player failed:\n{player.output()[-2000:]}")
    finally:
        if client is not None:
            client.close()
        player.stop()
        recorder.stop(timeout=30)
        tracker.stop()
    summary_path = out / "summary.json"
    if not summary_path.is_file():
        raise DemoError(f"recorder wrote no summary:\n{recorder.output()[-2000:]}")
    return json.loads(summary_path.read_text())


def format_summary(s: dict, out: Path) -> str:
    lat, inf = s.get("latency_ms", {}), s.get("inference_ms", {})
    diag = s.get("tracker_diagnostics", {})
    hist = " ".join(f"L{k}:{v}" for k, v in s.get("exit_histogram", {}).items()) or "-"
    return "\n".join([
        f"camera frames      {s['camera_frames']} at {s['input_rate_hz']:.1f} Hz",
        f"processed frames   {s['processed_frames']} at {s['processed_rate_hz']:.1f} Hz"
        f" (dropped by the node: {diag.get('dropped frames', '?')})",
        f"latency stamp->pub p50 {lat.get('p50', 0):.1f} ms, p95 {lat.get('p95', 0):.1f} ms",
        f"tracker time       p50 {inf.get('p50', 0):.1f} ms, p95 {inf.get('p95', 0):.1f} ms",
        f"exit depth         {hist}  (mean {s['mean_executed_layers']:.2f} of {s['total_layers']} layers)",
        f"status             {s.get('status_counts')}",
        f"outputs            {out}/tracked.mp4, targets.csv, summary.json, exit_depth.png",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = run_demo(args)
    except DemoError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
