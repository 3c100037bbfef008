"""Synthetic tracking sequences with exact ground truth, composed from real photographs.

Why: no tracking benchmark ships with the packages reachable here, yet tests,
demos, accuracy checks and training all need sequences whose boxes are known
exactly. A real photo crop (the target) moves over a real photo background
seen through a panning/zooming virtual camera, with the challenges of real
benchmarks switched on by a preset: scale and aspect change, fast motion with
motion blur, illumination change, partial and full occlusion by other photo
crops, out-of-view periods and look-alike distractors.

Everything is planned geometrically first (:func:`plan_sequence`), so the
ground truth and the per-frame labels are exact by construction (the target
is pasted at integer positions and integer sizes); frames are then rendered
one at a time (:func:`render_frame`), which keeps generation streaming and
fast. Same seed, same preset, same photos -> identical sequences.

Ground-truth conventions (GOT-10k layout, written by :func:`generate_dataset`):
- ``groundtruth.txt``: the target box clipped to the image (occlusion does not
  shrink it); frames where the target is invisible -- under 2 % of its area
  visible, because it is out of view or fully occluded -- get ``0,0,0,0``
  and ``absence = 1`` (the convention of GOT-10k/LaSOT absent frames; OPE
  scoring counts them as failures).
- ``cover.label``: visible fraction in eighths, ``floor(8 * visible)``
  clipped to 1..8 when present (8 only when fully visible), 0 when absent.
- ``cut_by_image.label``: the box extends beyond the image.
- extra labels (ignored by GOT-10k tools): ``out_of_view.label``,
  ``full_occlusion.label``, ``motion_blur.label``.
- ``meta_info.ini``: preset, seed, photo names and an ``attributes:`` line
  listing the challenges that actually occurred (read back by the GOT-10k
  reader for per-attribute scores).

Photos: scikit-image's bundled photos (CC0 / public domain; always
available), plus, optionally, every image in a folder such as the one
``scripts/fetch_media.sh`` fills (``data/media/photos``). With
``photos_only`` the folder is the whole library (no scikit-image photos),
so an evaluation set can be built from sources never used for training.
"""
from __future__ import annotations

import functools
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

MIN_VISIBLE = 0.02  # below this visible fraction the target counts as absent
JPEG_QUALITY = 90
BLUR_SPEED = 12.0  # px/frame above which a moving target is motion-blurred (when the preset allows)


class SynthError(ValueError):
    """Bad generator arguments (unknown preset, impossible size, no photos)."""


# ----------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class SynthPreset:
    """How hard a generated sequence is; every field is a per-sequence range or probability."""

    name: str
    target_size: tuple[float, float] = (0.18, 0.32)  # target's longer side / frame height
    scale_range: tuple[float, float] = (0.85, 1.15)  # target scale multiplier over time
    aspect_jitter: float = 0.0  # +- relative aspect-ratio change
    segment_frames: tuple[int, int] = (30, 60)  # frames between motion waypoints (longer = slower)
    fast_motion: float = 0.0  # probability that a motion segment is a 2-4 frame jump
    blur_prob: float = 0.0  # per-frame probability of camera-shake blur
    target_blur: bool = False  # blur the target along its motion when it moves fast
    illumination: float = 0.0  # amplitude of the global brightness ramps
    partial_occlusions: tuple[int, int] = (0, 0)  # occluder passes per sequence (min, max)
    full_occlusion: float = 0.0  # probability that an occluder pass covers the target fully
    out_of_view: float = 0.0  # probability of one out-of-view period
    distractors: tuple[int, int] = (0, 0)  # look-alike copies of the target (min, max)
    camera_pan: float = 0.15  # camera travel over the background, fraction of the view
    camera_zoom: float = 0.0  # +- zoom amplitude


PRESETS: dict[str, SynthPreset] = {
    "easy": SynthPreset("easy"),
    "medium": SynthPreset(
        "medium", target_size=(0.12, 0.30), scale_range=(0.7, 1.3), aspect_jitter=0.15, segment_frames=(20, 45),
        fast_motion=0.08, blur_prob=0.03, target_blur=True, illumination=0.25, partial_occlusions=(0, 2),
        full_occlusion=0.3, out_of_view=0.3, distractors=(0, 1), camera_pan=0.3, camera_zoom=0.1,
    ),
    "hard": SynthPreset(
        "hard", target_size=(0.08, 0.25), scale_range=(0.5, 1.6), aspect_jitter=0.3, segment_frames=(10, 30),
        fast_motion=0.2, blur_prob=0.08, target_blur=True, illumination=0.4, partial_occlusions=(1, 3),
        full_occlusion=0.6, out_of_view=0.6, distractors=(1, 3), camera_pan=0.5, camera_zoom=0.2,
    ),
}


