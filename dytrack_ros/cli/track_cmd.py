"""dytrack track: follow one object through a video, write an annotated video and the boxes."""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import TrackerConfig, load_yaml
from .common import (
    add_budget_options,
    add_model_options,
    add_recovery_options,
    budget_config_from_args,
    parse_box,
    runtime_options_from_args,
    tracker_config_from_args,
)


def add_parser(sub) -> None:
    p = sub.add_parser("track", help="track one object in a video (annotated video + boxes + summary)",
                       description="Track the object given by --init through VIDEO (a video file or a folder of "
                                   "images). Draws box, score, status and exit layer on every frame.")
    p.add_argument("video", help="video file (mp4, avi, ...) or folder of images sorted by name")
    p.add_argument("--init", required=True, type=parse_box, metavar="X,Y,W,H",
                   help="initial box in pixels of the first frame: top-left x, y, width, height")
    add_model_options(p)
    p.add_argument("--tracker-config", default=None, metavar="YAML",
                   help="YAML with TrackerConfig fields (uncertain_threshold, lost_threshold, lost_after_frames, ...)")
    p.add_argument("--out", default=None, metavar="MP4", help="write the annotated video here")
    p.add_argument("--boxes", default=None, metavar="TXT",
                   help="write per-frame results: x,y,w,h,score,status,exit_layer (first line = init box)")
    p.add_argument("--stats", default=None, metavar="JSONL",
                   help="write one JSON object per tracked frame: frame index, tracker ms (total and per stage), exit "
                        "layer, thresholds in force, deadline cut and, with a budget, the controller's state")
    add_budget_options(p)
    add_recovery_options(p)
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError
    from ..model_io.model_file import ModelFileError
    from ..tracker import Tracker, TrackerInputError, TrackerOutputError, TrackerStateError
    from ..video import FrameSource, VideoSourceError, VideoWriter
    from ..viz import draw_result, format_histogram

    try:
        cfg = TrackerConfig.from_dict(load_yaml(args.tracker_config)) if args.tracker_config else TrackerConfig()
        cfg = tracker_config_from_args(args, cfg)
        source = FrameSource(args.video)
        tracker = Tracker.from_model(args.model, runtime_options_from_args(args), cfg, ce=args.ce)
        if args.exit_thresholds is not None:
            tracker.set_exit_thresholds(args.exit_thresholds)
        budget = budget_config_from_args(args)
        if budget is not None:
            tracker.set_budget(budget)
    except (BackendError, ModelFileError, VideoSourceError, ValueError, TrackerStateError) as exc:
        print(f"dytrack track: error: {exc}", file=sys.stderr)
        return 2

    writer = VideoWriter(args.out, source.fps) if args.out else None
    # boxes are written as they are tracked: a frame that cannot be read, a broken model or Ctrl-C
    # mid-way keeps every box tracked before it
    try:
        boxes_file = _open_output(args.boxes, "--boxes")
        stats_file = _open_output(args.stats, "--stats")
    except OSError as exc:
        print(f"dytrack track: error: {exc}", file=sys.stderr)
        return 2
    error: str | None = None
    depth = Counter()
    statuses = Counter()
    stage_ms: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": [], "total": []}
    total = min(len(source), args.max_frames) if args.max_frames else len(source)
    bar = tqdm(total=total or None, unit="frame", disable=args.quiet, desc=Path(args.video).name)
    t_start = time.perf_counter()
    n = 0
    try:
        for frame in source:
            if args.max_frames and n >= args.max_frames:
                break
            if n == 0:
                try:
                    tracker.initialize(frame, args.init)
                except TrackerInputError as exc:
                    print(f"dytrack track: error: bad --init: {exc}", file=sys.stderr)
                    return 2
                box, score, status, layer = args.init, 1.0, "tracking", 0
            else:
                try:
                    r = tracker.track(frame)
                except (TrackerInputError, TrackerOutputError) as exc:
                    error = f"frame {n}: {exc}"
                    break
                box, score, status, layer = r.box, r.score, r.status.value, r.exit_layer
                depth[layer] += 1
                statuses[status] += 1
                for k in stage_ms:
                    stage_ms[k].append(r.timings[k])
                if stats_file is not None:
                    stats_file.write(json.dumps(frame_stats(r)) + "\n")
                    stats_file.flush()
            if boxes_file is not None:
                boxes_file.write(",".join(f"{v:.2f}" for v in box) + f",{score:.4f},{status},{layer}\n")
                boxes_file.flush()
            if writer:
                writer.write(draw_result(frame, box, status, score, layer, tracker.num_layers, copy=False))
            n += 1
            bar.update(1)
            if stage_ms["total"]:
                bar.set_postfix(ms=f"{stage_ms['total'][-1]:.1f}", exit=layer, status=status)
    except VideoSourceError as exc:  # an unreadable frame, or the output video cannot be opened
        error = f"frame {n}: {exc}"
    except KeyboardInterrupt:
        error = f"interrupted at frame {n}"
    finally:
        bar.close()
        if writer:
            writer.close()
        if boxes_file is not None:
            boxes_file.close()
        if stats_file is not None:
            stats_file.close()
    wall = time.perf_counter() - t_start
    if error is not None:
        kept = f"; the {n} boxes before it are in {args.boxes}" if args.boxes and n else ""
        print(f"dytrack track: error: {error}{kept}", file=sys.stderr)
        return 2
    if n == 0:
        print(f"dytrack track: error: no frames could be read from {args.video}", file=sys.stderr)
        return 2

    tracked = max(n - 1, 0)
    print(f"\n{tracker.model_name} ({', '.join(f'{k}={v}' for k, v in tracker.backend_info.items() if k != 'model')})")
    print(f"frames: {n} ({tracked} tracked), wall {wall:.1f} s incl. decode/draw/encode = {n / wall:.1f} fps")
    if tracked:
        med = {k: float(np.median(v)) for k, v in stage_ms.items()}
        print(f"tracker: {1000.0 / np.mean(stage_ms['total']):.1f} fps; median ms: preprocess {med['preprocess']:.2f}, "
              f"inference {med['inference']:.2f}, postprocess {med['postprocess']:.2f}, total {med['total']:.2f}")
        mean_depth = sum(k * v for k, v in depth.items()) / tracked
        print("status: " + ", ".join(f"{s} {c}" for s, c in statuses.most_common()))
        print(f"exit depth: mean {mean_depth:.2f} of {tracker.num_layers} layers")
        print(format_histogram(depth, tracker.num_layers))
    if args.out:
        resized = f" ({writer.resized} frames of another size scaled to the first frame's)" if writer.resized else ""
        print(f"annotated video: {args.out}{resized}")
    if tracker.budget is not None and tracked:
        st = tracker.budget.state()
        print(f"budget: p95 {st.achieved_p95_ms:.2f} ms of the last frames (budget "
              f"{tracker.budget.config.latency_budget_ms or '-'} ms), mean depth {st.achieved_mean_depth:.2f} "
              f"(target {tracker.budget.config.target_depth or '-'}), threshold now {st.tau:.2f}, "
              f"{'met' if st.budget_met else 'NOT met'}")
    if args.boxes:
        print(f"boxes: {args.boxes}")
    if args.stats:
        print(f"per-frame stats: {args.stats}")
    return 0


def _open_output(path: str | None, option: str):
    """A per-frame output file opened for writing (its folder created), or None when not asked for."""
    if not path:
        return None
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w")
    except OSError as exc:
        raise OSError(f"cannot write {option} {path}: {exc.strerror or exc}") from exc


def frame_stats(r) -> dict:
    """One line of ``--stats``: what anyone needs to check that a latency budget was held."""
    d = {"frame": r.frame_index, "tracker_ms": round(r.timings["total"], 4),
         "stage_ms": [round(v, 4) for v in r.stage_ms], "exit_layer": r.exit_layer,
         "thresholds": [round(t, 4) for t in r.thresholds], "cut_by_deadline": r.cut_by_deadline}
    if r.budget is not None:
        b = r.budget
        d["budget"] = {"tau": b.tau, "deepest_affordable_exit": b.deepest_affordable_exit,
                       "load_scale": round(b.load_scale, 4), "p95_ms": b.achieved_p95_ms, "met": b.budget_met}
    return d
