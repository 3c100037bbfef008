"""Tracker runtime: preprocess -> backend -> decode, with explicit tracking status."""
from .tracker import (
                      ExitCandidate,
                      Tracker,
                      TrackerInputError,
                      TrackerOutputError,
                      TrackerStateError,
                      TrackResult,
                      TrackStatus,
                      validate_box,
                      validate_frame,
)

__all__ = ["ExitCandidate", "Tracker", "TrackResult", "TrackStatus", "TrackerInputError", "TrackerOutputError",
           "TrackerStateError",
           "validate_box", "validate_frame"]
