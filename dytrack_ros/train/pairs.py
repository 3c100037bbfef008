"""Template/search training pairs sampled from video datasets, still images and synthetic sequences.

Every sample is a pure function of ``(seed, epoch, index)``: its random draws
come from ``numpy.random.default_rng([seed, epoch, index])``. So the data are
identical with 0 or 8 loader workers, on 1 or 8 ranks, and after a resume;
the only sampler state is (epoch, position), kept by :class:`EpochSampler`.

Recipe (OSTrack's training sampler): a dataset is drawn by its ratio, then a
sequence uniformly; the template frame is a visible frame, the search frame a
visible frame at most ``max_gap`` later (earlier when none is later). The
template is cropped around its GT box (no jitter by default), the search
around a jittered box (size ``wh·exp(N(0,1)·0.25)`` per axis, centre
``+ (U − 0.5)·sqrt(jittered area)·3``). Augmentation: joint greyscale (5 %),
joint horizontal flip (50 %), per-image brightness factor U(0.8, 1.2).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator
from typing import Sequence as Seq

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..config import ModelConfig
from ..data.composite import CompositeOptions, CompositePairs, MediaBank
from ..data.sequence import DatasetError, Sequence
from ..image_io import ImageReadError, read_image
from ..tracker.preprocess import normalize, sample_target
from .config import DataConfig, DataSource
from .losses import gaussian_heatmap

MAX_ATTEMPTS = 100


class PairSamplingError(RuntimeError):
    """No valid training pair could be drawn (empty datasets or boxes that never fit a crop)."""


# ----------------------------------------------------------------------------- sources
def load_coco(root: str | Path, split: str | None = "train2017", min_size: float = 0.0) -> list[Sequence]:
    """COCO instance annotations as one-frame sequences (one per non-crowd object).

    Objects whose width or height is <= ``min_size`` are marked invisible, so
    the sampler never picks them (OSTrack uses 50 px).
    """
    root = Path(root)
    split = split or "train2017"
    ann_path = root / "annotations" / f"instances_{split}.json"
    if not ann_path.is_file():
        raise DatasetError(f"COCO annotations not found: {ann_path}")
    data = json.loads(ann_path.read_text())
    images = {im["id"]: im["file_name"] for im in data.get("images", [])}
    seqs = []
    for ann in data.get("annotations", []):
        if ann.get("iscrowd", 0) or ann.get("image_id") not in images:
            continue
        box = np.asarray(ann["bbox"], dtype=np.float64).reshape(1, 4)
        visible = np.array([box[0, 2] > min_size and box[0, 3] > min_size])
        frame = root / "images" / split / images[ann["image_id"]]
        seqs.append(Sequence(name=f"coco_{ann['id']}", frames=[frame], gt=box, visible=visible, dataset="coco"))
    return seqs


def load_source(src: DataSource, coco_min_size: float = 50.0) -> list[Sequence] | CompositePairs:
    """Read one configured data source (generating synthetic data on first use if asked).

    Video, still-image and synthetic sources give their sequences; a ``composite`` source gives the pair
    composer itself (it has no sequences: every pair is a new scene).
    """
    fmt = src.format.lower().replace("-", "")
    if fmt == "composite":
        try:
            options = CompositeOptions(**dict(src.options or {}))
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"data source composite:{src.root}: bad options: {exc}") from exc
        return CompositePairs(MediaBank.load(src.root, src.split or "train"), options)
    if src.options:
        raise DatasetError(f"data source {src.format}:{src.root}: 'options' applies to composite sources only")
    if fmt == "coco":
        seqs = load_coco(src.root, src.split, coco_min_size)
    else:
        from ..data import load_dataset

        if fmt == "synth":
            root = Path(src.root)
            if not root.is_dir():
                if not src.generate:
                    raise DatasetError(f"synthetic data folder {root} not found (set 'generate' to create it)")
                from ..data.synth import generate_dataset

                generate_dataset(root, **dict(src.generate))
            fmt = "got10k"
        seqs = load_dataset(fmt, src.root, split=src.split, sequences=src.sequences)
    usable = [s for s in seqs if s.has_full_gt and usable_frames(s).size]
    if not usable:
        raise DatasetError(f"data source {src.format}:{src.root} has no sequence with a usable annotated frame")
    return usable


def usable_frames(seq: Sequence) -> np.ndarray:
    """Indices of frames that are visible and have a positive-size box."""
    ok = seq.visible & (seq.gt[:, 2] > 0) & (seq.gt[:, 3] > 0) & np.isfinite(seq.gt).all(axis=1)
    return np.flatnonzero(ok)


# ----------------------------------------------------------------------------- geometry
def jitter_box(box: np.ndarray, center_jitter: float, scale_jitter: float, rng: np.random.Generator) -> np.ndarray:
    """OSTrack/pytracking jitter: per-axis log-normal size, uniform centre shift scaled by sqrt(area)."""
    x, y, w, h = (float(v) for v in box)
    if center_jitter == 0 and scale_jitter == 0:
        return np.array([x, y, w, h])
    size = np.array([w, h]) * np.exp(rng.standard_normal(2) * scale_jitter)
    max_offset = math.sqrt(float(size.prod())) * center_jitter
    centre = np.array([x + 0.5 * w, y + 0.5 * h]) + max_offset * (rng.random(2) - 0.5)
    return np.array([centre[0] - 0.5 * size[0], centre[1] - 0.5 * size[1], size[0], size[1]])


def box_in_crop(gt: np.ndarray, crop_box: np.ndarray, factor: float, output_size: int) -> np.ndarray:
    """GT (x, y, w, h) in image pixels -> normalised (x, y, w, h) in the crop that ``sample_target`` makes."""
    x, y, w, h = (float(v) for v in crop_box)
    crop_sz = math.ceil(math.sqrt(w * h) * factor)
    x1 = round(x + 0.5 * w - crop_sz * 0.5)
    y1 = round(y + 0.5 * h - crop_sz * 0.5)
    s = 1.0 / crop_sz  # (pixels * output/crop) / output
    return np.array([(gt[0] - x1) * s, (gt[1] - y1) * s, gt[2] * s, gt[3] * s], dtype=np.float32)


def read_rgb(path: Path) -> np.ndarray:
    try:
        return read_image(path, "rgb")
    except ImageReadError as exc:
        raise DatasetError(str(exc)) from exc


# ----------------------------------------------------------------------------- dataset
def _box_fits(box: np.ndarray, size: int) -> bool:
    """A normalised box in a ``size``-pixel crop is a usable target: centre inside the crop, at least 1 px each way."""
    cx, cy = box[0] + 0.5 * box[2], box[1] + 0.5 * box[3]
    return bool(0.0 <= cx < 1.0 and 0.0 <= cy < 1.0 and box[2] * size >= 1 and box[3] * size >= 1)


class PairDataset(Dataset):
    """Map-style dataset of template/search pairs; items are addressed by ``(epoch, index)``.

    Each item is a dict of tensors: ``template`` (3,T,T) and ``search`` (3,S,S)
    normalised as at inference, ``template_box``/``search_box`` (4,) normalised
    (x, y, w, h) in their crops, ``heatmap`` (F,F) Gaussian target of the search
    box centre, ``source`` (dataset index).
    """

    def __init__(self, sources: Seq[Seq[Sequence] | CompositePairs], weights: Seq[float], cfg: DataConfig,
                 model_cfg: ModelConfig, seed: int = 0) -> None:
        if not sources or any(not isinstance(s, CompositePairs) and len(s) == 0 for s in sources):
            raise PairSamplingError("every data source needs at least one sequence")
        if len(weights) != len(sources):
            raise PairSamplingError(f"{len(sources)} sources but {len(weights)} weights")
        w = np.asarray(weights, dtype=np.float64)
        self.sources, self._usable = [], []
        for i, src in enumerate(sources):
            if isinstance(src, CompositePairs):
                self.sources.append(src)
                self._usable.append([])
                continue
            kept = [(s, usable_frames(s)) for s in src]
            kept = [(s, u) for s, u in kept if u.size]
            if not kept:
                raise PairSamplingError(f"data source {i} has no sequence with a visible, annotated frame")
            self.sources.append([s for s, _ in kept])
            self._usable.append([u for _, u in kept])
        self.probs = w / w.sum()
        self.cfg = cfg
        self.mcfg = model_cfg
        self.seed = int(seed)

    @classmethod
    def from_config(cls, cfg: DataConfig, model_cfg: ModelConfig, seed: int = 0) -> "PairDataset":
        if not cfg.sources:
            raise PairSamplingError("data.sources is empty: configure at least one dataset")
        sources = [load_source(s, cfg.coco_min_size) for s in cfg.sources]
        return cls(sources, [s.weight for s in cfg.sources], cfg, model_cfg, seed)

    def __len__(self) -> int:
        return self.cfg.samples_per_epoch

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, int(key))
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        for _ in range(MAX_ATTEMPTS):
            item = self._try_sample(rng)
            if item is not None:
                return item
        raise PairSamplingError(f"no valid pair after {MAX_ATTEMPTS} attempts (epoch {epoch}, index {index})")

    # -- internals
    def _pick_frames(self, seq: Sequence, usable: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        t = int(usable[rng.integers(len(usable))])
        gap = self.cfg.max_gap
        later = usable[(usable > t) & (usable <= t + gap)]
        if later.size:
            return t, int(later[rng.integers(later.size)])
        earlier = usable[(usable < t) & (usable >= t - gap)]
        if earlier.size:
            return t, int(earlier[rng.integers(earlier.size)])
        return t, t  # still image (COCO) or single usable frame

    def _crop(self, frame: np.ndarray, gt: np.ndarray, factor: float, size: int, cj: float, sj: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
        crop_box = jitter_box(gt, cj, sj, rng)
        if crop_box[2] <= 0 or crop_box[3] <= 0 or math.ceil(math.sqrt(crop_box[2] * crop_box[3]) * factor) < 1:
            return None
        patch = sample_target(frame, crop_box, factor, size).patch
        box = box_in_crop(gt, crop_box, factor, size)
        return (patch, box) if _box_fits(box, size) else None

    def _sequence_crops(self, src: int, rng: np.random.Generator):
        """Template and search crops of two frames of one sequence, or None when a crop is unusable."""
        cfg, m = self.cfg, self.mcfg
        si = int(rng.integers(len(self.sources[src])))
        seq, usable = self.sources[src][si], self._usable[src][si]
        ti, xi = self._pick_frames(seq, usable, rng)
        t_frame = read_rgb(seq.frames[ti])
        x_frame = t_frame if xi == ti else read_rgb(seq.frames[xi])
        t = self._crop(t_frame, seq.gt[ti], m.template_factor, m.template_size,
                       cfg.template_center_jitter, cfg.template_scale_jitter, rng)
        x = self._crop(x_frame, seq.gt[xi], m.search_factor, m.search_size,
                       cfg.search_center_jitter, cfg.search_scale_jitter, rng)
        return None if t is None or x is None else (t, x)

    def _try_sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor] | None:
        cfg, m = self.cfg, self.mcfg
        src = int(rng.choice(len(self.sources), p=self.probs))
        source = self.sources[src]
        if isinstance(source, CompositePairs):
            crops = source.sample(rng, m.template_size, m.template_factor, m.search_size, m.search_factor,
                                  cfg.search_center_jitter, cfg.search_scale_jitter)
            if crops is not None and not _box_fits(crops[1][1], m.search_size):
                crops = None
        else:
            crops = self._sequence_crops(src, rng)
        if crops is None:
            return None
        (t_patch, t_box), (x_patch, x_box) = crops
        if rng.random() < cfg.grayscale_prob:
            t_patch, x_patch = _gray(t_patch), _gray(x_patch)
        if rng.random() < cfg.flip_prob:
            t_patch, x_patch = t_patch[:, ::-1], x_patch[:, ::-1]
            t_box = np.array([1.0 - t_box[0] - t_box[2], t_box[1], t_box[2], t_box[3]], dtype=np.float32)
            x_box = np.array([1.0 - x_box[0] - x_box[2], x_box[1], x_box[2], x_box[3]], dtype=np.float32)
        b = cfg.brightness_jitter
        t_img = _brightness(t_patch, rng.uniform(max(0.0, 1 - b), 1 + b))
        x_img = _brightness(x_patch, rng.uniform(max(0.0, 1 - b), 1 + b))
        heat = gaussian_heatmap(x_box, m.search_feat)
        return {
            "template": torch.from_numpy(t_img),
            "search": torch.from_numpy(x_img),
            "template_box": torch.from_numpy(t_box.astype(np.float32)),
            "search_box": torch.from_numpy(x_box.astype(np.float32)),
            "heatmap": torch.from_numpy(heat),
            "source": torch.tensor(src),
        }


def _gray(patch: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2GRAY)
    return np.repeat(g[:, :, None], 3, axis=2)


def _brightness(patch: np.ndarray, factor: float) -> np.ndarray:
    """Scale intensities (clamped to the uint8 range, as pytracking clamps at 1.0), then normalise."""
    p = np.clip(np.ascontiguousarray(patch).astype(np.float32) * float(factor), 0, 255).astype(np.uint8)
    return normalize(p)[0]


# ----------------------------------------------------------------------------- sampler
class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys for this rank; resumable at any batch boundary.

    Rank ``r`` of ``world`` takes indices ``r, r + world, ...``, truncated so
    every rank runs the same number of full batches.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_samples, self.batch_size = int(num_samples), int(batch_size)
        self.rank, self.world = int(rank), int(world_size)
        self.epoch = 0
        self.position = 0  # samples already consumed in this epoch (this rank)
        if self.steps_per_epoch < 1:
            raise PairSamplingError(
                f"samples_per_epoch {num_samples} is smaller than batch {batch_size} x {world_size} processes")

    @property
    def steps_per_epoch(self) -> int:
        return self.num_samples // (self.batch_size * self.world)

    def set_epoch(self, epoch: int, position: int = 0) -> None:
        self.epoch, self.position = int(epoch), int(position)

    def __len__(self) -> int:
        return self.steps_per_epoch * self.batch_size - self.position

    def __iter__(self) -> Iterator[tuple[int, int]]:
        own = range(self.rank, self.steps_per_epoch * self.batch_size * self.world, self.world)
        for i in own[self.position:]:
            yield (self.epoch, i)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}


__all__ = [
    "EpochSampler", "PairDataset", "PairSamplingError", "box_in_crop", "jitter_box", "load_coco", "load_source",
    "read_rgb", "usable_frames",
]