def get_preset(preset: str | SynthPreset) -> SynthPreset:
    """A preset by name (easy / medium / hard) or a SynthPreset passed through."""
    if isinstance(preset, SynthPreset):
        return preset
    if preset not in PRESETS:
        raise SynthError(f"unknown synth preset {preset!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[preset]


# ----------------------------------------------------------------------------- photo library
# Object crops (x, y, w, h) in scikit-image photos, chosen by eye; the box of a
# pasted crop is exact whatever the crop holds.
_SKIMAGE_TARGETS: dict[str, tuple[str, tuple[int, int, int, int] | None]] = {
    "cup": ("coffee", (170, 20, 270, 330)),
    "cat_face": ("chelsea", (120, 20, 230, 250)),
    "astronaut_face": ("astronaut", (170, 20, 130, 170)),
    "rocket": ("rocket", (300, 40, 50, 360)),
    "motorcycle": ("stereo_motorcycle", (100, 135, 580, 300)),
    "cameraman": ("camera", (150, 40, 200, 320)),
    "clock": ("clock", (135, 90, 155, 125)),
    "coin": ("coins", (18, 8, 70, 68)),
    "logo": ("logo", None),  # RGBA: a non-rectangular target with an exact box
}
SKIMAGE_BACKGROUNDS = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "brick",
    "grass", "gravel", "camera", "moon", "stereo_motorcycle", "coins", "cell", "clock", "page", "text",
)


@dataclass
class Photo:
    """An RGB uint8 image (optionally with an alpha mask in [0, 1]) and its name."""

    name: str
    rgb: np.ndarray
    alpha: np.ndarray | None = None
    source: str = ""  # the photo a target crop comes from (never used as its background)


@dataclass
class PhotoLibrary:
    """Target crops and background photos the generator draws from."""

    targets: list[Photo]
    backgrounds: list[Photo]

    def describe(self) -> dict[str, list[str]]:
        return {"targets": [p.name for p in self.targets], "backgrounds": [p.name for p in self.backgrounds]}


def _to_rgb(img: np.ndarray) -> np.ndarray:
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _skimage_photo(name: str) -> np.ndarray:
    from skimage import data as skdata

    img = getattr(skdata, name)()
    if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
        img = img[0]
    return img


def skimage_background(name: str) -> np.ndarray:
    """scikit-image's bundled photo ``name`` as RGB uint8 (grey and binary photos expanded to three channels)."""
    return _to_rgb(_skimage_photo(name))


def load_photo_library(photo_dir: str | Path | None = None, photos_only: bool = False) -> PhotoLibrary:
    """scikit-image photos plus every image in ``photo_dir`` (each used as a background and as a target crop).

    ``photos_only``: the folder's images alone (keeps evaluation sets free of the training photos).
    Loaded once per process and folder (decoding the photos costs ~0.4 s).
    """
    if photos_only and photo_dir is None:
        raise SynthError("photos_only needs a photo folder")
    return _load_photo_library(None if photo_dir is None else str(Path(photo_dir).resolve()), bool(photos_only))


@functools.lru_cache(maxsize=4)
def _load_photo_library(photo_dir: str | None, photos_only: bool = False) -> PhotoLibrary:
    targets, backgrounds = [], []
    for tname, (src, box) in ({} if photos_only else _SKIMAGE_TARGETS).items():
        img = _skimage_photo(src)
        alpha = None
        if img.ndim == 3 and img.shape[2] == 4:
            alpha = img[..., 3].astype(np.float32) / 255.0
            ys, xs = np.nonzero(alpha > 0.05)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            img, alpha = img[y0:y1, x0:x1], np.ascontiguousarray(alpha[y0:y1, x0:x1])
        rgb = _to_rgb(img)
        if box is not None:
            x, y, w, h = box
            rgb = np.ascontiguousarray(rgb[y:y + h, x:x + w])
        targets.append(Photo(tname, rgb, alpha, source=src))
    for bname in () if photos_only else SKIMAGE_BACKGROUNDS:
        backgrounds.append(Photo(bname, skimage_background(bname)))
    if photo_dir is not None:
        folder = Path(photo_dir)
        if not folder.is_dir():
            raise SynthError(f"photo folder not found: {folder}")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".bmp"):
                continue
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or min(bgr.shape[:2]) < 64:
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            backgrounds.append(Photo(path.stem, rgb))
            targets.append(Photo(f"{path.stem}_crop", rgb, source=path.stem))  # random crop chosen per sequence
    if photos_only and len(backgrounds) < 2:  # a target's own photo is never its background
        raise SynthError(f"--photos-only needs at least 2 usable photos (>= 64 px) in {photo_dir}, "
                         f"found {len(backgrounds)}")
    return PhotoLibrary(targets, backgrounds)


