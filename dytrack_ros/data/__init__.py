"""Tracking data: the Sequence record, benchmark readers and the synthetic sequence generator."""
from dytrack_ros.data.readers import FORMATS, load_dataset
from dytrack_ros.data.sequence import DatasetError, Sequence

__all__ = ["FORMATS", "DatasetError", "Sequence", "load_dataset"]
