"""One tracking sequence as every reader returns it, whatever the benchmark layout.

Readers, the synthetic generator, the evaluation runner, the scorer and the
training samplers all exchange this one dataclass, so format quirks stay
inside the readers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """A dataset folder or annotation file is missing, malformed or inconsistent."""


@dataclass
class Sequence:
    """Frames and ground truth of one sequence.

    ``gt`` holds one ``(x, y, w, h)`` row per frame (top-left corner and size
    in pixels, float64). Test splits of GOT-10k and TrackingNet publish only
    the first frame's box: then ``gt`` has a single row and ``has_full_gt``
    is False (such sequences can be run but not scored locally).
    ``visible`` is True where the target is annotated as visible (GOT-10k
    ``!absence & cover > 0``, LaSOT ``!full_occlusion & !out_of_view``,
    otherwise GT width and height > 0). ``attributes`` maps challenge names
    (e.g. ``"out_of_view"``) to True/False for per-attribute breakdowns;
    ``meta`` keeps free-form metadata (GOT-10k ``meta_info.ini``, LaSOT
    ``nlp.txt``); ``flags`` keeps the raw per-frame label arrays
    (``absence``, ``cover``, ``full_occlusion``...).
    """

    name: str
    frames: list[Path]
    gt: np.ndarray
    visible: np.ndarray
    dataset: str = ""
    attributes: dict[str, bool] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    flags: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = [Path(p) for p in self.frames]
        self.gt = np.asarray(self.gt, dtype=np.float64).reshape(-1, 4)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)
        if not self.frames:
            raise DatasetError(f"sequence {self.name!r} has no frames")
        if len(self.gt) == 0:
            raise DatasetError(f"sequence {self.name!r} has no ground-truth box")
        if len(self.gt) not in (1, len(self.frames)):
            raise DatasetError(
                f"sequence {self.name!r}: {len(self.frames)} frames but {len(self.gt)} ground-truth boxes"
            )
        if len(self.visible) != len(self.gt):
            raise DatasetError(
                f"sequence {self.name!r}: visible mask has {len(self.visible)} entries for {len(self.gt)} boxes"
            )
        for key, arr in self.flags.items():
            if len(arr) != len(self.gt):
                raise DatasetError(f"sequence {self.name!r}: flag {key!r} has {len(arr)} entries for {len(self.gt)} boxes")

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def has_full_gt(self) -> bool:
        """True when every frame has a box (train/val splits), False for first-frame-only test splits."""
        return len(self.gt) == len(self.frames)

    @property
    def init_box(self) -> tuple[float, float, float, float]:
        """The first frame's box, used to initialise a tracker."""
        x, y, w, h = (float(v) for v in self.gt[0])
        return x, y, w, h

    def tags(self) -> list[str]:
        """Names of the attributes that are set (for per-attribute breakdowns)."""
        return sorted(k for k, v in self.attributes.items() if v)

    def summary(self) -> dict[str, Any]:
        """A small JSON-friendly description (name, length, visible share, attributes)."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "frames": len(self.frames),
            "visible_fraction": float(self.visible.mean()) if self.has_full_gt else None,
            "attributes": self.tags(),
        }
