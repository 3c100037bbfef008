"""Score result folders against a dataset: OPE, GOT-10k AO/SR, per attribute, speed and exit depth.

A *result set* is one folder written by :mod:`dytrack_ros.eval.runner`
(``<seq>.txt``, ``<seq>_time.txt``, ``<seq>_exit.txt``, ``run_info.json``)
or by another tool in the same layout (pytracking/GOT-10k style). A folder
holding no results but sub-folders with ``run_info.json`` (a threshold
sweep) expands into one result set per sub-folder. Every file is checked
before it is scored (:mod:`dytrack_ros.eval.result_files`). Scores are in
percent; curves in fractions of frames.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence as Seq

import cv2

from dytrack_ros.data.sequence import Sequence
from dytrack_ros.eval import metrics as M
from dytrack_ros.eval.result_files import read_exits, read_result_boxes, read_times


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
    repaired: dict[str, list[int]] = field(default_factory=dict)  # result file -> 1-based lines replaced
    lost_status: dict | None = None  # precision/recall of lost/searching vs absence (folders with status files)

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
            "repaired_lines": self.repaired,
            "lost_status": self.lost_status,
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


def _num_layers(info: dict, path: Path) -> int | None:
    """The model depth ``run_info.json`` records (``tracker.num_layers``), if any."""
    n = (info.get("tracker") or {}).get("num_layers")
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ScoreError(f"{path}: tracker.num_layers is {n!r}, not a positive integer")
    return n


def _read_info(results_dir: Path) -> dict:
    path = results_dir / "run_info.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScoreError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(info, dict):
        raise ScoreError(f"{path}: expected a JSON object")
    return info


def score_results(
    sequences: Seq[Sequence], results_dir: str | Path, label: str | None = None, allow_missing: bool = False,
    repair_invalid: bool = False,
) -> ResultSetScore:
    """Score one result folder over ``sequences`` (all must have full ground truth).

    Invalid box rows are refused unless ``repair_invalid``, which replaces
    each by the previous valid row of its file and records the lines in
    ``ResultSetScore.repaired``.
    """
    results_dir = Path(results_dir)
    info = _read_info(results_dir)
    num_layers = _num_layers(info, results_dir / "run_info.json")
    label = label or info.get("label") or results_dir.name
    errors, got_ious, times, exits, per_seq, missing, used = [], [], [], [], [], [], []
    repaired: dict[str, list[int]] = {}
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
        boxes = read_result_boxes(path, len(seq), seq.init_box, repair=repair_invalid)
        if boxes.repaired_lines:
            repaired[str(path)] = boxes.repaired_lines
        pred = boxes.boxes
        e = M.sequence_errors(pred, seq.gt, seq.visible)
        ious = M.got10k_sequence_ious(pred, seq.gt, _image_size(seq), cover=seq.flags.get("cover"), visible=seq.visible)
        time_path = results_dir / f"{seq.name}_time.txt"
        exit_path = results_dir / f"{seq.name}_exit.txt"
        t = read_times(time_path, len(seq)) if time_path.is_file() else None
        x = read_exits(exit_path, len(seq), num_layers) if exit_path.is_file() else None
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
            "ao": float(ious.mean() * 100) if len(ious) else None,
            "fps": sd.fps,
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
        repaired=repaired,
        lost_status=_lost_status(used, results_dir),
    )


def _lost_status(sequences: Seq[Sequence], results_dir: Path) -> dict | None:
    from .lost_status import StatusFileError, score_results_dir

    try:
        score = score_results_dir(sequences, results_dir)
    except (StatusFileError, OSError, UnicodeDecodeError) as exc:
        raise ScoreError(str(exc)) from None
    return None if score is None else score.to_dict()
