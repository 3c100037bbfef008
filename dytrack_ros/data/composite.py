"""Training pairs composed on the fly from a media bank: real objects with alpha mattes over real backgrounds.

Why: the synthetic sequences of :mod:`dytrack_ros.data.synth` reuse a few dozen photos, so a network trained on
them meets few appearances and over-fits them. Here every template/search pair is rendered straight into its two
crops (no full frames, no files) from thousands of objects (clip art, icons and emoji with real alpha, and soft-edged
photo patches) over hundreds of real backgrounds. A pair costs well under a millisecond of CPU, so a few loader
workers keep a GPU busy, and the appearance never repeats exactly.

A pair is one moment of a virtual video: the target object with a pose (centre, size, aspect, rotation, slight
perspective) over a background in the template frame, and the same object some frames later with a changed pose,
lighting and blur, a background that moved (camera motion), and optionally look-alike distractors, other objects
and an occluder. The crops then follow OSTrack's recipe exactly (template around the box, search around a
jittered box, ``factor * sqrt(w*h)`` square), and the ground-truth box is the tight box of the transformed alpha
hull, so it is exact by construction.

The bank (``manifest.json`` + JPEG backgrounds + RGBA PNG objects, split by source into ``train``/``calib``/
``test``) is written by :mod:`dytrack_ros.data.media_bank`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..image_io import ImageReadError, read_image
from .sequence import DatasetError

# Objects and backgrounds are kept at full, 1/2 and 1/4 resolution; a warp uses the level at which it shrinks
# by at most 2x, so striped or fine-textured sources do not alias when they are rendered small.
PYRAMID_LEVELS = 3


@dataclass(frozen=True)
class CompositeOptions:
    """How a pair's scene is drawn; probabilities are per pair, spreads are standard deviations."""

    photo_patch_prob: float = 0.35  # target = a soft-edged patch of a photo instead of a bank object
    min_size: float = 16.0  # target sqrt(w*h) in background pixels, log-uniform between these
    max_size: float = 180.0
    aspect_std: float = 0.25  # log aspect change of the object's own shape
    rotation_std: float = 0.2  # radians, template pose
    perspective: float = 0.06  # corner shift (fraction of the size), uniform
    scale_change_std: float = 0.2  # log size change template -> search frame
    aspect_change_std: float = 0.08
    rotation_change_std: float = 0.15
    camera_zoom_std: float = 0.08  # background zoom between the frames (log)
    gain_std: float = 0.2  # log brightness of a frame; the object gets a second, own factor
    color_std: float = 0.06  # log per-channel gain
    blur_prob: float = 0.25  # motion or defocus blur of the search frame
    noise_prob: float = 0.2
    distractor_prob: float = 0.4  # look-alikes (same object, recoloured/rescaled) in the search region
    clutter_prob: float = 0.4  # other objects around the target, in both frames
    occluder_prob: float = 0.2  # an object or patch partly over the target in the search frame
    stripes_prob: float = 0.08  # a high-contrast stripe/check pattern as the background
    # the target is large or near the image border, so the crops run past the image and are zero-padded there,
    # as the tracker's crops are (a target filling half the frame: its 4x search region is mostly padding)
    frame_edge_prob: float = 0.2
    min_visible: float = 0.3  # a pair whose target shows less than this share of its box inside the image is skipped

    def __post_init__(self) -> None:
        for name in ("photo_patch_prob", "blur_prob", "noise_prob", "distractor_prob", "clutter_prob",
                     "occluder_prob", "stripes_prob", "frame_edge_prob", "min_visible"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"composite option {name} must be a probability in [0, 1], got {value}")
        if not 1.0 <= self.min_size <= self.max_size:
            raise ValueError(f"composite options need 1 <= min_size <= max_size, got {self.min_size}, {self.max_size}")


@dataclass
class BankObject:
    """An object with straight alpha at several resolutions, and the convex hull of its alpha (level-0 pixels)."""

    name: str
    rgb: list[np.ndarray]  # per pyramid level, (h, w, 3) uint8
    alpha: list[np.ndarray]  # per level, (h, w) float32 in [0, 1]
    hull: np.ndarray  # (K, 2) float64 x, y


