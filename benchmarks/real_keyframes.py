#!/usr/bin/env python3
"""Real-footage benchmark: trackers against hand-annotated keyframes of real videos.

For every ``benchmarks/keyframes/<stem>.txt`` whose video is in ``--media`` (``scripts/fetch_media.sh`` fetches
cup.mp4, box.mp4 and vtest.avi from Debian's opencv-doc), each tracker is initialised with the first annotated
keyframe box and run over every frame up to the last keyframe. Scored on the later keyframes: mean IoU, success
rate (IoU > 0.5) and the number of keyframes; keyframes where the target is annotated absent (nan) are counted
but not scored.

Timing is interleaved: all trackers run frame by frame side by side, in an order that rotates every frame, so a
load spike from another process on the machine hits every tracker alike. Only ``track``/``update`` calls are
timed (decoding and colour conversion happen before). Trackers, through the evaluation runner's wrappers: the
DyTrack model (the package's ``Tracker``) with the model file's own exit thresholds (its mean executed depth is
reported) on backend ``auto`` (``dytrack``: on a CPU the model file's ONNX export where one matches) or on torch
(``dytrack_torch``, not run by default), and OpenCV CSRT, KCF and MedianFlow (``cv2.legacy``; skipped with a
printed reason where the installed OpenCV lacks it). No tracker parameter is tuned on these videos.

    python benchmarks/real_keyframes.py --threads 1   # table, JSON and contact sheets in outputs/real_keyframes
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dytrack_ros.backends.engine_cache import file_sha256
from dytrack_ros.eval.keyframes import Keyframes, parse_keyframes, read_video_frames
from dytrack_ros.eval.metrics import iou_continuous
from dytrack_ros.eval.runner import DyTrackEvalTracker, EvalTracker, OpenCVEvalTracker, TrackerSpec

REPO = Path(__file__).resolve().parents[1]
SUCCESS_IOU = 0.5
MODEL_TRACKERS = ("dytrack", "dytrack_torch")  # the model with backend auto / with torch forced
COLORS = {"gt": (0, 255, 0), "dytrack": (0, 0, 255), "dytrack_torch": (128, 0, 128), "csrt": (255, 128, 0),
          "kcf": (255, 0, 255),
          "medianflow": (0, 215, 255)}  # BGR


class MedianFlowTracker(OpenCVEvalTracker):
    """OpenCV contrib MedianFlow (only in ``cv2.legacy``) behind the runner's OpenCV wrapper."""

    def __init__(self) -> None:
        super().__init__("kcf")  # the wrapper checks its own name list; only _create differs
        self.name = "medianflow"

    def _create(self):
        return cv2.legacy.TrackerMedianFlow_create()


def medianflow_missing() -> str | None:
    """Why MedianFlow cannot run here, or None."""
    legacy = getattr(cv2, "legacy", None)
    if legacy is None or not hasattr(legacy, "TrackerMedianFlow_create"):
        return f"cv2 {cv2.__version__} has no cv2.legacy.TrackerMedianFlow_create (needs opencv-contrib)"
    return None


class Recorder:
    """A tracker of the evaluation runner that records each frame's exit layer and, where reported, status."""

    def __init__(self, inner: EvalTracker) -> None:
        self.inner = inner
        self.color = inner.color
        self.exits: list[int] = []
        self.statuses: list[str] = []

    def initialize(self, frame: np.ndarray, box: tuple[float, float, float, float]) -> None:
        self.inner.initialize(frame, box)
        self.exits, self.statuses = [], []

    def track(self, frame: np.ndarray) -> tuple[float, float, float, float]:
        box, exit_layer = self.inner.track(frame)
        self.exits.append(int(exit_layer))
        if getattr(self.inner, "reports_status", False):
            self.statuses.append(self.inner.last_status)
        return tuple(float(v) for v in box)

    def describe(self) -> dict:
        return self.inner.describe()


@dataclass
class VideoResult:
    stem: str
    frames_run: int
    keyframes: Keyframes
    boxes: dict[str, np.ndarray]  # tracker -> (frames_run, 4), row 0 = the init box
    ms: dict[str, list[float]]  # tracker -> per-frame track() ms (frames after the first)
    init_ms: dict[str, float]
    extra: dict[str, dict] = field(default_factory=dict)


