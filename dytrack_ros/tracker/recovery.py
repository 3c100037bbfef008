"""Lost-target recovery: hold, enlarge the search region, re-detect over the frame, re-acquire.

Why: a tracker that keeps centring its search crop on low-confidence boxes
follows whatever is there once the target is occluded or out of view, and never
looks where the target comes back. This state machine keeps the tracker's state
away from such boxes and looks for the target again, with a bounded cost per
frame:

1. **Hold.** Once the target is LOST (and, with ``hold_low_scores``, from the
   first frame below ``lost_threshold``) low-confidence boxes do not move the
   state: the last confident box (at or above ``uncertain_threshold``) is held,
   moved for up to ``hold_frames`` frames at the velocity measured between
   confident frames (a short occlusion of a moving target).
2. **Lost / enlarge.** Once the status window says LOST, every frame searches
   around the held box with a search region ``search_growth`` times larger per
   lost frame (up to ``max_search_scale``; the network input size is unchanged).
3. **Re-detect.** From ``redetect_after_frames`` lost frames on, every frame also
   runs ``redetect_windows`` windows of a tiling of the whole frame at the last
   target scale and its neighbours (``redetect_scales``), cycling through the
   tiling over successive frames, nearest to the held box first. Windows and the
   enlarged local crop run as one batch to the first exit
   (:meth:`~dytrack_ros.backends.base.Backend.infer_batch`): the first exit's
   score is what finds a candidate, and stopping there keeps a search frame's cost
   fixed whatever the exit rule would do.
4. **Re-acquire.** The best box at or above ``reacquire_threshold`` becomes a
   candidate; the next frame tracks at the candidate with the normal search region
   and the full exit rule, and the target is re-acquired when ``reacquire_frames``
   consecutive frames agree (confidence at the threshold, centre within half the
   target size, size within a factor 2). A distractor that scores once does not
   take the track; a failed check drops the candidate and the search goes on.

The template stays the initial one (no template update): a template refreshed
from a box that may be a distractor would make the drift permanent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import TrackerConfig

Box = tuple[float, float, float, float]


def box_centre(box: Box) -> tuple[float, float]:
    return box[0] + 0.5 * box[2], box[1] + 0.5 * box[3]


def tile_windows(width: int, height: int, target_wh: tuple[float, float], scales: tuple[float, ...],
                 search_factor: float, near: tuple[float, float]) -> list[Box]:
    """Target-sized boxes whose search crops (side ``sqrt(w*h) * search_factor``) tile the frame.

    Per scale, crops overlap by half their side, so every point of the frame lies in the central half
    of some crop. Within a scale, windows nearest to ``near`` come first; scales keep the given order.
    """
    out: list[Box] = []
    for scale in scales:
        w, h = max(target_wh[0] * scale, 1.0), max(target_wh[1] * scale, 1.0)
        side = math.sqrt(w * h) * search_factor

        def centres(extent: int) -> list[float]:
            if side >= extent:
                return [0.5 * extent]
            n = math.ceil((extent - side) / (0.5 * side)) + 1
            step = (extent - side) / (n - 1)
            return [0.5 * side + i * step for i in range(n)]

        boxes = [(cx - 0.5 * w, cy - 0.5 * h, w, h) for cy in centres(height) for cx in centres(width)]
        boxes.sort(key=lambda b: (box_centre(b)[0] - near[0]) ** 2 + (box_centre(b)[1] - near[1]) ** 2)
        out.extend(boxes)
    return out


def boxes_agree(a: Box, b: Box) -> bool:
    """Same target: centres within half the (geometric mean) size of ``a`` and sizes within a factor 2."""
    (ax, ay), (bx, by) = box_centre(a), box_centre(b)
    size_a, size_b = math.sqrt(a[2] * a[3]), math.sqrt(b[2] * b[3])
    if size_a <= 0 or size_b <= 0:
        return False
    return math.hypot(ax - bx, ay - by) <= 0.5 * size_a and 0.5 <= size_b / size_a <= 2.0


@dataclass
class RecoveryCounts:
    """Totals since the tracker was initialised (diagnostics)."""

    losses: int = 0  # times the target was declared lost
    search_frames: int = 0  # lost frames on which re-detection windows ran
    windows: int = 0  # re-detection windows evaluated
    candidates: int = 0  # boxes that passed the re-acquire threshold and went to the consistency check
    reacquisitions: int = 0  # candidates confirmed: the target was re-acquired


class Recovery:
    """State of the lost-target recovery for one tracked target (see the module docstring)."""

    def __init__(self) -> None:
        self.counts = RecoveryCounts()
        self.reset(None)

    def reset(self, box: Box | None) -> None:
        """Start (again) from a confident ``box``; the counts are kept."""
        self.last_confident: Box | None = box
        self.velocity = (0.0, 0.0)
        self.since_confident = 0  # frames since the last confident frame
        self.lost = False
        self.lost_frames = 0  # frames since the target was declared lost (0 while not lost)
        self.windows: list[Box] = []
        self.cursor = 0
        self.candidate: Box | None = None
        self.agreements = 0

    # while tracking ---------------------------------------------------------------------------------
    def held_box(self, config: TrackerConfig, width: int, height: int) -> Box:
        """The last confident box, moved at the last velocity for at most ``hold_frames`` frames, centre kept
        inside the image."""
        x, y, w, h = self.last_confident
        n = min(self.since_confident, int(config.hold_frames))
        cx = min(max(x + 0.5 * w + self.velocity[0] * n, 0.0), float(width))
        cy = min(max(y + 0.5 * h + self.velocity[1] * n, 0.0), float(height))
        return (cx - 0.5 * w, cy - 0.5 * h, w, h)

    def confident(self, box: Box) -> None:
        """A confident box: it becomes the held box; the velocity follows its displacement per frame."""
        if self.last_confident is not None:
            (px, py), (cx, cy) = box_centre(self.last_confident), box_centre(box)
            gap = max(self.since_confident, 1)
            vx, vy = (cx - px) / gap, (cy - py) / gap
            self.velocity = (0.5 * self.velocity[0] + 0.5 * vx, 0.5 * self.velocity[1] + 0.5 * vy)
        self.last_confident = box
        self.since_confident = 0

    def declare_lost(self, frame_shape: tuple[int, ...], config: TrackerConfig, search_factor: float) -> None:
        self.lost = True
        self.lost_frames = 1  # the frame that declares the loss is the first lost frame
        self.counts.losses += 1
        held = self.held_box(config, frame_shape[1], frame_shape[0])
        self.windows = tile_windows(frame_shape[1], frame_shape[0], (held[2], held[3]),
                                    tuple(config.redetect_scales), search_factor, box_centre(held))
        self.cursor = 0
        self.candidate, self.agreements = None, 0

    # while lost -------------------------------------------------------------------------------------
    def search_scale(self, config: TrackerConfig) -> float:
        """Search-region size of this lost frame relative to the normal one."""
        return min(float(config.search_growth) ** self.lost_frames, float(config.max_search_scale))

    def next_windows(self, config: TrackerConfig) -> list[Box]:
        """This frame's share of the re-detection tiling (empty before ``redetect_after_frames``)."""
        if self.lost_frames < int(config.redetect_after_frames) or not self.windows:
            return []
        n = min(int(config.redetect_windows), len(self.windows))
        picked = [self.windows[(self.cursor + i) % len(self.windows)] for i in range(n)]
        self.cursor = (self.cursor + n) % len(self.windows)
        if picked:
            self.counts.search_frames += 1
            self.counts.windows += len(picked)
        return picked

    def propose(self, box: Box, score: float, config: TrackerConfig) -> bool:
        """The best box of a search frame; True when it re-acquires the target right away
        (``reacquire_frames`` = 1)."""
        if score < config.reacquire_threshold:
            return False
        self.counts.candidates += 1
        self.candidate, self.agreements = box, 1
        return self._confirmed(config)

    def verify(self, box: Box, score: float, config: TrackerConfig) -> bool:
        """The box tracked at the candidate on the next frame; True when the target is re-acquired."""
        if score >= config.reacquire_threshold and self.candidate is not None and boxes_agree(self.candidate, box):
            self.candidate = box
            self.agreements += 1
            return self._confirmed(config)
        self.candidate, self.agreements = None, 0
        return False

    def _confirmed(self, config: TrackerConfig) -> bool:
        if self.agreements < int(config.reacquire_frames):
            return False
        self.counts.reacquisitions += 1
        return True

    def reacquired(self, box: Box) -> None:
        """Back to tracking from ``box`` (the velocity restarts at zero: the gap says nothing about it)."""
        self.reset(box)

    def end_frame_lost(self) -> None:
        self.lost_frames += 1
        self.since_confident += 1


__all__ = ["Recovery", "RecoveryCounts", "tile_windows", "boxes_agree", "box_centre"]
