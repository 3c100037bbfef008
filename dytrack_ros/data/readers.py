"""Readers for the standard tracking benchmark layouts: GOT-10k, LaSOT, OTB, TrackingNet.

Each reader turns a folder into a list of :class:`Sequence` and absorbs the
known quirks of its format (see ``docs``-level notes below); a broken layout
raises :class:`DatasetError` naming the file and line, never a bare
``IndexError``. Frame files are listed, not guessed, and sorted by the number
in their name, so 1-based (``00000001.jpg``), 0-based and unpadded
(TrackingNet ``0.jpg, 1.jpg, ... 10.jpg``) names all come out in order.

Quirks handled:
- box files with comma, tab, space or semicolon separators (mixed too), blank
  or whitespace-only lines, a missing final newline, a UTF-8 BOM, ``NaN``
  boxes (treated as "no box": width/height 0, not visible);
- LaSOT flag files written as one comma-separated line or one flag per line;
- OTB sequences with several targets (``groundtruth_rect.1.txt`` /
  ``.2.txt`` -> ``Jogging_1``, ``Jogging_2``) and sequences whose annotation
  starts later than the first image (David, BlurCar1/3/4);
- a LaSOT root that is either the class-folder layout or a flat folder of
  sequences (as the separately distributed test archive unpacks);
- GOT-10k / TrackingNet test splits that only publish the first box.
"""
from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from dytrack_ros.data.lasot_split import LASOT_TEST_SEQUENCES
from dytrack_ros.data.sequence import DatasetError, Sequence

FORMATS = ("got10k", "lasot", "otb", "trackingnet")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

# OTB sequences whose groundtruth_rect.txt starts at a later image (1-based image number).
OTB_START_FRAME: dict[str, int] = {"David": 300, "BlurCar1": 247, "BlurCar3": 3, "BlurCar4": 18}

_SPLIT_RE = re.compile(r"[,\t; ]+")
_NUMBER_RE = re.compile(r"(\d+)")


# ----------------------------------------------------------------------------- text parsing
def read_text(path: Path) -> str:
    """Read an annotation file as text, dropping a UTF-8 BOM; clear error if absent."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing annotation file: {path}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a text file ({exc})") from exc


def parse_boxes(path: Path) -> np.ndarray:
    """Parse a box file (one ``x,y,w,h`` per line, any common separator) into an (N, 4) float array.

    Blank lines are skipped only at the end of the file (a blank line in the
    middle would shift every later frame, so it is an error). ``NaN`` boxes
    become ``0,0,0,0``.
    """
    lines = read_text(path).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for lineno, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            raise DatasetError(f"{path}:{lineno}: empty line inside the box list")
        parts = [p for p in _SPLIT_RE.split(text) if p]
        if len(parts) != 4:
            raise DatasetError(f"{path}:{lineno}: expected 4 numbers (x,y,w,h), got {len(parts)}: {text!r}")
        try:
            rows.append([float(p) for p in parts])
        except ValueError as exc:
            raise DatasetError(f"{path}:{lineno}: not a number in {text!r}") from exc
    if not rows:
        raise DatasetError(f"{path}: no boxes")
    boxes = np.asarray(rows, dtype=np.float64)
    bad = ~np.isfinite(boxes).all(axis=1)
    boxes[bad] = 0.0
    return boxes


def parse_flags(path: Path, dtype=np.int64) -> np.ndarray:
    """Parse a per-frame label file: one value per line, or one comma/space separated line."""
    text = read_text(path).strip()
    if not text:
        raise DatasetError(f"{path}: empty label file")
    parts = [p for p in re.split(r"[,\s;]+", text) if p]
    try:
        return np.asarray([float(p) for p in parts]).astype(dtype)
    except ValueError as exc:
        raise DatasetError(f"{path}: non-numeric label in {path.name}") from exc


def parse_ini(path: Path) -> dict[str, str]:
    """Parse a GOT-10k ``meta_info.ini`` (``[METAINFO]`` then ``key: value`` lines)."""
    parser = configparser.ConfigParser(interpolation=None)
    text = read_text(path)
    if not text.lstrip().startswith("["):
        text = "[METAINFO]\n" + text
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise DatasetError(f"{path}: malformed ini ({exc})") from exc
    out: dict[str, str] = {}
    for section in parser.sections():
        out.update({k: v.strip() for k, v in parser.items(section)})
    return out


def frame_number(path: Path) -> int:
    """The last integer in a frame file name (``00000012.jpg`` -> 12, ``frame_7.png`` -> 7)."""
    found = _NUMBER_RE.findall(Path(path).stem)
    if not found:
        raise DatasetError(f"frame file name has no number: {path}")
    return int(found[-1])


def list_frames(folder: Path) -> list[Path]:
    """Image files of a folder sorted by frame number (numeric, so unpadded names sort right)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"missing frame folder: {folder}")
    frames = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    if not frames:
        raise DatasetError(f"no image files (.jpg/.png/.bmp) in {folder}")
    return sorted(frames, key=lambda p: (frame_number(p), p.name))


