"""Read and check the per-sequence result files a tracker run leaves: boxes, per-frame times, exit layers.

A score is only as good as its inputs, so a malformed file is refused with
one error naming the file and its 1-based line, never guessed at:

- ``<seq>.txt``: one ``x,y,w,h`` per line (comma, tab, semicolon or space
  separated), one line per frame. A row with a non-finite value or a
  negative width or height is invalid. pytracking refuses such files too.
  ``w == 0`` or ``h == 0`` is valid: the OPE protocol replaces it by the
  previous frame's prediction. On request (``repair=True``) each invalid row is
  replaced by the previous valid row of the same file; an invalid first row
  is replaced by the ground-truth initialisation box, which both protocols
  ignore anyway (OPE forces frame 1 to the ground truth, GOT-10k drops it).
- ``<seq>_time.txt``: one number of seconds per line, one line per frame,
  finite and ``>= 0``.
- ``<seq>_exit.txt``: one integer per line, one line per frame, the 1-based
  layer where inference stopped, ``0`` where no exit ran (the
  initialisation frame); at most the model's depth when it is known.

Blank lines are accepted only at the end of a file: one in the middle would
shift every later frame.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SPLIT_RE = re.compile(r"[,\t; ]+")

REPAIR_HINT = "pass --repair-invalid to replace invalid rows by the previous valid box"


class ResultFileError(ValueError):
    """A result file is malformed; the message names the file and line."""


def _lines(path: Path) -> list[str]:
    """The file's lines without trailing blank lines; a blank line inside is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ResultFileError(f"{path}: not a text file ({exc})") from exc
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise ResultFileError(f"{path}:{lineno}: empty line inside the file (it would shift every later frame)")
    if not lines:
        raise ResultFileError(f"{path}: empty file")
    return lines


def _check_count(path: Path, n: int, frames: int, what: str) -> None:
    if n > frames:
        raise ResultFileError(f"{path}:{frames + 1}: more {what} than the sequence's {frames} frames ({n} lines)")
    if n < frames:
        raise ResultFileError(f"{path}:{n}: file ends after {n} {what} but the sequence has {frames} frames "
                              "(unfinished run? resume it)")


def read_boxes(path: Path) -> np.ndarray:
    """All rows of a box file as an (N, 4) float array, non-finite values kept as they are."""
    rows = []
    for lineno, line in enumerate(_lines(path), start=1):
        parts = [p for p in _SPLIT_RE.split(line.strip()) if p]
        if len(parts) != 4:
            raise ResultFileError(f"{path}:{lineno}: expected 4 numbers (x,y,w,h), got {len(parts)}: {line.strip()!r}")
        try:
            rows.append([float(p) for p in parts])
        except ValueError as exc:
            raise ResultFileError(f"{path}:{lineno}: not a number in {line.strip()!r}") from exc
    return np.asarray(rows, dtype=np.float64)


def invalid_box_reason(box: np.ndarray) -> str | None:
    """Why a predicted ``x,y,w,h`` cannot be scored, or None when it can."""
    if not np.isfinite(box).all():
        return "non-finite value"
    if box[2] < 0 or box[3] < 0:
        return "negative width or height"
    return None


@dataclass
class Boxes:
    """A checked box file: the boxes to score and the 1-based lines that were repaired."""

    boxes: np.ndarray
    repaired_lines: list[int]


def read_result_boxes(path: Path, frames: int, init_box, repair: bool = False) -> Boxes:
    """Read ``<seq>.txt``, check one row per frame and every row valid, or repair invalid rows on request."""
    boxes = read_boxes(path)
    _check_count(path, len(boxes), frames, "boxes")
    repaired: list[int] = []
    last = np.asarray(init_box, dtype=np.float64)
    for i, box in enumerate(boxes):
        reason = invalid_box_reason(box)
        if reason is None:
            last = box.copy()
            continue
        if not repair:
            text = ",".join(f"{v:g}" for v in box)
            raise ResultFileError(f"{path}:{i + 1}: invalid box {text} ({reason}); {REPAIR_HINT}")
        boxes[i] = last
        repaired.append(i + 1)
    return Boxes(boxes, repaired)


def _numbers(path: Path, what: str):
    """(line number, text, value) of a one-number-per-line result file; a non-number is refused with file:line."""
    for lineno, line in enumerate(_lines(path), start=1):
        text = line.strip()
        try:
            yield lineno, text, float(text)
        except ValueError as exc:
            raise ResultFileError(f"{path}:{lineno}: expected one {what}, got {text!r}") from exc


def read_times(path: Path, frames: int) -> np.ndarray:
    """Read ``<seq>_time.txt``: one finite, non-negative number of seconds per frame."""
    values = []
    for lineno, text, v in _numbers(path, "number of seconds"):
        if not np.isfinite(v) or v < 0:
            raise ResultFileError(f"{path}:{lineno}: time {text} is not a finite number of seconds >= 0")
        values.append(v)
    _check_count(path, len(values), frames, "times")
    return np.asarray(values, dtype=np.float64)


def read_exits(path: Path, frames: int, num_layers: int | None = None) -> np.ndarray:
    """Read ``<seq>_exit.txt``: one exit layer per frame, ``0..num_layers`` (``0``: no exit ran)."""
    values = []
    for lineno, text, v in _numbers(path, "exit layer"):
        if not np.isfinite(v) or v != int(v) or v < 0:
            raise ResultFileError(f"{path}:{lineno}: exit layer {text} is not an integer >= 0")
        if num_layers is not None and v > num_layers:
            raise ResultFileError(f"{path}:{lineno}: exit layer {int(v)} is beyond the model's {num_layers} layers")
        values.append(int(v))
    _check_count(path, len(values), frames, "exit layers")
    return np.asarray(values, dtype=np.int64)
