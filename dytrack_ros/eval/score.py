"""Score result folders against a dataset: OPE, GOT-10k AO/SR, per attribute, speed and exit depth.

A *result set* is one folder written by :mod:`dytrack_ros.eval.runner`
(``<seq>.txt``, ``<seq>_time.txt``, ``<seq>_exit.txt``, ``run_info.json``)
or by another tool in the same layout (pytracking/GOT-10k style). A folder
holding no results but sub-folders with ``run_info.json`` (a threshold
sweep) expands into one result set per sub-folder.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence as Seq

import cv2
import numpy as np

from dytrack_ros.data.readers import parse_boxes, parse_flags
from dytrack_ros.data.sequence import DatasetError, Sequence
from dytrack_ros.eval import metrics as M


class ScoreError(ValueError):
    """Results cannot be scored (missing files, wrong lengths, no ground truth)."""


@dataclass
class ResultSetScore:
    """All scores of one result folder."""

    label: str
    results_dir: str
    ope: M.OPEResult
    got10k: M.GOT10kResult
    speed: M.SpeedDepth
    per_sequence: list[dict]
    per_attribute: dict[str, dict]
    missing: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def exit_thresholds(self) -> list[float] | None:
        spec = self.info.get("spec") or {}
        return spec.get("exit_thresholds")

    @property
    def model(self) -> str:
        spec = self.info.get("spec") or {}
        return spec.get("model", self.label)

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "results_dir": self.results_dir,
            "info": self.info,
            "ope": self.ope.to_dict(),
            "got10k": self.got10k.to_dict(),
            "speed": self.speed.to_dict(),
            "per_attribute": self.per_attribute,
            "per_sequence": self.per_sequence,
            "missing": self.missing,
        }


def expand_result_dirs(dirs: Seq[str | Path]) -> list[Path]:
    """Result folders, with sweep parents expanded into their ``run_info.json`` sub-folders."""
    out: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise ScoreError(f"results folder not found: {d}")
        if (d / "run_info.json").is_file() or any(d.glob("*.txt")):
            out.append(d)
            continue
        subs = sorted(p for p in d.iterdir() if (p / "run_info.json").is_file())
        if not subs:
            raise ScoreError(f"{d}: no result files (<seq>.txt) and no result sub-folders")
        out.extend(subs)
    return out


def _image_size(seq: Sequence) -> tuple[int, int]:
    res = seq.meta.get("resolution")
    if res:
        nums = re.findall(r"\d+", res)
        if len(nums) == 2:
            return int(nums[0]), int(nums[1])
    img = cv2.imread(str(seq.frames[0]), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ScoreError(f"cannot read {seq.frames[0]} to learn the image size")
    return img.shape[1], img.shape[0]


def _read_optional(path: Path, dtype) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        return parse_flags(path, dtype=dtype) if dtype is np.int64 else np.asarray(
            [float(x) for x in path.read_text().split()], dtype=np.float64)
    except (DatasetError, ValueError) as exc:
        raise ScoreError(f"{path}: unreadable ({exc})") from exc


def score_results(
    sequences: Seq[Sequence], results_dir: str | Path, label: str | None = None, allow_missing: bool = False,
) -> ResultSetScore:
    """Score one result folder over ``sequences`` (all must have full ground truth)."""
    results_dir = Path(results_dir)
    info = {}
    if (results_dir / "run_info.json").is_file():
        info = json.loads((results_dir / "run_info.json").read_text())
    label = label or info.get("label") or results_dir.name
    errors, got_ious, times, exits, per_seq, missing, used = [], [], [], [], [], [], []
    for seq in sequences:
        if not seq.has_full_gt:
            raise ScoreError(
                f"sequence {seq.name!r} has ground truth for the first frame only (a test split): "
                "submit its results to the benchmark's evaluation server instead"
            )
        path = results_dir / f"{seq.name}.txt"
        if not path.is_file():
            missing.append(seq.name)
            continue
        try:
            pred = parse_boxes(path)
        except DatasetError as exc:
            raise ScoreError(str(exc)) from exc
        if len(pred) != len(seq.gt):
            raise ScoreError(f"{path}: {len(pred)} boxes for {len(seq.gt)} frames (unfinished run? resume it)")
        e = M.sequence_errors(pred, seq.gt, seq.visible)
        ious = M.got10k_sequence_ious(pred, seq.gt, _image_size(seq), cover=seq.flags.get("cover"), visible=seq.visible)
        t = _read_optional(results_dir / f"{seq.name}_time.txt", np.float64)
        x = _read_optional(results_dir / f"{seq.name}_exit.txt", np.int64)
        errors.append(e)
        got_ious.append(ious)
        used.append(seq)
        if t is not None:
            times.append(t)
        if x is not None:
            exits.append(x)
        sd = M.speed_and_depth([t] if t is not None else [], [x] if x is not None else None)
        per_seq.append({
            "name": seq.name,
            "frames": len(seq),
            "auc": float(M.success_curve(e.overlaps).mean() * 100),
            "precision": float(M.precision_curve(e.centre_errors)[M.PRECISION_AT] * 100),
            "ao": float(ious.mean()) if len(ious) else None,
            "fps": sd.fps if t is not None else None,
            "mean_layers": sd.mean_layers,
            "attributes": seq.tags(),
        })
    if missing and not allow_missing:
        raise ScoreError(
            f"{results_dir}: no results for {len(missing)} of {len(sequences)} sequences "
            f"(e.g. {missing[:5]}); finish the run (eval resumes) or pass --allow-missing"
        )
    if not errors:
        raise ScoreError(f"{results_dir}: no results for any of the {len(sequences)} sequences")
    per_attr = {}
    names = sorted({a for s in used for a in s.tags()})
    for attr in names:
        idx = [i for i, s in enumerate(used) if attr in s.tags()]
        ope = M.ope_from_errors([errors[i] for i in idx])
        got = M.got10k_from_ious([got_ious[i] for i in idx])
        per_attr[attr] = {"num_sequences": len(idx), "auc": ope.auc, "precision": ope.precision,
                          "norm_precision": ope.norm_precision, "ao": got.ao}
    return ResultSetScore(
        label=label,
        results_dir=str(results_dir),
        ope=M.ope_from_errors(errors),
        got10k=M.got10k_from_ious(got_ious),
        speed=M.speed_and_depth(times, exits if exits else None),
        per_sequence=per_seq,
        per_attribute=per_attr,
        missing=missing,
        info=info,
    )