# ----------------------------------------------------------------------------- planning
@dataclass
class OccluderPlan:
    """An occluder patch passing over the target during frames [start, end)."""

    start: int
    end: int
    size: tuple[int, int]  # (w, h)
    offsets: np.ndarray  # (end-start, 2) integer top-left offset from the target centre
    photo: int
    crop: tuple[int, int, int, int]


@dataclass
class DistractorPlan:
    """A look-alike copy of the target on its own path (drawn under the target)."""

    centres: np.ndarray  # (N, 2)
    scale: float
    gain: float
    flip: bool


@dataclass
class SequencePlan:
    """Everything needed to render a sequence and its exact labels, decided before any pixel is drawn."""

    size: tuple[int, int]
    target: int
    target_crop: tuple[int, int, int, int]
    background: int
    bg_scale: float
    boxes: np.ndarray  # (N, 4) int: full target box, may extend beyond the image
    velocity: np.ndarray  # (N, 2) px/frame
    target_gain: np.ndarray  # (N,)
    global_gain: np.ndarray  # (N,)
    camera: np.ndarray  # (N, 3): centre x, centre y (background px), zoom
    shake: np.ndarray  # (N,) blur kernel length, 0 = none
    occluders: list[OccluderPlan]
    distractors: list[DistractorPlan]
    gt: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    attributes: dict[str, bool] = field(default_factory=dict)


def _ease_track(keys: list[tuple[int, np.ndarray]], n: int) -> np.ndarray:
    """Interpolate keyframes (frame, value) with cosine easing to n frames."""
    out = np.zeros((n, len(keys[0][1])))
    for (t0, v0), (t1, v1) in zip(keys[:-1], keys[1:]):
        if t1 <= t0:
            continue
        s = np.arange(t0, min(t1, n)) - t0
        u = (1 - np.cos(np.pi * s / (t1 - t0))) / 2
        out[t0:min(t1, n)] = v0 + (v1 - v0) * u[:, None]
    last_t, last_v = keys[-1]
    if last_t < n:
        out[last_t:] = last_v
    return out


def _random_track(rng, n: int, low, high, seg: tuple[int, int]) -> np.ndarray:
    low, high = np.atleast_1d(low).astype(float), np.atleast_1d(high).astype(float)
    keys, t = [], 0
    while True:
        keys.append((t, rng.uniform(low, high)))
        if t >= n - 1:
            break
        t += int(rng.integers(seg[0], seg[1] + 1))
    return _ease_track(keys, n)


def _choose_crop(rng, photo: Photo, named: bool) -> tuple[int, int, int, int]:
    h, w = photo.rgb.shape[:2]
    if named:
        return 0, 0, w, h
    cw = int(w * rng.uniform(0.25, 0.45))
    ch = int(np.clip(cw * rng.uniform(0.6, 1.6), 16, h * 0.6))
    return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch


def _target_path(rng, n, size, base_wh, preset: SynthPreset, want_oov: bool) -> tuple[np.ndarray, bool]:
    """Centre keyframes: slow waypoints, occasional 2-4 frame jumps, optionally one exit and re-entry."""
    W, H = size
    margin = 0.5 * np.asarray(base_wh) + 4
    lo, hi = margin, np.maximum(np.array([W, H]) - margin, margin + 1)
    keys = [(0, rng.uniform(lo, hi))]
    t, oov_done = 0, not want_oov
    oov_start = int(rng.uniform(0.3, 0.6) * n)
    while t < n - 1:
        if not oov_done and t >= oov_start:
            cur = keys[-1][1]
            side = int(rng.integers(4))
            out = cur.copy()
            extent = 0.8 * np.asarray(base_wh) * max(preset.scale_range)
            if side == 0:
                out[0] = -extent[0]
            elif side == 1:
                out[0] = W + extent[0]
            elif side == 2:
                out[1] = -extent[1]
            else:
                out[1] = H + extent[1]
            t += int(rng.integers(6, 14))
            keys.append((t, out))
            t += int(rng.integers(5, 20))
            keys.append((t, out))
            oov_done = True
            continue
        if rng.random() < preset.fast_motion and t > 5:
            cur = keys[-1][1]
            for _ in range(8):
                nxt = rng.uniform(lo, hi)
                if np.linalg.norm(nxt - cur) > 0.3 * W:
                    break
            t += int(rng.integers(2, 5))
        else:
            nxt = rng.uniform(lo, hi)
            t += int(rng.integers(preset.segment_frames[0], preset.segment_frames[1] + 1))
        keys.append((t, nxt))
    return _ease_track(keys, n), want_oov


