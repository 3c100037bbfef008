"""vision_msgs interop: the tracked target as ``vision_msgs/Detection2DArray`` and the best detection of a
detector's ``Detection2DArray`` as an init box. vision_msgs is optional (no import at module load).

Box convention: vision_msgs ``BoundingBox2D`` is centre + size in source-image pixels (the same numbers as
``TrackedTarget.center_x/size_x``); the tracker's boxes are top-left + size (x, y, w, h).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Iterable


def load_vision_msgs() -> ModuleType | None:
    """``vision_msgs.msg`` where it is installed (ros-<distro>-vision-msgs), else None."""
    try:
        import vision_msgs.msg as module
    except ImportError:
        return None
    return module


def target_detections(vm: ModuleType, header, box_xywh: Iterable[float] | None, score: float, track_id: int,
                      class_id: str = ""):
    """A ``Detection2DArray`` with the target as its one detection (``id`` = track id, one hypothesis with the
    score), or with no detection when ``box_xywh`` is None (idle or lost: followers see that nothing is
    tracked)."""
    arr = vm.Detection2DArray()
    arr.header = header
    if box_xywh is None:
        return arr
    x, y, w, h = (float(v) for v in box_xywh)
    det = vm.Detection2D()
    det.header = header
    det.id = str(int(track_id))
    det.bbox.center.position.x, det.bbox.center.position.y = x + w / 2.0, y + h / 2.0
    det.bbox.center.theta = 0.0
    det.bbox.size_x, det.bbox.size_y = w, h
    hyp = vm.ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = class_id
    hyp.hypothesis.score = float(score)
    det.results = [hyp]
    arr.detections = [det]
    return arr


@dataclass(frozen=True)
class Pick:
    """The detection chosen to initialise on: top-left box, its score and class."""

    box: tuple[float, float, float, float]
    score: float
    class_id: str
    detection_id: str


def detection_score(det, class_ids: frozenset[str] = frozenset()) -> tuple[float, str] | None:
    """Highest hypothesis score of ``det`` among ``class_ids`` (all classes when empty), with its class; a
    detection without hypotheses counts as score 0 of class '' (only accepted without a class filter)."""
    best: tuple[float, str] | None = None
    for r in det.results:
        cls, score = str(r.hypothesis.class_id), float(r.hypothesis.score)
        if class_ids and cls not in class_ids or not math.isfinite(score):
            continue
        if best is None or score > best[0]:
            best = (score, cls)
    if best is None and not det.results and not class_ids:
        best = (0.0, "")
    return best


def best_detection(arr, class_ids: Iterable[str] = (), min_score: float = 0.0) -> Pick | None:
    """The detection with the highest score at or above ``min_score`` (optionally of one of ``class_ids``)
    whose box is finite with a positive size; None when there is none."""
    wanted = frozenset(c for c in class_ids if c)
    pick: Pick | None = None
    for det in arr.detections:
        scored = detection_score(det, wanted)
        if scored is None or scored[0] < min_score:
            continue
        cx, cy = float(det.bbox.center.position.x), float(det.bbox.center.position.y)
        w, h = float(det.bbox.size_x), float(det.bbox.size_y)
        if not all(math.isfinite(v) for v in (cx, cy, w, h)) or w <= 0 or h <= 0:
            continue
        if pick is None or scored[0] > pick.score:
            pick = Pick((cx - w / 2.0, cy - h / 2.0, w, h), scored[0], scored[1], str(det.id))
    return pick


__all__ = ["Pick", "best_detection", "detection_score", "load_vision_msgs", "target_detections"]
