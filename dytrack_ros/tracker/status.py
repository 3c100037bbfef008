"""Tracking status (tracking / uncertain / lost) from a short window of recent confidences.

Why a window and not a run of consecutive low frames: a target that has left
the view gives scores that hover around the lost threshold, and a consecutive
counter is reset by every frame that happens to land just above it, so an
absent target never became LOST (47 uncertain and 3 tracking frames out of 50
were measured). Counting the low frames among the last ``2 * lost_after_frames``
frames is not reset by an occasional higher score, and while the window holds
that many low frames a single confident frame does not flip the status back to
tracking. The scores are kept (not their verdicts) so that a change of the
thresholds at runtime applies to the whole window at once.

Limits: a target whose absence gives scores that stay between the two
thresholds reads as UNCERTAIN, not LOST. Once LOST, the recovery state machine
(:mod:`~dytrack_ros.tracker.recovery`) takes over the status until the target
is re-acquired.
"""
from __future__ import annotations

from collections import deque
from enum import Enum

from ..config import TrackerConfig


class TrackStatus(str, Enum):
    """What the tracker knows about the target on a frame.

    LOST and SEARCHING both mean "no target on this frame" (the box is the last
    confident one, held): LOST while the tracker looks around the held position,
    SEARCHING once global re-detection scans the whole frame. REDETECTED marks
    the frame on which a lost target was re-acquired; TRACKING follows.
    """

    TRACKING = "tracking"
    UNCERTAIN = "uncertain"
    LOST = "lost"
    SEARCHING = "searching"
    REDETECTED = "redetected"

    @property
    def target_lost(self) -> bool:
        """True when the frame has no target (LOST or SEARCHING): what a robot should act on."""
        return self in (TrackStatus.LOST, TrackStatus.SEARCHING)


class StatusWindow:
    """Turns each frame's confidence into a :class:`TrackStatus` under a :class:`TrackerConfig`."""

    def __init__(self) -> None:
        self._scores: deque[float] = deque()

    def reset(self) -> None:
        self._scores.clear()

    def window_size(self, config: TrackerConfig) -> int:
        return 2 * int(config.lost_after_frames)

    def update(self, score: float, config: TrackerConfig) -> TrackStatus:
        """Add one frame's confidence and return the status for it.

        LOST while at least ``lost_after_frames`` of the last ``2 * lost_after_frames`` scores lie below
        ``lost_threshold``; otherwise TRACKING at or above ``uncertain_threshold``, else UNCERTAIN.
        """
        size = self.window_size(config)
        self._scores.append(float(score))
        while len(self._scores) > size:
            self._scores.popleft()
        low = sum(1 for s in self._scores if s < config.lost_threshold)
        if low >= int(config.lost_after_frames):
            return TrackStatus.LOST
        if score >= config.uncertain_threshold:
            return TrackStatus.TRACKING
        return TrackStatus.UNCERTAIN