def build_trackers(names: list[str], model: Path, threads: int) -> dict[str, Recorder]:
    out: dict[str, Recorder] = {}
    for name in names:
        if name in MODEL_TRACKERS:  # backend auto (the product's default), or torch forced
            spec = TrackerSpec(str(model), backend="torch" if name == "dytrack_torch" else "auto", device="cpu",
                               precision="fp32")
            out[name] = Recorder(DyTrackEvalTracker(spec, threads))
        elif name in ("csrt", "kcf"):
            out[name] = Recorder(OpenCVEvalTracker(name))
        elif name == "medianflow":
            reason = medianflow_missing()
            if reason:
                print(f"skipping MedianFlow: {reason}")
                continue
            out[name] = Recorder(MedianFlowTracker())
        else:
            raise SystemExit(f"unknown tracker {name!r} (dytrack, dytrack_torch, csrt, kcf, medianflow)")
    return out


def run_video(video: Path, kf: Keyframes, trackers: dict[str, Recorder], max_frames: int | None = None) -> VideoResult:
    """Run every tracker over the annotated span, interleaved frame by frame, timing only the track calls."""
    present = np.flatnonzero(kf.present)
    if present.size == 0:
        raise SystemExit(f"{kf.path}: no annotated box to initialise from")
    start = int(kf.frames[present[0]])
    stop = int(kf.frames[-1]) + 1
    if max_frames is not None:
        stop = min(stop, start + max_frames)
    frames = read_video_frames(video, stop)
    if len(frames) < stop:
        raise SystemExit(f"{video}: only {len(frames)} frames decoded, keyframes need {stop}")
    names = list(trackers)
    init_box = tuple(float(v) for v in kf.boxes[present[0]])
    boxes = {n: np.zeros((stop - start, 4)) for n in names}
    ms: dict[str, list[float]] = {n: [] for n in names}
    init_ms: dict[str, float] = {}
    bgr = frames[start]
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    for n in names:
        t = trackers[n]
        t0 = time.perf_counter()
        t.initialize(rgb if t.color == "rgb" else bgr, init_box)
        init_ms[n] = (time.perf_counter() - t0) * 1e3
        boxes[n][0] = init_box
    for i, fi in enumerate(range(start + 1, stop), start=1):
        bgr = frames[fi]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        order = names[i % len(names):] + names[:i % len(names)]  # rotate who runs first
        for n in order:
            t = trackers[n]
            img = rgb if t.color == "rgb" else bgr
            t0 = time.perf_counter()
            box = t.track(img)
            ms[n].append((time.perf_counter() - t0) * 1e3)
            boxes[n][i] = box
    res = VideoResult(video.stem, stop - start, kf, boxes, ms, init_ms)
    for n in MODEL_TRACKERS:
        if n not in trackers:
            continue
        d = trackers[n]
        ex = np.asarray(d.exits)
        layers, counts = np.unique(ex, return_counts=True)
        st, sc = np.unique(np.asarray(d.statuses), return_counts=True)
        res.extra[n] = {"mean_exit_layer": float(ex.mean()) if ex.size else float("nan"),
                        "exit_layer_counts": {int(k): int(v) for k, v in zip(layers, counts)},
                        "status_counts": {str(k): int(v) for k, v in zip(st, sc)}}
    return res


def score(res: VideoResult) -> dict[str, dict]:
    """Per tracker: IoU on every scored keyframe (after the init keyframe, inside the run, target present)."""
    kf = res.keyframes
    start = int(kf.frames[np.flatnonzero(kf.present)[0]])
    sel = [(int(f), b) for f, b, p in zip(kf.frames, kf.boxes, kf.present)
           if start < f < start + res.frames_run and p]
    absent = int(sum(1 for f, p in zip(kf.frames, kf.present) if start < f < start + res.frames_run and not p))
    out = {}
    for n, b in res.boxes.items():
        if sel:
            pred = np.stack([b[f - start] for f, _ in sel])
            gt = np.stack([g for _, g in sel])
            iou = iou_continuous(pred, gt)
        else:
            iou = np.zeros(0)
        out[n] = {"keyframes": len(sel), "absent_keyframes": absent,
                  "mean_iou": float(iou.mean()) if iou.size else float("nan"),
                  "success": float((iou > SUCCESS_IOU).mean()) if iou.size else float("nan"),
                  "ms_per_frame": float(np.mean(res.ms[n])) if res.ms[n] else float("nan"),
                  "ms_p95": float(np.percentile(res.ms[n], 95)) if res.ms[n] else float("nan"),
                  "init_ms": res.init_ms[n], "frames": res.frames_run,
                  "per_keyframe": [{"frame": f, "iou": float(v), "box": [float(x) for x in res.boxes[n][f - start]]}
                                   for (f, _), v in zip(sel, iou)]}
        out[n].update(res.extra.get(n, {}))
    return out