def _rect_inter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection area of (N,4) x,y,w,h boxes."""
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def plan_sequence(
    rng: np.random.Generator, preset: SynthPreset, frames: int, size: tuple[int, int], library: PhotoLibrary
) -> SequencePlan:
    """Decide target, background, motion, events and the exact labels of one sequence."""
    W, H = size
    n = frames
    ti = int(rng.integers(len(library.targets)))
    tphoto = library.targets[ti]
    crop = _choose_crop(rng, tphoto, named=not tphoto.name.endswith("_crop"))
    bg_choices = [i for i, b in enumerate(library.backgrounds) if b.name != tphoto.source]
    bi = int(rng.choice(bg_choices))
    bg = library.backgrounds[bi].rgb

    # target size over time
    cw, ch = crop[2], crop[3]
    longer = rng.uniform(*preset.target_size) * H
    base_w, base_h = (longer, longer * ch / cw) if cw >= ch else (longer * cw / ch, longer)
    scale = _random_track(rng, n, preset.scale_range[0], preset.scale_range[1], (20, 50))[:, 0]
    scale /= scale[0]  # frame 1 shows the base size
    aspect = _random_track(rng, n, 1 - preset.aspect_jitter, 1 + preset.aspect_jitter, (25, 60))[:, 0]
    aspect /= aspect[0]
    ws = np.maximum(np.round(base_w * scale * np.sqrt(aspect)), 6)
    hs = np.maximum(np.round(base_h * scale / np.sqrt(aspect)), 6)

    want_oov = rng.random() < preset.out_of_view and n >= 40
    centres, _ = _target_path(rng, n, size, (base_w, base_h), preset, want_oov)
    boxes = np.column_stack([np.round(centres[:, 0] - ws / 2), np.round(centres[:, 1] - hs / 2), ws, hs])
    boxes = boxes.astype(np.int64)
    velocity = np.vstack([np.zeros((1, 2)), np.diff(centres, axis=0)])

    # illumination: global ramps plus a slower target-only gain
    amp = preset.illumination
    global_gain = _random_track(rng, n, 1 - amp, 1 + 0.6 * amp, (20, 60))[:, 0]
    target_gain = _random_track(rng, n, 1 - 0.5 * amp, 1 + 0.3 * amp, (30, 80))[:, 0]

    # camera: the view (W/zoom x H/zoom) pans over the upscaled background
    bh, bw = bg.shape[:2]
    zmin = 1 - preset.camera_zoom
    bg_scale = max(1.0, (1 + preset.camera_pan) * max(W / bw, H / bh) / zmin * 1.05)
    sbw, sbh = bw * bg_scale, bh * bg_scale
    view = np.array([W, H]) / zmin
    lo = view / 2
    hi = np.maximum(np.array([sbw, sbh]) - view / 2, lo + 1)
    cam_c = _random_track(rng, n, lo, hi, (40, 90))
    cam_z = _random_track(rng, n, 1 - preset.camera_zoom, 1 + preset.camera_zoom, (40, 90))
    camera = np.column_stack([cam_c, cam_z])
    shake = np.where(rng.random(n) < preset.blur_prob, rng.integers(5, 16, n), 0)
    shake[0] = 0

    # occluders: disjoint time windows, sweeping across the target
    occluders: list[OccluderPlan] = []
    n_occ = int(rng.integers(preset.partial_occlusions[0], preset.partial_occlusions[1] + 1)) if n >= 40 else 0
    busy = np.zeros(n, bool)
    busy[:8] = True
    for _ in range(n_occ):
        dur = int(rng.integers(14, 30))
        starts = [s for s in range(8, n - dur) if not busy[s:s + dur].any()]
        if not starts:
            break
        s0 = int(rng.choice(starts))
        busy[s0:s0 + dur] = True
        tw, th = float(ws[s0]), float(hs[s0])
        full = rng.random() < preset.full_occlusion
        horizontal = bool(rng.integers(2))
        if full:
            ow, oh = int(tw * rng.uniform(1.3, 1.6)) + 8, int(th * rng.uniform(1.3, 1.6)) + 8
        elif horizontal:  # moves along x, covers part of the target's height
            ow, oh = int(tw * rng.uniform(0.4, 0.9)) + 2, int(th * rng.uniform(0.5, 0.8)) + 2
        else:
            ow, oh = int(tw * rng.uniform(0.5, 0.8)) + 2, int(th * rng.uniform(0.4, 0.9)) + 2
        travel_x = (tw + ow) / 2 + 6
        travel_y = (th + oh) / 2 + 6
        u = np.linspace(-1, 1, dur)
        if full:  # approach, hold over the target, leave
            u = np.sign(u) * np.clip((np.abs(u) - 0.35) / 0.65, 0, 1)
        if horizontal:
            dx = u * travel_x
            dy = np.full(dur, rng.uniform(-0.5, 0.5) * (th - oh) if not full else 0.0)
        else:
            dy = u * travel_y
            dx = np.full(dur, rng.uniform(-0.5, 0.5) * (tw - ow) if not full else 0.0)
        offsets = np.column_stack([np.round(dx - ow / 2), np.round(dy - oh / 2)]).astype(np.int64)
        pi = int(rng.integers(len(library.backgrounds)))
        p = library.backgrounds[pi].rgb
        cw2 = min(p.shape[1], max(ow, 16))
        ch2 = min(p.shape[0], max(oh, 16))
        ocrop = (int(rng.integers(0, p.shape[1] - cw2 + 1)), int(rng.integers(0, p.shape[0] - ch2 + 1)), cw2, ch2)
        occluders.append(OccluderPlan(s0, s0 + dur, (ow, oh), offsets, pi, ocrop))

    distractors = []
    for _ in range(int(rng.integers(preset.distractors[0], preset.distractors[1] + 1))):
        path, _ = _target_path(rng, n, size, (base_w, base_h), preset, False)
        # keep distractors away from the target on the first frame so initialisation is unambiguous
        if np.linalg.norm(path[0] - centres[0]) < 1.2 * max(base_w, base_h):
            path[:, 0] = np.where(path[:, 0] < W / 2, path[:, 0] + W / 2, path[:, 0] - W / 2)
        distractors.append(DistractorPlan(path, float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.8, 1.15)),
                                          bool(rng.integers(2))))

    plan = SequencePlan(size, ti, crop, bi, bg_scale, boxes, velocity, target_gain, global_gain, camera, shake,
                        occluders, distractors)
    _label(plan, preset)
    return plan


def _label(plan: SequencePlan, preset: SynthPreset) -> None:
    """Exact GT boxes, GOT-10k labels and sequence attributes from the plan geometry."""
    W, H = plan.size
    n = len(plan.boxes)
    boxes = plan.boxes.astype(np.float64)
    image = np.tile([0.0, 0.0, W, H], (n, 1))
    area = boxes[:, 2] * boxes[:, 3]
    inside = _rect_inter(boxes, image)
    occluded = np.zeros(n)
    for occ in plan.occluders:
        t = np.arange(occ.start, occ.end)
        ob = np.column_stack([
            plan.boxes[t, 0] + plan.boxes[t, 2] // 2 + occ.offsets[:, 0],
            plan.boxes[t, 1] + plan.boxes[t, 3] // 2 + occ.offsets[:, 1],
            np.full(len(t), occ.size[0]), np.full(len(t), occ.size[1]),
        ])
        # area of target ∩ image ∩ occluder
        tx1 = np.maximum(boxes[t, 0], 0)
        ty1 = np.maximum(boxes[t, 1], 0)
        tx2 = np.minimum(boxes[t, 0] + boxes[t, 2], W)
        ty2 = np.minimum(boxes[t, 1] + boxes[t, 3], H)
        clipped = np.column_stack([tx1, ty1, np.clip(tx2 - tx1, 0, None), np.clip(ty2 - ty1, 0, None)])
        occluded[t] = _rect_inter(clipped, ob)
    in_frac = inside / area
    visible = (inside - occluded) / area
    out_of_view = in_frac < MIN_VISIBLE
    absence = visible < MIN_VISIBLE
    full_occ = absence & ~out_of_view
    cover = np.where(absence, 0, np.clip(np.floor(visible * 8 + 1e-9), 1, 8)).astype(np.int64)
    cut = (in_frac < 1.0) & ~out_of_view
    x1 = np.clip(boxes[:, 0], 0, W)
    y1 = np.clip(boxes[:, 1], 0, H)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, W)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, H)
    gt = np.column_stack([x1, y1, x2 - x1, y2 - y1])
    gt[absence] = 0.0
    speed = np.linalg.norm(plan.velocity, axis=1)
    target_blur = (speed > BLUR_SPEED) & preset.target_blur
    motion_blur = target_blur | (plan.shake > 0)
    plan.gt = gt
    plan.flags = {
        "absence": absence.astype(np.int64),
        "cover": cover,
        "cut_by_image": cut.astype(np.int64),
        "out_of_view": out_of_view.astype(np.int64),
        "full_occlusion": full_occ.astype(np.int64),
        "motion_blur": motion_blur.astype(np.int64),
    }
    size = np.sqrt(area)
    aspect = boxes[:, 2] / boxes[:, 3]
    present = ~absence
    plan.attributes = {
        "scale_variation": bool(np.any((size[present] / size[0] > 1.5) | (size[present] / size[0] < 1 / 1.5))),
        "aspect_ratio_change": bool(np.any((aspect / aspect[0] > 1.3) | (aspect / aspect[0] < 1 / 1.3))),
        "fast_motion": bool(np.any(speed[1:] > np.maximum(20.0, 0.5 * size[1:]))),
        "motion_blur": bool(motion_blur.any()),
        "illumination_variation": bool(np.ptp(plan.global_gain * plan.target_gain) > 0.3),
        "partial_occlusion": bool(np.any((occluded > 0) & (visible < 0.95) & ~absence)),
        "full_occlusion": bool(full_occ.any()),
        "out_of_view": bool(out_of_view.any()),
        "camera_motion": bool(preset.camera_pan > 0 or preset.camera_zoom > 0),
        "similar_distractors": bool(plan.distractors),
        "low_resolution": bool(np.any(size[present] < 24)),
    }


# ----------------------------------------------------------------------------- rendering
@dataclass
class _RenderCache:
    background: np.ndarray
    target: np.ndarray
    target_alpha: np.ndarray | None
    occluders: list[np.ndarray]
    library: PhotoLibrary


def _prepare(plan: SequencePlan, library: PhotoLibrary) -> _RenderCache:
    bg = library.backgrounds[plan.background].rgb
    if plan.bg_scale != 1.0:
        bg = cv2.resize(bg, None, fx=plan.bg_scale, fy=plan.bg_scale, interpolation=cv2.INTER_LINEAR)
    tp = library.targets[plan.target]
    x, y, w, h = plan.target_crop
    target = np.ascontiguousarray(tp.rgb[y:y + h, x:x + w])
    alpha = None if tp.alpha is None else np.ascontiguousarray(tp.alpha[y:y + h, x:x + w])
    occ = []
    for o in plan.occluders:
        p = library.backgrounds[o.photo].rgb
        ox, oy, ow, oh = o.crop
        occ.append(cv2.resize(np.ascontiguousarray(p[oy:oy + oh, ox:ox + ow]), o.size, interpolation=cv2.INTER_AREA))
    return _RenderCache(bg, target, alpha, occ, library)


def _line_kernel(length: int, direction: np.ndarray) -> np.ndarray:
    length = max(int(length), 1)
    k = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    d = direction / (np.linalg.norm(direction) + 1e-9)
    for s in np.linspace(-c, c, 2 * length):
        k[int(round(c + s * d[1])), int(round(c + s * d[0]))] = 1.0
    return k / k.sum()


def _paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int, alpha: np.ndarray | None = None) -> None:
    """Paste ``patch`` with its top-left at (x, y), clipped to the frame, optionally alpha-blended."""
    H, W = frame.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, W), min(y + ph, H)
    if x0 >= x1 or y0 >= y1:
        return
    src = patch[y0 - y:y1 - y, x0 - x:x1 - x]
    if alpha is None:
        frame[y0:y1, x0:x1] = src
    else:
        a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
        dst = frame[y0:y1, x0:x1]
        frame[y0:y1, x0:x1] = (src * a + dst * (1.0 - a)).astype(np.uint8)


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    shrink = w < img.shape[1] and h < img.shape[0]
    return cv2.resize(img, (int(w), int(h)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _gain(img: np.ndarray, g: float) -> np.ndarray:
    if abs(g - 1.0) < 0.005:
        return img
    return cv2.convertScaleAbs(img, alpha=float(g))


def _camera_view(bg: np.ndarray, camera: np.ndarray, W: int, H: int) -> np.ndarray:
    """The W x H view of the background centred at (cx, cy) with zoom z (crop + resize: faster than a warp)."""
    cx, cy, z = (float(v) for v in camera)
    vw, vh = max(int(round(W / z)), 1), max(int(round(H / z)), 1)
    bh, bw = bg.shape[:2]
    x0 = int(np.clip(round(cx - vw / 2), 0, max(bw - vw, 0)))
    y0 = int(np.clip(round(cy - vh / 2), 0, max(bh - vh, 0)))
    view = bg[y0:y0 + vh, x0:x0 + vw]
    if view.shape[1] == W and view.shape[0] == H:
        return view.copy()
    return cv2.resize(view, (W, H), interpolation=cv2.INTER_LINEAR)


def render_frame(plan: SequencePlan, cache: _RenderCache, t: int, preset: SynthPreset) -> np.ndarray:
    """Draw frame ``t`` (RGB uint8, H x W x 3) of a planned sequence."""
    W, H = plan.size
    frame = _camera_view(cache.background, plan.camera[t], W, H)
    bx, by, bw, bh = (int(v) for v in plan.boxes[t])
    for d in plan.distractors:
        dw, dh = max(int(bw * d.scale), 4), max(int(bh * d.scale), 4)
        patch = _resize(cache.target, dw, dh)
        alpha = None if cache.target_alpha is None else _resize(cache.target_alpha, dw, dh)
        if d.flip:
            patch = patch[:, ::-1]
            alpha = None if alpha is None else alpha[:, ::-1]
        patch = _gain(patch, d.gain * plan.target_gain[t])
        dx, dy = d.centres[t]
        _paste(frame, patch, int(round(dx - dw / 2)), int(round(dy - dh / 2)), alpha)
    if bx < W and by < H and bx + bw > 0 and by + bh > 0:
        patch = _gain(_resize(cache.target, bw, bh), plan.target_gain[t])
        alpha = None if cache.target_alpha is None else _resize(cache.target_alpha, bw, bh)
        v = plan.velocity[t]
        speed = float(np.hypot(*v))
        if preset.target_blur and speed > BLUR_SPEED:
            k = _line_kernel(min(int(speed * 0.6), 31), v)
            patch = cv2.filter2D(patch, -1, k, borderType=cv2.BORDER_REPLICATE)
        _paste(frame, patch, bx, by, alpha)
    for occ, img in zip(plan.occluders, cache.occluders):
        if occ.start <= t < occ.end:
            ox, oy = occ.offsets[t - occ.start]
            _paste(frame, img, bx + bw // 2 + int(ox), by + bh // 2 + int(oy))
    frame = _gain(frame, plan.global_gain[t])
    if plan.shake[t]:
        angle = (t * 0.7) % np.pi
        frame = cv2.filter2D(frame, -1, _line_kernel(int(plan.shake[t]), np.array([np.cos(angle), np.sin(angle)])))
    return frame


# ----------------------------------------------------------------------------- public API
@dataclass
class SynthSequence:
    """An in-memory synthetic sequence: RGB frames, exact GT and labels."""

    name: str
    frames: list[np.ndarray]
    gt: np.ndarray
    visible: np.ndarray
    flags: dict[str, np.ndarray]
    attributes: dict[str, bool]
    meta: dict[str, str]


def _sequence_rng(seed: int, index: int, preset: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), zlib.crc32(preset.encode())]))


def _check_args(frames: int, size: tuple[int, int]) -> tuple[int, int]:
    if int(frames) < 2:
        raise SynthError(f"frames must be at least 2, got {frames}")
    w, h = (int(v) for v in size)
    if w < 64 or h < 64:
        raise SynthError(f"frame size must be at least 64x64, got {w}x{h}")
    return w, h


def _meta(
    name: str, plan: SequencePlan, preset: SynthPreset, seed: int, index: int, library: PhotoLibrary
) -> dict[str, str]:
    return {
        "url": "synthetic (dytrack synth)",
        "begin_frame": "1",
        "end_frame": str(len(plan.boxes)),
        "object_class": library.targets[plan.target].name,
        "background": library.backgrounds[plan.background].name,
        "resolution": f"({plan.size[0]}, {plan.size[1]})",
        "preset": preset.name,
        "seed": str(seed),
        "index": str(index),
        "attributes": ", ".join(k for k, v in plan.attributes.items() if v),
    }


def iter_sequence(
    index: int, preset: str | SynthPreset = "medium", seed: int = 0, frames: int = 100,
    size: tuple[int, int] = (640, 480), photo_dir: str | Path | None = None, photos_only: bool = False,
) -> tuple[SequencePlan, dict[str, str], Iterator[np.ndarray]]:
    """Plan sequence ``index`` of the (seed, preset) family and return (plan, meta, lazy frame iterator)."""
    preset_obj = get_preset(preset)
    size = _check_args(frames, size)
    library = load_photo_library(photo_dir, photos_only)
    plan = plan_sequence(_sequence_rng(seed, index, preset_obj.name), preset_obj, int(frames), size, library)
    meta = _meta(sequence_name(preset_obj.name, index), plan, preset_obj, seed, index, library)
    cache = _prepare(plan, library)
    return plan, meta, (render_frame(plan, cache, t, preset_obj) for t in range(int(frames)))


def sequence_name(preset: str, index: int) -> str:
    """Folder name of the ``index``-th generated sequence (1-based numbering in the name)."""
    return f"synth_{preset}_{index + 1:06d}"


def generate_sequence(
    index: int = 0, preset: str | SynthPreset = "medium", seed: int = 0, frames: int = 100,
    size: tuple[int, int] = (640, 480), photo_dir: str | Path | None = None, photos_only: bool = False,
) -> SynthSequence:
    """Generate one sequence in memory (RGB frames + exact GT); deterministic in (index, preset, seed, photos)."""
    plan, meta, it = iter_sequence(index, preset, seed, frames, size, photo_dir, photos_only)
    name = sequence_name(get_preset(preset).name, index)
    return SynthSequence(name, list(it), plan.gt.copy(), plan.flags["absence"] == 0, dict(plan.flags),
                         dict(plan.attributes), meta)


def _fmt_boxes(gt: np.ndarray) -> str:
    return "".join(f"{x:.4f},{y:.4f},{w:.4f},{h:.4f}\n" for x, y, w, h in gt)


def write_sequence_folder(folder: Path, plan: SequencePlan, meta: dict[str, str], frames: Iterable[np.ndarray]) -> None:
    """Write one planned sequence in GOT-10k layout: JPEG frames, labels, ``meta_info.ini``, then
    ``groundtruth.txt`` last, so a folder with ground truth is complete (an interrupted run resumes)."""
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    for t, frame in enumerate(frames):
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params)
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for frame {t + 1} of {folder.name}")
        (folder / f"{t + 1:08d}.jpg").write_bytes(buf.tobytes())
    for key, values in plan.flags.items():
        (folder / f"{key}.label").write_text("".join(f"{int(v)}\n" for v in values))
    (folder / "meta_info.ini").write_text("[METAINFO]\n" + "".join(f"{k}: {v}\n" for k, v in meta.items()))
    tmp = folder / "groundtruth.txt.tmp"
    tmp.write_text(_fmt_boxes(plan.gt))
    os.replace(tmp, folder / "groundtruth.txt")


def _write_one(args: tuple) -> tuple[str, int]:
    out_dir, index, preset, seed, frames, size, photo_dir, photos_only = args
    plan, meta, it = iter_sequence(index, preset, seed, frames, size, photo_dir, photos_only)
    folder = Path(out_dir) / sequence_name(get_preset(preset).name, index)
    write_sequence_folder(folder, plan, meta, it)
    return folder.name, frames


def generate_dataset(
    out_dir: str | Path, num_sequences: int, preset: str | SynthPreset = "medium", seed: int = 0,
    frames: int = 100, size: tuple[int, int] = (640, 480), split: str = "val", photo_dir: str | Path | None = None,
    workers: int = 1, progress: bool = True, start_index: int = 0, photos_only: bool = False,
) -> list[Path]:
    """Write ``num_sequences`` sequences in GOT-10k layout under ``out_dir/<split>/`` and return their folders.

    Existing complete sequences (with ``groundtruth.txt``) are kept, so an
    interrupted generation resumes. ``list.txt`` lists every sequence of the split.
    """
    preset_obj = get_preset(preset)
    if not isinstance(preset, str):
        if preset_obj.name in PRESETS and PRESETS[preset_obj.name] != preset_obj:
            raise SynthError(f"a custom preset needs its own name (not {preset_obj.name!r})")
    _check_args(frames, size)
    load_photo_library(photo_dir, photos_only)  # bad photo options fail here, before any folder is made
    if int(num_sequences) < 1:
        raise SynthError(f"num_sequences must be >= 1, got {num_sequences}")
    split_dir = Path(out_dir) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    indices = range(int(start_index), int(start_index) + int(num_sequences))
    names = [sequence_name(preset_obj.name, i) for i in indices]
    todo = [i for i, nm in zip(indices, names) if not (split_dir / nm / "groundtruth.txt").is_file()]
    pdir = None if photo_dir is None else str(photo_dir)
    jobs = [(str(split_dir), i, preset_obj, int(seed), int(frames), tuple(size), pdir, bool(photos_only))
            for i in todo]
    from tqdm import tqdm

    bar = tqdm(total=len(jobs) * int(frames), unit="frame", desc="synth", disable=not progress)
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                _write_one(job)
                bar.update(int(frames))
        else:
            with ProcessPoolExecutor(max_workers=int(workers)) as pool:
                for _, n in pool.map(_write_one, jobs):
                    bar.update(n)
    finally:
        bar.close()
    listed = []
    list_file = split_dir / "list.txt"
    if list_file.is_file():
        listed = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
    all_names = list(dict.fromkeys(listed + names))
    list_file.write_text("".join(f"{nm}\n" for nm in all_names))
    return [split_dir / nm for nm in names]


def preset_table() -> list[dict]:
    """The presets as plain dicts (for --help and docs)."""
    return [asdict(p) for p in PRESETS.values()]


__all__ = [
    "PRESETS", "SynthError", "SynthPreset", "SynthSequence", "generate_dataset",
    "generate_sequence", "get_preset", "iter_sequence", "load_photo_library", "plan_sequence", "preset_table",
]