def _valid_box(gt: np.ndarray) -> np.ndarray:
    return (gt[:, 2] > 0) & (gt[:, 3] > 0)


def _check_lengths(name: str, frames: list[Path], gt: np.ndarray, allow_first_only: bool) -> None:
    if len(gt) == len(frames):
        return
    if allow_first_only and len(gt) == 1:
        return
    raise DatasetError(
        f"sequence {name!r}: {len(frames)} frames but {len(gt)} ground-truth lines"
        + (" (test splits may give only the first line)" if allow_first_only else "")
    )


def _filter_names(names: list[str], sequences: Iterable[str] | None, where: Path) -> list[str]:
    if sequences is None:
        return names
    wanted = list(dict.fromkeys(sequences))
    missing = [s for s in wanted if s not in set(names)]
    if missing:
        raise DatasetError(f"sequence(s) not found under {where}: {missing[:10]}{' ...' if len(missing) > 10 else ''}")
    return wanted


# ----------------------------------------------------------------------------- GOT-10k
def _got10k_split_dir(root: Path, split: str | None) -> Path:
    if not root.is_dir():
        raise DatasetError(f"GOT-10k root not found: {root}")
    is_split_folder = (root / "list.txt").is_file() or any(
        (p / "groundtruth.txt").is_file() for p in root.iterdir() if p.is_dir()
    )
    if split is None:
        if is_split_folder:
            return root
        present = [s for s in ("val", "test", "train") if (root / s).is_dir()]
        if not present:
            raise DatasetError(f"{root}: not a GOT-10k folder (no list.txt, no train/val/test sub-folders)")
        return root / present[0]
    if (root / split).is_dir():
        return root / split
    if is_split_folder:
        return root
    raise DatasetError(f"{root}: GOT-10k split folder {split!r} not found")


def read_got10k_sequence(folder: Path, split: str = "") -> Sequence:
    """One GOT-10k sequence folder (``00000001.jpg ...``, ``groundtruth.txt``, optional labels)."""
    folder = Path(folder)
    frames = list_frames(folder)
    gt = parse_boxes(folder / "groundtruth.txt")
    _check_lengths(folder.name, frames, gt, allow_first_only=True)
    flags: dict[str, np.ndarray] = {}
    for label in ("absence", "cover", "cut_by_image", "full_occlusion", "out_of_view", "motion_blur"):
        path = folder / f"{label}.label"
        if path.is_file() and len(gt) == len(frames):
            values = parse_flags(path)
            if len(values) != len(gt):
                raise DatasetError(f"{path}: {len(values)} labels for {len(gt)} frames")
            flags[label] = values
    visible = _valid_box(gt)
    if "absence" in flags:
        visible &= flags["absence"] == 0
    if "cover" in flags:
        visible &= flags["cover"] > 0
    meta = parse_ini(folder / "meta_info.ini") if (folder / "meta_info.ini").is_file() else {}
    attributes: dict[str, bool] = {}
    if meta.get("attributes"):
        attributes = {a.strip(): True for a in meta["attributes"].split(",") if a.strip()}
    if len(gt) == len(frames):
        if "absence" in flags:
            attributes.setdefault("absent", bool(flags["absence"].any()))
        if "cut_by_image" in flags:
            attributes.setdefault("cut_by_image", bool(flags["cut_by_image"].any()))
    return Sequence(
        name=folder.name, frames=frames, gt=gt, visible=visible, dataset=f"got10k{'-' + split if split else ''}",
        attributes=attributes, meta=meta, flags=flags,
    )


def load_got10k(root: Path, split: str | None = None, sequences: Iterable[str] | None = None) -> list[Sequence]:
    """GOT-10k: ``root/{train,val,test}/list.txt`` + one folder per sequence (or ``root`` is a split folder)."""
    root = Path(root)
    folder = _got10k_split_dir(root, split)
    list_file = folder / "list.txt"
    if list_file.is_file():
        names = [line.strip() for line in read_text(list_file).splitlines() if line.strip()]
    else:
        names = sorted(p.name for p in folder.iterdir() if (p / "groundtruth.txt").is_file())
    if not names:
        raise DatasetError(f"{folder}: no sequences (empty list.txt and no folders with groundtruth.txt)")
    names = _filter_names(names, sequences, folder)
    missing = [n for n in names if not (folder / n).is_dir()]
    if missing:
        raise DatasetError(f"{folder}: list.txt names folders that do not exist: {missing[:10]}")
    return [read_got10k_sequence(folder / n, split=folder.name) for n in names]


