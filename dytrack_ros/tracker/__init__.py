"""Tracker runtime: preprocess -> backend -> decode, with explicit tracking status."""
from .tracker import TrackResult, Tracker, TrackerInputError, TrackerStateError, TrackStatus, validate_box, validate_frame

__all__ = ["Tracker", "TrackResult", "TrackStatus", "TrackerInputError", "TrackerStateError", "validate_box", "validate_frame"]
