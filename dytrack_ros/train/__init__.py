"""Training: pair sampling, losses, the OSTrack/DyTrack/CompressTracker objectives, the loop, calibration."""