# ----------------------------------------------------------------------------- LaSOT
def read_lasot_sequence(folder: Path) -> Sequence:
    """One LaSOT sequence folder (``img/00000001.jpg``, ``groundtruth.txt``, occlusion/out-of-view flags)."""
    folder = Path(folder)
    frames = list_frames(folder / "img")
    gt = parse_boxes(folder / "groundtruth.txt")
    _check_lengths(folder.name, frames, gt, allow_first_only=False)
    flags = {}
    for label in ("full_occlusion", "out_of_view"):
        path = folder / f"{label}.txt"
        if not path.is_file():
            raise DatasetError(f"{folder.name}: missing {path.name} (LaSOT sequences carry it)")
        values = parse_flags(path)
        if len(values) != len(gt):
            raise DatasetError(f"{path}: {len(values)} flags for {len(gt)} frames")
        flags[label] = values
    visible = _valid_box(gt) & (flags["full_occlusion"] == 0) & (flags["out_of_view"] == 0)
    meta = {"class": folder.name.rsplit("-", 1)[0]}
    if (folder / "nlp.txt").is_file():
        meta["nlp"] = read_text(folder / "nlp.txt").strip()
    attributes = {
        "full_occlusion": bool(flags["full_occlusion"].any()),
        "out_of_view": bool(flags["out_of_view"].any()),
    }
    return Sequence(folder.name, frames, gt, visible, dataset="lasot", attributes=attributes, meta=meta, flags=flags)


def _lasot_index(root: Path) -> dict[str, Path]:
    """Map sequence name -> folder for the class/sequence layout or a flat folder of sequences."""
    index: dict[str, Path] = {}
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if (child / "groundtruth.txt").is_file():
            index[child.name] = child
            continue
        for seq in sorted(p for p in child.iterdir() if p.is_dir()):
            if (seq / "groundtruth.txt").is_file():
                index[seq.name] = seq
    return index