def contact_sheet(res: VideoResult, scores: dict[str, dict], path: Path, video: Path, tile_w: int = 320) -> None:
    """Every keyframe with the ground truth (green) and each tracker's box, labelled with its IoU."""
    kf = res.keyframes
    start = int(kf.frames[np.flatnonzero(kf.present)[0]])
    frames = read_video_frames(video, start + res.frames_run)
    tiles = []
    for f, gt in zip(kf.frames, kf.boxes):
        f = int(f)
        if not start <= f < start + res.frames_run:
            continue
        img = frames[f].copy()
        s = tile_w / img.shape[1]
        img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)

        def rect(b, color, thick):
            if np.isfinite(b).all():
                p0 = (int(round(b[0] * s)), int(round(b[1] * s)))
                p1 = (int(round((b[0] + b[2]) * s)), int(round((b[1] + b[3]) * s)))
                cv2.rectangle(img, p0, p1, color, thick)

        rect(gt, COLORS["gt"], 2)
        for n, b in res.boxes.items():
            rect(b[f - start], COLORS.get(n, (255, 255, 255)), 1)
        label = [f"#{f}" + (" init" if f == start else "")]
        for n in res.boxes:
            hit = [k["iou"] for k in scores[n]["per_keyframe"] if k["frame"] == f]
            if hit:
                label.append(f"{n[:4]} {hit[0]:.2f}")
        bar = np.full((16, img.shape[1], 3), 255, np.uint8)
        x = 2
        for j, text in enumerate(label):
            name = list(res.boxes)[j - 1] if j else None
            color = COLORS.get(name, (0, 0, 0)) if name else (0, 0, 0)
            cv2.putText(bar, text, (x, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.36, color, 1, cv2.LINE_AA)
            x += 8 + int(cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.36, 1)[0][0])
        tiles.append(np.vstack([img, bar]))
    cols = 6
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.full((rows * (h + 4) + 22, cols * (w + 4), 3), 255, np.uint8)
    legend = "  ".join(["green: hand-annotated"] + [f"{n}" for n in res.boxes])
    cv2.putText(sheet, f"{res.stem}: {legend}", (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    x = 4 + int(cv2.getTextSize(f"{res.stem}: green: hand-annotated  ", cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0])
    for n in res.boxes:  # colour swatches after the legend names
        cv2.rectangle(sheet, (x - 2, 2), (x + 8 * len(n) + 4, 19), COLORS.get(n, (0, 0, 0)), 1)
        x += int(cv2.getTextSize(n + "  ", cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)[0][0])
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[22 + r * (h + 4):22 + r * (h + 4) + h, c * (w + 4):c * (w + 4) + w] = t
    cv2.imwrite(str(path), sheet)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "dytrack_small.safetensors"))
    ap.add_argument("--keyframes-dir", default=str(REPO / "benchmarks" / "keyframes"))
    ap.add_argument("--media", default=str(REPO / "data" / "media"), help="folder with the videos")
    ap.add_argument("--videos", default="", help="comma-separated stems (default: every annotated video present)")
    ap.add_argument("--trackers", default="dytrack,csrt,kcf,medianflow")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for every tracker (torch and OpenCV)")
    ap.add_argument("--max-frames", type=int, default=None, help="stop each video this many frames after init")
    ap.add_argument("--out", default=str(REPO / "outputs" / "real_keyframes"))
    ap.add_argument("--no-sheet", action="store_true", help="skip the contact-sheet PNGs")
    args = ap.parse_args(argv)

    cv2.setNumThreads(max(args.threads, 1))
    kdir, media, out = Path(args.keyframes_dir), Path(args.media), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stems = [s for s in args.videos.split(",") if s] or sorted(p.stem for p in kdir.glob("*.txt"))
    names = [n.strip().lower() for n in args.trackers.split(",") if n.strip()]
    report: dict = {"threads": args.threads, "model": str(args.model), "opencv": cv2.__version__,
                    "machine": platform.machine(), "processor": platform.processor(), "videos": {}}
    describes: dict[str, dict] = {}
    for stem in stems:
        kf = parse_keyframes(kdir / f"{stem}.txt")
        video = media / kf.header.get("video", stem).split()[0]
        if not video.is_file():
            print(f"skipping {stem}: {video} not found (scripts/fetch_media.sh fetches it)")
            continue
        digest = file_sha256(video)
        if kf.header.get("sha256") and kf.header["sha256"] != digest:
            print(f"WARNING {stem}: {video} sha256 {digest} differs from the annotated file's {kf.header['sha256']}")
        trackers = build_trackers(names, Path(args.model), args.threads)  # fresh trackers per video
        describes = {n: t.describe() for n, t in trackers.items()}
        t0 = time.perf_counter()
        res = run_video(video, kf, trackers, args.max_frames)
        sc = score(res)
        print(f"{stem}: {res.frames_run} frames, {len(trackers)} trackers in {time.perf_counter() - t0:.1f} s")
        report["videos"][stem] = {"video": str(video), "sha256": digest, "frames_run": res.frames_run,
                                  "first_frame": int(kf.frames[np.flatnonzero(kf.present)[0]]), "trackers": sc}
        for n, b in res.boxes.items():
            np.savetxt(out / f"{stem}_{n}.txt", b, fmt="%.2f", delimiter=",")
        if not args.no_sheet:
            contact_sheet(res, sc, out / f"{stem}_sheet.png", video)
    if not report["videos"]:
        print("no annotated video found")
        return 1
    report["trackers"] = describes
    overall: dict[str, dict] = {}
    for n in describes:
        ious = [k["iou"] for v in report["videos"].values() if n in v["trackers"]
                for k in v["trackers"][n]["per_keyframe"]]
        ms_w = [(v["trackers"][n]["ms_per_frame"], v["trackers"][n]["frames"] - 1)
                for v in report["videos"].values() if n in v["trackers"]]
        ov = {"keyframes": len(ious), "mean_iou": float(np.mean(ious)) if ious else float("nan"),
              "success": float(np.mean(np.asarray(ious) > SUCCESS_IOU)) if ious else float("nan"),
              "ms_per_frame": float(sum(m * k for m, k in ms_w) / max(sum(k for _, k in ms_w), 1))}
        if n in MODEL_TRACKERS:
            ex = [(v["trackers"][n]["mean_exit_layer"], v["trackers"][n]["frames"] - 1)
                  for v in report["videos"].values()]
            ov["mean_exit_layer"] = float(sum(m * k for m, k in ex) / max(sum(k for _, k in ex), 1))
        overall[n] = ov
    report["overall"] = overall
    (out / "results.json").write_text(json.dumps(report, indent=1))

    head = f"{'video':<8} {'tracker':<13} {'kf':>3} {'mIoU':>6} {'SR@0.5':>7} {'ms/frame':>9} {'p95 ms':>7}  extra"
    print(head)
    print("-" * len(head))
    for stem, v in report["videos"].items():
        for n, s in v["trackers"].items():
            extra = ""
            if "mean_exit_layer" in s:
                extra = f"mean exit layer {s['mean_exit_layer']:.2f} {s['exit_layer_counts']}"
            print(f"{stem:<8} {n:<13} {s['keyframes']:>3} {s['mean_iou']:>6.3f} {s['success']:>7.3f} "
                  f"{s['ms_per_frame']:>9.2f} {s['ms_p95']:>7.2f}  {extra}")
    for n, s in overall.items():
        extra = f"mean exit layer {s['mean_exit_layer']:.2f}" if "mean_exit_layer" in s else ""
        print(f"{'overall':<8} {n:<13} {s['keyframes']:>3} {s['mean_iou']:>6.3f} {s['success']:>7.3f} "
              f"{s['ms_per_frame']:>9.2f} {'':>7}  {extra}")
    for n in (m for m in MODEL_TRACKERS if m in overall and "csrt" in overall):
        ratios = [f"{stem} {v['trackers']['csrt']['ms_per_frame'] / v['trackers'][n]['ms_per_frame']:.1f}x"
                  for stem, v in report["videos"].items()]
        print(f"speed-up of {n} ({describes[n]['backend'].get('backend', '?')}) over CSRT, interleaved: "
              + ", ".join(ratios))
    print(f"wrote {out / 'results.json'}" + ("" if args.no_sheet else " and *_sheet.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
