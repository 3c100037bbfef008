"""Benchmark the ROS tracker node: per-frame node overhead, end-to-end latency, processed rate.

A camera (this process) publishes 640x480 rgb8 frames at --rate Hz to the tracker
node running in its own process, over the shared-memory Fast DDS profile
(config/fastdds_shm.xml) with loopback-only discovery. Reports:
- pure tracker time: Tracker.track() on the same frames in this process (no ROS);
- node overhead per frame: in the node, conversion in the image callback plus the worker's
  time from picking the frame to publishing the target, minus tracker.track() time;
- worker wait: how long a frame waited for the previous frame's inference (latest-frame policy);
- end-to-end latency: image stamp -> target published (TrackedTarget.latency_ms);
- camera and processed rates, frames dropped by the latest-frame policy.

  OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_node.py --seconds 20

--default-settings: what a user gets without any hand-made environment: the camera (640x480 rgb8 at --rate Hz,
reliable or best_effort, Fast DDS defaults) in its own process, the node started with no QoS or DDS arguments,
with its camera DDS profile (config/fastdds_camera.xml, applied by the entry point) and without it
(DYTRACK_DDS_PROFILE=none); processed rate against min(camera rate, tracker capacity = 1000 / (tracker ms + node
overhead ms per frame, medians measured in the node)).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def frames_640x480(n: int = 90) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    """cup.mp4 if fetched (real video), else a generated moving target; plus an init box."""
    from dytrack_ros.video import FrameSource

    cup = REPO / "data" / "media" / "cup.mp4"
    if cup.is_file():
        frames = []
        for f in FrameSource(cup):
            frames.append(f)
            if len(frames) >= n:
                break
        return frames, (300.0, 120.0, 126.0, 250.0)
    rng = np.random.default_rng(0)
    import cv2

    bg = cv2.resize(rng.integers(40, 200, (32, 42, 3)).astype(np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    frames = []
    for t in range(n):
        f = bg.copy()
        x, y = 200 + 2 * t, 150 + int(20 * np.sin(t / 10))
        f[y:y + 80, x:x + 90] = (230, 40, 40)
        frames.append(f)
    return frames, (200.0, 150.0, 90.0, 80.0)


def pure_tracker_ms(model: Path, frames, box, repeats: int = 60) -> dict:
    from dytrack_ros.tracker import Tracker

    tr = Tracker.from_model(model)
    tr.initialize(frames[0], box)
    for f in frames[1:6]:
        tr.track(f)
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        tr.track(frames[1 + i % (len(frames) - 1)])
        times.append((time.perf_counter() - t) * 1e3)
    return {"p50": float(np.median(times)), "p95": float(np.percentile(times, 95))}


# ------------------------------------------------------------ default settings: a camera in its own process
CLEAN_ENV_DROP = ("FASTDDS_DEFAULT_PROFILES_FILE", "ROS_AUTOMATIC_DISCOVERY_RANGE", "DYTRACK_DDS_PROFILE",
                  "FASTDDS_BUILTIN_TRANSPORTS", "RMW_IMPLEMENTATION", "ROS_LOCALHOST_ONLY")


def clean_env(domain: int, **extra: str) -> dict[str, str]:
    """This process's environment without any DDS/discovery setting (what a user's shell has), own domain."""
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV_DROP}
    env.update(ROS_DOMAIN_ID=str(domain), **extra)
    return env


def run_camera(reliability: str, rate: float, seconds: float) -> int:
    """A camera driver stand-in with Fast DDS defaults: 640x480 rgb8 at ``rate`` Hz on /image, stamped now,
    depth 10 (the default QoS of usb_cam / v4l2_camera; best_effort like sensor-data publishers)."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    frames, _ = frames_640x480()
    rclpy.init()
    node = rclpy.create_node("camera")
    rel = ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    pub = node.create_publisher(Image, "image", QoSProfile(depth=10, reliability=rel))
    msgs = []
    for f in frames:
        m = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
        m.header.frame_id = "camera"
        m.data = f.tobytes()
        msgs.append(m)
    t0, k = time.monotonic(), 0
    while time.monotonic() - t0 < seconds:
        m = msgs[k % len(msgs)]
        m.header.stamp = node.get_clock().now().to_msg()
        pub.publish(m)
        k += 1
        time.sleep(max(0.0, t0 + k / rate - time.monotonic()))
    print(json.dumps({"sent": k, "seconds": time.monotonic() - t0}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def measure_default_settings(model: Path, frames, box, rate: float, seconds: float, reliability: str,
                             profile: bool, domain: int, tmp: Path) -> dict:
    """Node (python -m dytrack_ros, no model or QoS arguments) and camera in separate processes with clean
    environments; ``profile`` False turns the node's camera DDS profile off (DYTRACK_DDS_PROFILE=none)."""
    import subprocess

    from dytrack_ros.ros.client import TrackerClient
    from dytrack_ros.ros.launcher import NodeProcess, ros_args

    node_env = clean_env(domain, **({} if profile else {"DYTRACK_DDS_PROFILE": "none"}))
    node = NodeProcess("dytrack_ros", ros_args({"model_path": str(model)}), env=node_env,
                       log_path=tmp / f"node_{reliability}_{profile}.log").start()
    warm, total = 4.0, seconds + 8.0
    camera = None
    for key in CLEAN_ENV_DROP:  # this observer process too: nothing hand-made
        os.environ.pop(key, None)
    client = TrackerClient(domain_id=domain, name="bench_observer", publish_images=False)
    try:
        client.wait_for_tracker(180)
        camera = subprocess.Popen([sys.executable, __file__, "--camera", reliability, "--rate", str(rate),
                                   "--seconds", str(total)], env=clean_env(domain), stdout=subprocess.PIPE, text=True)
        deadline, resp = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            resp = client.init(box)
            if resp.success:
                break
            time.sleep(0.2)
        first_answer = resp.message if resp is not None else "no answer"
        time.sleep(warm)
        n0, t0 = len(client.targets), time.monotonic()
        time.sleep(seconds)
        n1, t1 = len(client.targets), time.monotonic()
        diag = client.latest_diagnostics(after=t1 - 1.5) or {}
        out, _ = camera.communicate(timeout=total + 30)
        sent = json.loads(out.strip().splitlines()[-1])
    finally:
        if camera is not None and camera.poll() is None:
            camera.kill()
        client.close()
        node.stop()
    received = client.targets[n0:n1]
    inf = [r.msg.inference_ms for r in received] or [float("nan")]
    camera_rate = sent["sent"] / sent["seconds"]
    # the worker's busy time per frame: tracker plus the node's own work (conversion, publishing)
    busy_ms = float(np.median(inf)) + max(0.0, float(diag.get("node overhead p50 (ms)", 0.0) or 0.0))
    capacity = 1000.0 / busy_ms
    processed = len(received) / (t1 - t0)
    return {"publisher": reliability, "node_profile": "fastdds_camera.xml" if profile else "none (Fast DDS defaults)",
            "init": "ok" if resp is not None and resp.success else first_answer,
            "camera_rate_hz": round(camera_rate, 2), "tracker_ms_p50": round(float(np.median(inf)), 2),
            "node_overhead_ms_p50": diag.get("node overhead p50 (ms)"), "tracker_capacity_hz": round(capacity, 2),
            "processed_rate_hz": round(processed, 2),
            "processed_vs_min_camera_capacity": round(processed / min(camera_rate, capacity), 3),
            "input_rate_hz_diag": diag.get("input rate (Hz)"), "frames_received_diag": diag.get("frames received")}


def default_settings_matrix(args) -> int:
    """Publisher reliable / best_effort x node profile on / off, 640x480 rgb8 at --rate Hz."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_node_defaults_"))
    model = args.model or REPO / "models" / "dytrack_small.safetensors"
    frames, box = frames_640x480()
    domain = args.domain_id if args.domain_id is not None else 150 + os.getpid() % 50
    rows = []
    for profile in (True, False):
        for reliability in ("reliable", "best_effort"):
            row = measure_default_settings(model, frames, box, args.rate, args.seconds, reliability, profile,
                                           domain, tmp)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "image": "640x480 rgb8", "requested_camera_rate_hz": args.rate, "seconds": args.seconds,
              "environment": "clean: no FASTDDS_DEFAULT_PROFILES_FILE, default discovery range, own ROS_DOMAIN_ID",
              "node": "python -m dytrack_ros --ros-args -p model_path:=... (defaults otherwise)", "rows": rows}
    out = args.out.with_name("bench_node_defaults.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'publisher':<12} {'node DDS profile':<26} {'camera Hz':>9} {'capacity Hz':>11} {'processed Hz':>12} "
          f"{'ratio':>6}")
    for r in rows:
        print(f"{r['publisher']:<12} {r['node_profile']:<26} {r['camera_rate_hz']:>9} {r['tracker_capacity_hz']:>11} "
              f"{r['processed_rate_hz']:>12} {r['processed_vs_min_camera_capacity']:>6}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="model file (default: models/dytrack_small.safetensors, else a random dytrack_small)")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate in Hz")
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement duration")
    ap.add_argument("--domain-id", type=int, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench_node.json")
    ap.add_argument("--default-settings", action="store_true",
                    help="camera in its own process, clean environments: publisher reliable/best_effort x node "
                         "DDS profile on/off (writes bench_node_defaults.json next to --out)")
    ap.add_argument("--camera", choices=("reliable", "best_effort"), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.camera:
        return run_camera(args.camera, args.rate, args.seconds)
    if args.default_settings:
        return default_settings_matrix(args)

    from tqdm import tqdm

    from dytrack_ros.ros.client import CameraStream, TrackerClient
    from dytrack_ros.ros.launcher import NodeProcess, local_ros_env, ros_args

    tmp = Path(tempfile.mkdtemp(prefix="bench_node_"))
    model = args.model or REPO / "models" / "dytrack_small.safetensors"
    random_weights = False
    if not model.is_file():
        from dytrack_ros.model import create_model
        from dytrack_ros.model_io.model_file import save_model_file

        model = tmp / "dytrack_small_random.safetensors"
        save_model_file(create_model("dytrack_small"), model)
        random_weights = True
    frames, box = frames_640x480()
    print(f"model {model.name}{' (random weights)' if random_weights else ''}; measuring pure tracker time ...")
    pure = pure_tracker_ms(model, frames, box)

    domain = args.domain_id if args.domain_id is not None else 150 + os.getpid() % 50
    env = local_ros_env(domain_id=domain)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")})
    node = NodeProcess("dytrack_ros", ros_args({"model_path": str(model), "diagnostics_period": 1.0}),
                       env=env, log_path=tmp / "tracker_node.log").start()
    client = TrackerClient(domain_id=domain, name="bench_camera")
    try:
        client.wait_for_tracker(120)
        cam = CameraStream(client, frames, rate=args.rate, loop=True).start()
        deadline = time.monotonic() + 15
        while not (resp := client.init(box)).success:
            if time.monotonic() > deadline:
                raise SystemExit(f"init failed: {resp.message}")
            time.sleep(0.05)
        time.sleep(2.0)  # warm-up, excluded
        start_targets, start_frames, t0 = len(client.targets), len(cam.headers), time.monotonic()
        with tqdm(total=int(args.seconds), desc="measuring", unit="s") as bar:
            while time.monotonic() - t0 < args.seconds:
                time.sleep(1.0)
                bar.update(1)
        t1 = time.monotonic()
        received = client.targets[start_targets:]
        sent = len(cam.headers) - start_frames
        diag = client.latest_diagnostics(after=t1 - 1.5) or {}
        cam.stop()
    finally:
        client.close()
        rc = node.stop()
    lat_node = [r.msg.latency_ms for r in received]
    inf = [r.msg.inference_ms for r in received]
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", ""),
        "model": model.name, "random_weights": random_weights, "image": "640x480 rgb8",
        "transport": "Fast DDS SHM profile (config/fastdds_shm.xml), LOCALHOST discovery",
        "camera_rate_hz": round(sent / (t1 - t0), 2),
        "processed_rate_hz": round(len(received) / (t1 - t0), 2),
        "frames_sent": sent, "frames_processed": len(received),
        "dropped_frames_total": diag.get("dropped frames"),
        "pure_tracker_ms": {k: round(v, 2) for k, v in pure.items()},
        "tracker_in_node_ms": {"p50": round(float(np.median(inf)), 2), "p95": round(float(np.percentile(inf, 95)), 2)},
        "node_overhead_ms": {"p50": float(diag.get("node overhead p50 (ms)", "nan")),
                             "p95": float(diag.get("node overhead p95 (ms)", "nan"))},
        "worker_wait_ms": {"p50": float(diag.get("worker wait p50 (ms)", "nan")),
                           "p95": float(diag.get("worker wait p95 (ms)", "nan"))},
        "e2e_latency_ms": {"p50": round(float(np.median(lat_node)), 2),
                           "p95": round(float(np.percentile(lat_node, 95)), 2),
                           "max": round(float(np.max(lat_node)), 2)},
        "node_exit_code": rc,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