def load_lasot(root: Path, split: str | None = "test", sequences: Iterable[str] | None = None) -> list[Sequence]:
    """LaSOT: ``root/<class>/<class>-<k>/``; ``split`` is ``test`` (the official 280), ``train`` (the rest) or ``all``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"LaSOT root not found: {root}")
    index = _lasot_index(root)
    if not index:
        raise DatasetError(f"{root}: no LaSOT sequences (expected <class>/<class>-<k>/groundtruth.txt)")
    split = (split or "all").lower()
    if sequences is not None:
        names = _filter_names(sorted(index), sequences, root)
    elif split in ("test", "testing"):
        names = [n for n in LASOT_TEST_SEQUENCES if n in index]
        missing = [n for n in LASOT_TEST_SEQUENCES if n not in index]
        if missing:
            raise DatasetError(
                f"{root}: {len(missing)} of the 280 LaSOT test sequences are missing (e.g. {missing[:5]}); "
                "pass --sequences to evaluate a subset"
            )
    elif split in ("train", "training"):
        test = set(LASOT_TEST_SEQUENCES)
        names = [n for n in sorted(index) if n not in test]
    elif split == "all":
        names = sorted(index)
    else:
        raise DatasetError(f"unknown LaSOT split {split!r}; use test, train or all")
    return [read_lasot_sequence(index[n]) for n in names]


# ----------------------------------------------------------------------------- OTB
def read_otb_sequences(folder: Path) -> list[Sequence]:
    """One OTB folder (``img/0001.jpg``, ``groundtruth_rect[.k].txt``) -> one Sequence per annotated target."""
    folder = Path(folder)
    images = list_frames(folder / "img")
    gt_files = sorted(folder.glob("groundtruth_rect*.txt"))
    if not gt_files:
        raise DatasetError(f"{folder}: no groundtruth_rect.txt")
    numbered = {frame_number(p): p for p in images}
    out = []
    for gt_file in gt_files:
        suffix = gt_file.name[len("groundtruth_rect"):-len(".txt")].strip(".")
        name = folder.name if not suffix else f"{folder.name}_{suffix}"
        gt = parse_boxes(gt_file)
        start = OTB_START_FRAME.get(folder.name, min(numbered))
        wanted = list(range(start, start + len(gt)))
        missing = [n for n in wanted if n not in numbered]
        if missing:
            raise DatasetError(
                f"{name}: {len(gt)} boxes from image {start} need images {missing[:5]}... that are not in {folder / 'img'}"
            )
        frames = [numbered[n] for n in wanted]
        out.append(Sequence(name, frames, gt, _valid_box(gt), dataset="otb", meta={"start_frame": str(start)}))
    return out


def load_otb(root: Path, split: str | None = None, sequences: Iterable[str] | None = None) -> list[Sequence]:
    """OTB-style: ``root/<Seq>/img/*.jpg`` + ``groundtruth_rect.txt``; ``split`` is ignored."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"OTB root not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("groundtruth_rect*.txt")))
    if not folders:
        raise DatasetError(f"{root}: no OTB sequences (expected <Seq>/groundtruth_rect.txt + <Seq>/img/)")
    if sequences is not None:
        wanted = list(dict.fromkeys(sequences))
        # a request for "Jogging_1" needs folder "Jogging"
        bases = {w.rsplit("_", 1)[0] if not (root / w).is_dir() else w for w in wanted}
        folders = [f for f in folders if f.name in bases]
    seqs = [s for f in folders for s in read_otb_sequences(f)]
    if sequences is not None:
        by_name = {s.name: s for s in seqs}
        names = _filter_names(list(by_name), sequences, root)
        seqs = [by_name[n] for n in names]
    return seqs


# ----------------------------------------------------------------------------- TrackingNet
def _trackingnet_chunks(root: Path, split: str | None) -> list[Path]:
    if (root / "anno").is_dir() and (root / "frames").is_dir():
        return [root]
    split_l = (split or "test").lower()
    if split_l == "test":
        chunks = [root / "TEST"]
    elif split_l == "train":
        chunks = sorted((p for p in root.glob("TRAIN_*") if p.is_dir()), key=lambda p: frame_number(p))
    else:
        chunks = [root / split]
    chunks = [c for c in chunks if c.is_dir()]
    if not chunks:
        raise DatasetError(f"{root}: no TrackingNet chunk for split {split!r} (expected TEST/ or TRAIN_k/ with anno/ and frames/)")
    return chunks


def load_trackingnet(root: Path, split: str | None = "test", sequences: Iterable[str] | None = None) -> list[Sequence]:
    """TrackingNet: ``root/{TEST,TRAIN_k}/anno/<video>.txt`` + ``frames/<video>/<n>.jpg`` (n from 0, unpadded)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"TrackingNet root not found: {root}")
    entries: dict[str, tuple[Path, Path]] = {}
    for chunk in _trackingnet_chunks(root, split):
        for anno in sorted((chunk / "anno").glob("*.txt")):
            entries[anno.stem] = (anno, chunk / "frames" / anno.stem)
    if not entries:
        raise DatasetError(f"{root}: no TrackingNet annotation files (anno/*.txt)")
    names = _filter_names(sorted(entries), sequences, root)
    out = []
    for name in names:
        anno, frame_dir = entries[name]
        frames = list_frames(frame_dir)
        gt = parse_boxes(anno)
        _check_lengths(name, frames, gt, allow_first_only=True)
        out.append(Sequence(name, frames, gt, _valid_box(gt), dataset="trackingnet"))
    return out


_LOADERS: dict[str, Callable[..., list[Sequence]]] = {
    "got10k": load_got10k,
    "lasot": load_lasot,
    "otb": load_otb,
    "trackingnet": load_trackingnet,
}


def load_dataset(
    format: str, root: str | Path, split: str | None = None, sequences: Iterable[str] | None = None
) -> list[Sequence]:
    """Load every sequence of a benchmark folder in the given layout.

    ``format``: got10k | lasot | otb | trackingnet. ``split``: GOT-10k
    train/val/test (default: the folder itself or the first present of
    val/test/train), LaSOT test/train/all (default test), TrackingNet
    test/train/TRAIN_k (default test); ignored for OTB. ``sequences``
    restricts (and orders) the result; unknown names are an error.
    """
    key = str(format).lower().replace("-", "")
    if key not in _LOADERS:
        raise DatasetError(f"unknown dataset format {format!r}; choose one of {list(FORMATS)}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root not found: {root}")
    kwargs = {}
    if split is not None or key in ("got10k", "otb"):
        kwargs["split"] = split
    return _LOADERS[key](root, sequences=sequences, **kwargs)
