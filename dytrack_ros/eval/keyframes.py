"""Hand-annotated keyframe files (``benchmarks/keyframes/<video-stem>.txt``): reading them and the video frames.

Format: ``#`` comment lines (the header names the video, its frame count, resolution and sha256), then one
``frame,x,y,w,h`` line per keyframe: ``frame`` a 0-based frame index, the box in pixels of the original frame
(top-left origin), ``nan,nan,nan,nan`` when the target is out of view. Frames are strictly increasing.
A malformed line raises :class:`KeyframeFileError` naming ``file:line``, so a typo in a hand-written file is
found at once instead of silently changing a benchmark.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


class KeyframeFileError(ValueError):
    """A keyframe file that cannot be read (missing, malformed line, frames out of order)."""


@dataclass(frozen=True)
class Keyframes:
    """The keyframes of one video: frame indices, boxes (N, 4) with NaN rows where the target is absent."""

    path: Path
    frames: np.ndarray
    boxes: np.ndarray
    header: dict[str, str]

    def __len__(self) -> int:
        return int(self.frames.size)

    @property
    def present(self) -> np.ndarray:
        """Boolean mask: keyframes where the target is annotated (not ``nan``)."""
        return np.isfinite(self.boxes).all(axis=1)


def parse_keyframes(path: str | Path) -> Keyframes:
    """Read a keyframe file; header lines ``# key: value`` are collected into ``header``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyframeFileError(f"{path}: cannot read keyframe file ({exc})") from exc
    frames: list[int] = []
    boxes: list[tuple[float, float, float, float]] = []
    header: dict[str, str] = {}
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{path}:{no}"
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                header[key.strip()] = value.strip()
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            raise KeyframeFileError(f"{where}: expected 'frame,x,y,w,h' (5 fields), got {len(parts)}: {line!r}")
        try:
            frame = int(parts[0])
            box = tuple(float(p) for p in parts[1:])
        except ValueError as exc:
            raise KeyframeFileError(f"{where}: not a number in {line!r}") from exc
        if frame < 0:
            raise KeyframeFileError(f"{where}: negative frame index {frame}")
        if frames and frame <= frames[-1]:
            raise KeyframeFileError(f"{where}: frame {frame} does not follow frame {frames[-1]} (must increase)")
        nans = sum(math.isnan(v) for v in box)
        if nans not in (0, 4):
            raise KeyframeFileError(f"{where}: either all four box values are nan (target absent) or none: {line!r}")
        if nans == 0 and (not all(math.isfinite(v) for v in box) or box[2] <= 0 or box[3] <= 0):
            raise KeyframeFileError(f"{where}: box needs finite values and positive width and height: {line!r}")
        frames.append(frame)
        boxes.append(box)  # type: ignore[arg-type]
    if not frames:
        raise KeyframeFileError(f"{path}: no keyframe lines")
    return Keyframes(path, np.asarray(frames, np.int64), np.asarray(boxes, np.float64).reshape(-1, 4), header)


def read_video_frames(path: str | Path, stop: int | None = None) -> list[np.ndarray]:
    """All frames (BGR uint8) of a video up to ``stop`` (exclusive), decoded sequentially.

    Sequential reading, not seeking: seeking in the compressed sample videos may land on a neighbouring frame,
    and a keyframe annotated on frame N must be compared with the tracker's output on that same frame N.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise KeyframeFileError(f"cannot open video {path}")
    frames: list[np.ndarray] = []
    try:
        while stop is None or len(frames) < stop:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(img)
    finally:
        cap.release()
    if not frames:
        raise KeyframeFileError(f"no frames decoded from {path}")
    return frames
