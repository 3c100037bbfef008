"""Tracker runtime: preprocess -> backend -> decode, with explicit tracking status."""
from .tracker import (ExitCandidate, TrackResult, Tracker, TrackerInputError, TrackerStateError, TrackStatus,
                      validate_box, validate_frame)

__all__ = ["ExitCandidate", "Tracker", "TrackResult", "TrackStatus", "TrackerInputError", "TrackerStateError",
           "validate_box", "validate_frame"]