def _pyramid(img: np.ndarray) -> list[np.ndarray]:
    levels = [img]
    for _ in range(PYRAMID_LEVELS - 1):
        if min(levels[-1].shape[:2]) < 8:
            break
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


def _hull(alpha: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(alpha > 0.5)
    if xs.size < 3:
        raise DatasetError("object has (almost) no opaque pixels")
    pts = np.stack([xs, ys], axis=1).astype(np.int32)
    hull = cv2.convexHull(pts)[:, 0, :].astype(np.float64)
    # pixel centres -> pixel edges: the hull of the pixel squares
    corners = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    return (hull[:, None, :] + corners[None]).reshape(-1, 2)


def make_object(name: str, rgba: np.ndarray) -> BankObject:
    """A bank object from an (h, w, 4) uint8 RGBA image (straight alpha)."""
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise DatasetError(f"object {name}: expected an RGBA image, got shape {rgba.shape}")
    rgb = np.ascontiguousarray(rgba[..., :3])
    alpha = rgba[..., 3].astype(np.float32) / 255.0
    return BankObject(name, _pyramid(rgb), _pyramid(alpha), _hull(alpha))


class MediaBank:
    """Backgrounds and objects of one split of a bank folder, decoded into memory once."""

    def __init__(self, backgrounds: list[list[np.ndarray]], objects: list[BankObject], root: str = "") -> None:
        if not backgrounds:
            raise DatasetError(f"media bank {root or '(in memory)'} has no backgrounds")
        self.backgrounds = backgrounds
        self.objects = objects
        self.root = root

    @classmethod
    def load(cls, root: str | Path, split: str = "train") -> "MediaBank":
        root = Path(root)
        manifest = root / "manifest.json"
        if not manifest.is_file():
            raise DatasetError(f"media bank not found: {manifest} (build it with scripts/fetch_training_media.sh)")
        try:
            splits = json.loads(manifest.read_text())["splits"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{manifest}: not a media bank manifest ({exc})") from exc
        if split not in splits:
            raise DatasetError(f"{manifest}: no split {split!r} (has {sorted(splits)})")
        entry = splits[split]
        backgrounds, objects = [], []
        try:
            for item in entry.get("backgrounds", []):
                backgrounds.append(_pyramid(read_image(root / item["file"], "rgb")))
            for item in entry.get("objects", []):
                path = root / item["file"]
                rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
                    raise DatasetError(f"{path}: not a readable RGBA PNG")
                objects.append(make_object(item["file"], cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA)))
        except ImageReadError as exc:
            raise DatasetError(str(exc)) from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise DatasetError(f"{manifest}: split {split!r} is not a list of {{'file': ...}} entries "
                               f"({exc!r})") from exc
        return cls(backgrounds, objects, str(root))

    def __repr__(self) -> str:
        return f"MediaBank({self.root!r}: {len(self.backgrounds)} backgrounds, {len(self.objects)} objects)"


# ----------------------------------------------------------------------------- geometry
def _similarity(cx: float, cy: float, sx: float, sy: float, angle: float) -> np.ndarray:
    """3x3 map from a unit-centred object frame (x, y in [-0.5, 0.5]) to world pixels."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c * sx, -s * sy, cx], [s * sx, c * sy, cy], [0.0, 0.0, 1.0]])


def _crop_from_world(cx: float, cy: float, side: float, out: int) -> np.ndarray:
    """3x3 map from world pixels to the pixels of an ``out``-sized square crop of ``side`` world pixels at (cx, cy).

    The same mapping as :func:`dytrack_ros.tracker.preprocess.sample_target` (crop origin at centre - side/2,
    bilinear resize), without its integer rounding of the origin and side.
    """
    k = out / side
    return np.array([[k, 0.0, -(cx - 0.5 * side) * k], [0.0, k, -(cy - 0.5 * side) * k], [0.0, 0.0, 1.0]])


def _level(levels: list[np.ndarray], to_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pyramid level to warp from (shrinking by at most 2x) and the map from that level's pixels."""
    scale = math.sqrt(abs(float(np.linalg.det(to_out[:2, :2]))))
    lv = 0
    while lv + 1 < len(levels) and scale < 0.5:
        scale *= 2.0
        lv += 1
    f = float(2 ** lv)
    return levels[lv], to_out @ np.diag([f, f, 1.0])


# Geometry is kept in pixel-edge coordinates (pixel i covers [i, i+1]), as boxes are; OpenCV's warps use pixel
# centres, so a map is shifted by half a pixel on both sides before warping.
_TO_EDGE = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
_TO_CENTRE = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


def _warp(img: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int, perspective: bool) -> np.ndarray:
    m = _TO_CENTRE @ m @ _TO_EDGE
    if perspective:
        return cv2.warpPerspective(img, m, size, flags=cv2.INTER_LINEAR, borderMode=border)
    return cv2.warpAffine(img, m[:2], size, flags=cv2.INTER_LINEAR, borderMode=border)


@dataclass
class _Layer:
    obj: BankObject
    pose: np.ndarray  # 3x3: level-0 object pixels -> world
    gain: np.ndarray  # (3,) per-channel multiplier


def _render(bg_levels: list[np.ndarray], bg_from_world: np.ndarray, layers: list[_Layer], crop: np.ndarray,
            out: int, stripes: np.ndarray | None) -> np.ndarray:
    """Draw background then layers (in order) into the crop; float32 (out, out, 3) in 0..255.

    Each layer is warped and blended only inside its own box in the crop (most cover a small part of it).
    """
    if stripes is not None:
        img = stripes.astype(np.float32)
    else:
        bg, m = _level(bg_levels, crop @ np.linalg.inv(bg_from_world))
        img = _warp(bg, m, (out, out), cv2.BORDER_REFLECT_101, False).astype(np.float32)
    for layer in layers:
        x, y, w, h = _tight_box(layer, crop)
        x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
        x1, y1 = min(out, math.ceil(x + w) + 1), min(out, math.ceil(y + h) + 1)
        if x1 <= x0 or y1 <= y0:
            continue
        to_out = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ crop @ layer.pose
        persp = bool(abs(to_out[2, 0]) > 1e-12 or abs(to_out[2, 1]) > 1e-12)
        rgb, m = _level(layer.obj.rgb, to_out)
        alpha, _ = _level(layer.obj.alpha, to_out)
        size = (x1 - x0, y1 - y0)
        a = _warp(alpha, m, size, cv2.BORDER_CONSTANT, persp)[..., None]
        col = _warp(rgb, m, size, cv2.BORDER_REPLICATE, persp).astype(np.float32) * layer.gain.astype(np.float32)
        region = img[y0:y1, x0:x1]
        region += a * (col - region)
    return img


def _tight_box(layer: _Layer, crop: np.ndarray) -> np.ndarray:
    """Tight (x, y, w, h) of the object's alpha hull in crop pixels."""
    pts = np.concatenate([layer.obj.hull, np.ones((len(layer.obj.hull), 1))], axis=1) @ (crop @ layer.pose).T
    xy = pts[:, :2] / pts[:, 2:3]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


# ----------------------------------------------------------------------------- the scene
class CompositePairs:
    """Draws template/search crops of composed scenes: ``sample(rng, ...)`` -> ((t, t_box), (x, x_box)) or None.

    Patches are uint8 RGB; boxes normalised (x, y, w, h) in their crops, as
    :class:`dytrack_ros.train.pairs.PairDataset` expects before its shared augmentations.
    """

    def __init__(self, bank: MediaBank, options: CompositeOptions = CompositeOptions()) -> None:
        self.bank = bank
        self.opt = options

    # -- scene pieces
    def _photo_patch(self, rng: np.random.Generator) -> BankObject:
        """A soft-edged crop of a random background (rectangle, ellipse or rounded rectangle)."""
        src = self.bank.backgrounds[int(rng.integers(len(self.bank.backgrounds)))][0]
        H, W = src.shape[:2]
        side = float(np.exp(rng.uniform(math.log(24), math.log(min(160, H, W) - 1))))
        ar = float(np.exp(rng.normal(0.0, 0.35)))
        w = int(np.clip(side * math.sqrt(ar), 12, W - 1))
        h = int(np.clip(side / math.sqrt(ar), 12, H - 1))
        x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        rgb = src[y:y + h, x:x + w]
        alpha = np.zeros((h, w), np.float32)
        shape = rng.random()
        if shape < 0.5:
            alpha[:] = 1.0
        elif shape < 0.8:
            cv2.ellipse(alpha, (((w - 1) / 2, (h - 1) / 2), (w, h), 0.0), 1.0, -1)
        else:
            r = int(0.25 * min(w, h))
            cv2.rectangle(alpha, (r, 0), (w - 1 - r, h - 1), 1.0, -1)
            cv2.rectangle(alpha, (0, r), (w - 1, h - 1 - r), 1.0, -1)
            for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
                cv2.circle(alpha, (cx, cy), r, 1.0, -1)
        if shape >= 0.5:
            alpha = cv2.GaussianBlur(alpha, (3, 3), 0.8)
        rgba = np.concatenate([rgb, (alpha[..., None] * 255).astype(np.uint8)], axis=2)
        return make_object("photo_patch", rgba)

    def _random_object(self, rng: np.random.Generator) -> BankObject:
        if not self.bank.objects or rng.random() < self.opt.photo_patch_prob:
            return self._photo_patch(rng)
        return self.bank.objects[int(rng.integers(len(self.bank.objects)))]

    def _pose(self, rng: np.random.Generator, obj: BankObject, cx: float, cy: float, size: float, angle: float,
              aspect: float, persp: float) -> np.ndarray:
        """Object pixels -> world: scale the object's own box to area size^2 (times aspect), rotate, place."""
        h, w = obj.alpha[0].shape
        ar = (w / h) * aspect
        sx, sy = size * math.sqrt(ar), size / math.sqrt(ar)
        to_unit = np.array([[1.0 / w, 0.0, -0.5], [0.0, 1.0 / h, -0.5], [0.0, 0.0, 1.0]])
        m = _similarity(cx, cy, sx, sy, angle) @ to_unit
        if persp > 0:
            src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
            dst = src + rng.uniform(-persp, persp, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
            m = m @ cv2.getPerspectiveTransform(src, dst)
        return m

    def _stripes(self, rng: np.random.Generator, out: int, period_px: float, angle: float) -> np.ndarray:
        """A high-contrast stripe or check pattern seen through the crop (period in crop pixels)."""
        yy, xx = np.mgrid[0:out, 0:out].astype(np.float32)
        u = xx * math.cos(angle) + yy * math.sin(angle)
        pat = (np.floor(u / period_px) % 2).astype(np.float32)
        if rng.random() < 0.3:
            v = -xx * math.sin(angle) + yy * math.cos(angle)
            pat = np.abs(pat - (np.floor(v / period_px) % 2))
        c0, c1 = rng.uniform(0, 90, 3), rng.uniform(160, 255, 3)
        return c0 + pat[..., None] * (c1 - c0)

    # -- one pair
    def sample(self, rng: np.random.Generator, template_size: int, template_factor: float, search_size: int,
               search_factor: float, search_center_jitter: float, search_scale_jitter: float
               ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
        o = self.opt
        bg_levels = self.bank.backgrounds[int(rng.integers(len(self.bank.backgrounds)))]
        target = self._random_object(rng)
        size = float(np.exp(rng.uniform(math.log(o.min_size), math.log(o.max_size))))
        # the world (= the image of both frames) is the background, enlarged when needed so that a search region
        # (4.5 sizes) fits inside it; at the image's edge only so that the target (1.5 sizes) fits: the crops
        # then run past the image and are padded
        edge = o.frame_edge_prob > 0 and rng.random() < o.frame_edge_prob  # no draw when off: same scenes as before
        z = max(1.0, (1.5 if edge else 4.5) * size / min(bg_levels[0].shape[:2]))
        H, W = bg_levels[0].shape[0] * z, bg_levels[0].shape[1] * z
        aspect = float(np.exp(rng.normal(0.0, o.aspect_std)))
        angle = float(rng.normal(0.0, o.rotation_std))
        lo = 0.05 if edge else 0.2
        cx, cy = rng.uniform(lo, 1.0 - lo) * W, rng.uniform(lo, 1.0 - lo) * H
        flip = rng.random() < 0.5
        t_pose = self._pose(rng, target, cx, cy, size, angle, aspect, 0.0)
        if flip:
            t_pose = t_pose @ np.array([[-1.0, 0, target.alpha[0].shape[1]], [0, 1, 0], [0, 0, 1]])
        # the search frame: the object moved, turned, changed size/shape/perspective; the camera moved
        size1 = size * float(np.exp(rng.normal(0.0, o.scale_change_std)))
        aspect1 = aspect * float(np.exp(rng.normal(0.0, o.aspect_change_std)))
        angle1 = angle + float(rng.normal(0.0, o.rotation_change_std))
        shift = rng.normal(0.0, 0.5 * size, 2)
        x_pose = self._pose(rng, target, cx + shift[0], cy + shift[1], size1, angle1, aspect1,
                            o.perspective if rng.random() < 0.4 else 0.0)
        if flip:
            x_pose = x_pose @ np.array([[-1.0, 0, target.alpha[0].shape[1]], [0, 1, 0], [0, 0, 1]])
        zoom = float(np.exp(rng.normal(0.0, o.camera_zoom_std)))
        cam = rng.normal(0.0, 0.3 * size, 2)
        bg_t = np.diag([1.0 / z, 1.0 / z, 1.0])
        bg_x = bg_t @ np.array([[zoom, 0.0, cam[0] + (1 - zoom) * cx], [0.0, zoom, cam[1] + (1 - zoom) * cy],
                                [0, 0, 1]])
        gains = [np.exp(rng.normal(0.0, o.gain_std) + rng.normal(0.0, o.color_std, 3)) for _ in range(2)]
        # layer gains are relative to the frame's own gain, which applies to the whole rendered crop
        ones = np.ones(3)
        t_layers = [_Layer(target, t_pose, ones)]
        x_layers = [_Layer(target, x_pose, ones * float(np.exp(rng.normal(0.0, 0.5 * o.gain_std))))]
        t_box_w = _tight_box(t_layers[0], np.eye(3))
        # context: other objects around the target (both frames, moving a little) and look-alikes (search only)
        under_t, under_x = [], []
        if rng.random() < o.clutter_prob:
            for _ in range(int(rng.integers(1, 4))):
                other = self._random_object(rng)
                pos = np.array([cx, cy]) + rng.uniform(-2.5, 2.5, 2) * size
                s = size * float(np.exp(rng.normal(0.0, 0.4)))
                a = float(rng.normal(0.0, 0.3))
                under_t.append(_Layer(other, self._pose(rng, other, pos[0], pos[1], s, a, 1.0, 0.0), ones))
                pos1 = pos + rng.normal(0.0, 0.3 * size, 2)
                under_x.append(_Layer(other, self._pose(rng, other, pos1[0], pos1[1], s, a, 1.0, 0.0), ones))
        if rng.random() < o.distractor_prob:
            for _ in range(int(rng.integers(1, 3))):
                d = rng.uniform(-1.8, 1.8, 2) * size1
                if np.abs(d).max() < 0.9 * size1:
                    d = d / max(1e-6, np.abs(d).max()) * 0.9 * size1
                s = size1 * float(np.exp(rng.normal(0.0, 0.15)))
                pose = self._pose(rng, target, cx + shift[0] + d[0], cy + shift[1] + d[1], s,
                                  angle1 + float(rng.normal(0.0, 0.2)), aspect1, 0.0)
                tint = np.exp(rng.normal(0.0, 0.15, 3))
                under_x.append(_Layer(target, pose, tint))
        over_x = []
        if rng.random() < o.occluder_prob:
            occ = self._random_object(rng)
            s = size1 * float(np.exp(rng.uniform(-0.7, 0.2)))
            ang = rng.uniform(0, 2 * math.pi)
            dist = size1 * rng.uniform(0.35, 0.8)
            pos = np.array([cx + shift[0], cy + shift[1]]) + dist * np.array([math.cos(ang), math.sin(ang)])
            over_x.append(_Layer(occ, self._pose(rng, occ, pos[0], pos[1], s, float(rng.normal(0, 0.5)), 1.0, 0.0),
                                 ones))
        # crops: template around its box, search around a jittered box (OSTrack's jitter)
        x_box_w = _tight_box(x_layers[0], np.eye(3))
        t_side = template_factor * math.sqrt(_area(t_box_w))
        t_crop = _crop_from_world(t_box_w[0] + 0.5 * t_box_w[2], t_box_w[1] + 0.5 * t_box_w[3], t_side,
                                  template_size)
        jw, jh = x_box_w[2:] * np.exp(rng.standard_normal(2) * search_scale_jitter)
        jc = x_box_w[:2] + 0.5 * x_box_w[2:] + math.sqrt(jw * jh) * search_center_jitter * (rng.random(2) - 0.5)
        x_side = search_factor * math.sqrt(jw * jh)
        if not (x_side > 1 and t_side > 1 and _area(t_box_w) > 1):
            return None
        x_crop = _crop_from_world(jc[0], jc[1], x_side, search_size)
        stripes = rng.random() < o.stripes_prob
        period = rng.uniform(0.08, 0.35) * size
        s_ang = float(rng.uniform(0, math.pi))
        t_st = self._stripes(rng, template_size, period * template_size / t_side, s_ang) if stripes else None
        x_st = self._stripes(rng, search_size, period * search_size / x_side, s_ang) if stripes else None
        t_img = _render(bg_levels, bg_t, under_t + t_layers, t_crop, template_size, t_st) * gains[0]
        x_img = _render(bg_levels, bg_x, under_x + x_layers + over_x, x_crop, search_size, x_st) * gains[1]
        x_img = self._degrade(rng, x_img)
        t_box = _tight_box(t_layers[0], t_crop)
        x_box = _tight_box(x_layers[0], x_crop)
        if edge:
            # outside the image: the tracker's zero padding; the box: the target's part inside the image
            t_box, t_vis = _pad_outside_image(t_img, t_crop, W, H, t_box)
            x_box, x_vis = _pad_outside_image(x_img, x_crop, W, H, x_box)
            if min(t_vis, x_vis) < o.min_visible:
                return None
        return ((_to_u8(t_img), (t_box / template_size).astype(np.float32)),
                (_to_u8(x_img), (x_box / search_size).astype(np.float32)))

    def _degrade(self, rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
        if rng.random() < self.opt.blur_prob:
            if rng.random() < 0.5:
                n = int(rng.integers(3, 10))
                k = np.zeros((n, n), np.float32)
                ang = rng.uniform(0, math.pi)
                c = (n - 1) / 2
                dx, dy = math.cos(ang) * c, math.sin(ang) * c
                cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
                img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
            else:
                img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 1.6)))
        if rng.random() < self.opt.noise_prob:
            img = img + rng.normal(0.0, rng.uniform(2.0, 7.0), img.shape).astype(np.float32)
        return img


def _pad_outside_image(img: np.ndarray, crop: np.ndarray, W: float, H: float, box: np.ndarray
                       ) -> tuple[np.ndarray, float]:
    """Zero (in place) the crop pixels whose centre lies outside the image [0, W] x [0, H]; returns ``box``
    clipped to the image's part of the crop and the share of the box's area that is left."""
    out = img.shape[0]
    k, tx, ty = crop[0, 0], crop[0, 2], crop[1, 2]  # crops are axis-aligned: scale and shift
    x0, y0, x1, y1 = tx, ty, k * W + tx, k * H + ty  # the image in crop pixels
    centres = np.arange(out) + 0.5
    img[:, (centres < x0) | (centres > x1)] = 0.0
    img[(centres < y0) | (centres > y1), :] = 0.0
    bx0, by0 = max(box[0], x0), max(box[1], y0)
    bx1, by1 = min(box[0] + box[2], x1), min(box[1] + box[3], y1)
    clipped = np.array([bx0, by0, max(0.0, bx1 - bx0), max(0.0, by1 - by0)])
    return clipped, _area(clipped) / max(_area(box), 1e-9)


def _area(box: np.ndarray) -> float:
    return float(max(0.0, box[2]) * max(0.0, box[3]))


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 255).astype(np.uint8)


__all__ = ["BankObject", "CompositeOptions", "CompositePairs", "MediaBank", "make_object"]
