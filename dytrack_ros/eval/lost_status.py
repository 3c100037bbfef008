"""Lost-status score: does the tracker know when it has no target?

A robot acts on the status, not only on the box: a frame on which the tracker
reports ``lost`` or ``searching`` (no target) is a positive, and it is correct
when the ground truth marks the target absent (GOT-10k ``absence``, the
synthetic generator's out-of-view and full-occlusion frames; without that
label, the frames not annotated visible). Precision: of the frames reported
lost, the share where the target really was absent. Recall: of the absent
frames, the share reported lost. The initialisation frame is not counted.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence as Seq

import numpy as np

from ..data.sequence import Sequence

NO_TARGET_STATUSES = ("lost", "searching")


class StatusFileError(ValueError):
    """A ``<seq>_status.txt`` file does not have one known status per frame."""


KNOWN_STATUSES = ("init", "tracking", "uncertain", "lost", "searching", "redetected")


def read_statuses(path: str | Path, frames: int) -> list[str]:
    """One status per frame from a ``<seq>_status.txt`` file (line 1 = ``init``)."""
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(lines) != frames:
        raise StatusFileError(f"{path}: {len(lines)} statuses for {frames} frames")
    unknown = sorted(set(lines) - set(KNOWN_STATUSES))
    if unknown:
        raise StatusFileError(f"{path}: unknown status(es) {unknown[:3]}; known: {list(KNOWN_STATUSES)}")
    return lines


def absent_frames(seq: Sequence) -> np.ndarray:
    """Boolean per frame: the target is absent (the ``absence`` label, else not annotated visible)."""
    if "absence" in seq.flags:
        return np.asarray(seq.flags["absence"]).reshape(-1) != 0
    return ~np.asarray(seq.visible, dtype=bool)


@dataclass(frozen=True)
class LostStatusScore:
    """Counts over the scored frames and the precision/recall of the no-target statuses, in percent."""

    true_positive: int  # reported lost, target absent
    false_positive: int  # reported lost, target present
    false_negative: int  # target absent, not reported lost
    frames: int
    absent: int

    @property
    def precision(self) -> float | None:
        reported = self.true_positive + self.false_positive
        return 100.0 * self.true_positive / reported if reported else None

    @property
    def recall(self) -> float | None:
        return 100.0 * self.true_positive / self.absent if self.absent else None

    def to_dict(self) -> dict:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


def lost_status_score(statuses: Seq[Seq[str]], absences: Seq[np.ndarray]) -> LostStatusScore:
    """Score per-frame statuses of several sequences against their absence masks (frame 0 skipped)."""
    tp = fp = fn = frames = absent = 0
    for st, ab in zip(statuses, absences):
        said = np.array([s in NO_TARGET_STATUSES for s in st[1:]], dtype=bool)
        truth = np.asarray(ab, dtype=bool).reshape(-1)[1:]
        if len(said) != len(truth):
            raise StatusFileError(f"{len(st)} statuses for {len(ab)} frames")
        tp += int(np.sum(said & truth))
        fp += int(np.sum(said & ~truth))
        fn += int(np.sum(~said & truth))
        frames += len(truth)
        absent += int(truth.sum())
    return LostStatusScore(tp, fp, fn, frames, absent)


def score_results_dir(sequences: Seq[Sequence], results_dir: str | Path) -> LostStatusScore | None:
    """The lost-status score of a result folder, over the sequences that have a status file (None: none)."""
    statuses, absences = [], []
    for seq in sequences:
        path = Path(results_dir) / f"{seq.name}_status.txt"
        if path.is_file() and seq.has_full_gt:
            statuses.append(read_statuses(path, len(seq)))
            absences.append(absent_frames(seq))
    return lost_status_score(statuses, absences) if statuses else None


__all__ = ["LostStatusScore", "StatusFileError", "absent_frames", "lost_status_score", "read_statuses",
           "score_results_dir", "NO_TARGET_STATUSES"]
