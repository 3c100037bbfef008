"""Media bank: training / calibration / unseen-test images split by SOURCE.

Training composites, exit calibration and the unseen test must never share an image source, otherwise the
"unseen" numbers measure memorised wallpapers. This module turns the extracted Debian packages into a small
bank (<= ``--max-mb`` on disk, so it can travel with the working tree) with this split:

* ``train``: backgrounds from gnome-backgrounds, the opencv-doc still photos and scikit-image's bundled photos;
  objects (RGBA cut-outs) from openclipart-png, oxygen-icon-theme and Noto Color Emoji.
* ``calib``: backgrounds from sway-backgrounds.
* ``test``: backgrounds from ukui-wallpapers and desktop-base (one image per picture).

Input layout (what ``scripts/fetch_training_media.sh`` makes): ``<src>/<package>/`` holds ``dpkg -x`` of that
package, e.g. ``<src>/gnome-backgrounds/usr/share/backgrounds/gnome/wood-d.webp``.

Output: ``<out>/manifest.json`` (written last, atomically), ``<out>/<split>/backgrounds/NNNN.jpg`` (RGB JPEG q90,
longest side <= 640) and ``<out>/train/objects/NNNN.png`` (straight-alpha RGBA, tight crop, longest side <= 160).

Run: ``python -m dytrack_ros.data.media_bank --src data/training_media/extract --out data/bank``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import shutil
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .synth import SKIMAGE_BACKGROUNDS, skimage_background

FORMAT_VERSION = 1
SPLITS = ("train", "calib", "test")
KINDS = ("backgrounds", "objects")
RASTER_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

# Background filters / output (see module docstring).
BG_MIN_SIDE = 200  # shortest side before scaling
BG_MIN_GREY_STD = 10.0  # near-uniform images are useless as clutter
BG_MAX_SIDE = 640
BG_JPEG_QUALITY = 90
BG_MAX_SOURCE_SIDE = 4096  # desktop-base: the largest rendering <= 4K per picture
# Object filters / output.
OBJ_ALPHA_CROP = 0.1
OBJ_MAX_SIDE = 160
OBJ_MIN_SIDE = 24
OBJ_MIN_COVERAGE = 0.15
OBJ_MIN_TEXTURE = 12.0  # mean over R, G, B of the channel std over pixels with alpha > 0.5
OXYGEN_MAX_ICON = 256
EMOJI_FONT_SIZE = 109  # Noto Color Emoji's only bitmap strike

DEFAULT_MAX_MB = 40.0
DEFAULT_MAX_TRAIN_BACKGROUNDS = 350
DEFAULT_MAX_TRAIN_OBJECTS = 2500
DEFAULT_SEED = 0
BLOCK = 4096  # file sizes are counted in whole filesystem blocks, as `du` does
RESERVE_BYTES = 1_000_000  # kept free for manifest.json and directory entries


class MediaBankError(RuntimeError):
    """Missing inputs or an unusable output folder."""


@dataclass(frozen=True)
class Candidate:
    """One input image: where it comes from and how to load it (BGR/BGRA uint8, or None when unreadable)."""

    source: str
    origin: str
    load: Callable[[], np.ndarray | None]


@dataclass
class SourceSpec:
    """A source package (or library) feeding one split and kind."""

    name: str
    split: str
    kind: str
    lister: Callable[[Path], list[Candidate]]
    package: bool = True  # False: not read from --src (scikit-image)


@dataclass
class BankStats:
    """Counts per (split, kind, source) and the reasons inputs were skipped."""

    written: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)  # -> [count, bytes]
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> reason -> count

    def add(self, split: str, kind: str, source: str, nbytes: int) -> None:
        entry = self.written.setdefault((split, kind, source), [0, 0])
        entry[0] += 1
        entry[1] += nbytes

    def skip(self, source: str, reason: str) -> None:
        reasons = self.skipped.setdefault(source, {})
        reasons[reason] = reasons.get(reason, 0) + 1


# ----------------------------------------------------------------------------- image helpers
def _read_image(path: Path) -> np.ndarray | None:
    """Any raster file as uint8 BGR or BGRA (16-bit and grey inputs converted)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 2:  # grey + alpha
        img = np.dstack([img[..., 0]] * 3 + [img[..., 1]])
    return img


def _scale_to(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (never upscale) so the longest side is <= max_side, with INTER_AREA."""
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s >= 1.0:
        return img
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _file_blocks(nbytes: int) -> int:
    return -(-nbytes // BLOCK) * BLOCK


def prepare_background(img: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Filtered, scaled BGR background, or (None, reason)."""
    if img.ndim == 3 and img.shape[2] == 4:
        if float((img[..., 3] < 250).mean()) > 0.01:
            return None, "transparent"
        img = img[..., :3]
    if min(img.shape[:2]) < BG_MIN_SIDE:
        return None, "too small"
    if float(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).std()) < BG_MIN_GREY_STD:
        return None, "near-uniform"
    return np.ascontiguousarray(_scale_to(img, BG_MAX_SIDE)), ""


def _resize_straight_rgba(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale straight-alpha BGRA via premultiplied colour, so transparent pixels' colours do not bleed in."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    a = img[..., 3:4].astype(np.float32) / 255.0
    pre = np.concatenate([img[..., :3].astype(np.float32) * a, a * 255.0], axis=2)
    small = _scale_to(pre, max_side)
    alpha = small[..., 3:4]
    rgb = np.where(alpha > 0.5, small[..., :3] * 255.0 / np.maximum(alpha, 1e-6), 0.0)
    return np.clip(np.concatenate([rgb, alpha], axis=2) + 0.5, 0, 255).astype(np.uint8)


def prepare_object(img: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Filtered, tight-cropped, scaled straight-alpha BGRA object, or (None, reason)."""
    if img.ndim != 3 or img.shape[2] != 4:
        return None, "no alpha"
    alpha = img[..., 3].astype(np.float32) / 255.0
    ys, xs = np.nonzero(alpha > OBJ_ALPHA_CROP)
    if ys.size == 0:
        return None, "empty alpha"
    img = img[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    img = _resize_straight_rgba(img, OBJ_MAX_SIDE)
    h, w = img.shape[:2]
    if min(h, w) < OBJ_MIN_SIDE:
        return None, "too small"
    alpha = img[..., 3].astype(np.float32) / 255.0
    if float((alpha > OBJ_ALPHA_CROP).mean()) < OBJ_MIN_COVERAGE:
        return None, "sparse alpha"
    solid = alpha > 0.5
    if solid.sum() < 16:
        return None, "sparse alpha"
    texture = float(np.mean([img[..., c][solid].std() for c in range(3)]))
    if texture < OBJ_MIN_TEXTURE:
        return None, "flat"
    return np.ascontiguousarray(img), ""


# ----------------------------------------------------------------------------- font cmap (emoji)
def font_codepoints(path: Path) -> list[int]:
    """Code points a TrueType font maps (cmap format 12, else format 4), sorted; no fontTools needed."""
    data = path.read_bytes()
    try:
        num_tables = struct.unpack_from(">H", data, 4)[0]
        cmap = None
        for i in range(num_tables):
            tag, _, off, _ = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            if tag == b"cmap":
                cmap = off
        if cmap is None:
            raise MediaBankError(f"{path}: font has no cmap table")
        subtables = {}
        for i in range(struct.unpack_from(">H", data, cmap + 2)[0]):
            _, _, off = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
            subtables.setdefault(struct.unpack_from(">H", data, cmap + off)[0], cmap + off)
        points: set[int] = set()
        if 12 in subtables:
            base = subtables[12]
            for g in range(struct.unpack_from(">I", data, base + 12)[0]):
                start, end, _ = struct.unpack_from(">III", data, base + 16 + 12 * g)
                points.update(range(start, end + 1))
        elif 4 in subtables:
            base = subtables[4]
            seg = struct.unpack_from(">H", data, base + 6)[0] // 2
            ends = struct.unpack_from(f">{seg}H", data, base + 14)
            starts = struct.unpack_from(f">{seg}H", data, base + 16 + 2 * seg)
            for s, e in zip(starts, ends):
                points.update(range(s, e + 1))
            points.discard(0xFFFF)
        else:
            raise MediaBankError(f"{path}: no cmap subtable of format 4 or 12")
    except struct.error as exc:
        raise MediaBankError(f"{path}: not a readable TrueType font ({exc})") from exc
    return sorted(points)


def render_glyph(font, codepoint: int) -> np.ndarray | None:
    """One glyph as straight-alpha BGRA (colour bitmaps kept), or None when it renders nothing.

    Drawn on opaque black and on opaque white: the difference gives the coverage and the black rendering the
    colour times coverage, so the result is straight alpha whatever Pillow does on transparent canvases (it
    leaves premultiplied-looking dark fringes there).
    """
    from PIL import Image, ImageDraw

    ch = chr(codepoint)
    try:
        box = font.getbbox(ch)
        w, h = box[2] - box[0], box[3] - box[1]
        if w <= 0 or h <= 0:
            return None
        shots = []
        for bg in (0, 255):
            canvas = Image.new("RGB", (w + 8, h + 8), (bg, bg, bg))
            ImageDraw.Draw(canvas).text((4 - box[0], 4 - box[1]), ch, font=font, embedded_color=True,
                                        fill=(255, 255, 255))
            shots.append(np.asarray(canvas).astype(np.float32))
    except (OSError, ValueError):
        return None
    on_black, on_white = shots
    alpha = np.clip(1.0 - (on_white - on_black).mean(axis=2, keepdims=True) / 255.0, 0.0, 1.0)
    rgb = np.where(alpha > 1e-3, on_black / np.maximum(alpha, 1e-3), 0.0)
    rgba = np.clip(np.concatenate([rgb, alpha * 255.0], axis=2) + 0.5, 0, 255).astype(np.uint8)
    if not rgba[..., 3].any():
        return None
    return cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)


# ----------------------------------------------------------------------------- source listers
def _rasters(root: Path) -> list[Path]:
    """Sorted regular raster files under root (symlinks skipped: they alias other files)."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix.lower() in RASTER_EXTS)


def _file_candidates(source: str, pkg_root: Path, files: list[Path]) -> list[Candidate]:
    return [Candidate(source, str(p.relative_to(pkg_root)), lambda p=p: _read_image(p)) for p in files]


def _dir_lister(source: str, subdir: str) -> Callable[[Path], list[Candidate]]:
    def lister(pkg_root: Path) -> list[Candidate]:
        files = _rasters(pkg_root / subdir)
        return _file_candidates(source, pkg_root, files)

    return lister


_THEME_RE = re.compile(r"(?:desktop-base/([\w.+-]+?)-theme/|plymouth/themes/([\w.+-]+)/)")


def desktop_base_picture(origin: str) -> str:
    """The picture a desktop-base file renders: its theme (grub, login, plymouth and wallpaper share the artwork),
    else its folder."""
    m = _THEME_RE.search(origin)
    if m:
        return m.group(1) or m.group(2)
    return str(Path(origin).parent)


def _list_desktop_base(pkg_root: Path) -> list[Candidate]:
    """One raster per picture: the largest usable rendering <= 4K (checked while listing: needs the pixels)."""
    files = _rasters(pkg_root / "usr")
    best: dict[str, tuple[int, Path]] = {}
    for p in files:
        img = _read_image(p)
        if img is None or max(img.shape[:2]) > BG_MAX_SOURCE_SIDE:
            continue
        if prepare_background(img)[0] is None:
            continue
        key = desktop_base_picture(str(p.relative_to(pkg_root)))
        area = img.shape[0] * img.shape[1]
        if key not in best or area > best[key][0]:
            best[key] = (area, p)
    chosen = sorted(p for _, p in best.values())
    return _file_candidates("desktop-base", pkg_root, chosen)


def _list_oxygen(pkg_root: Path) -> list[Candidate]:
    """One PNG per icon name: the largest <= 256 px (size read from the PNG header, ties -> first path)."""
    files = _rasters(pkg_root / "usr/share/icons/oxygen")
    best: dict[str, tuple[int, Path]] = {}
    for p in files:
        if p.suffix.lower() != ".png":
            continue
        with p.open("rb") as f:
            head = f.read(24)
        if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
            continue
        side = max(struct.unpack(">II", head[16:24]))
        if side > OXYGEN_MAX_ICON:
            continue
        if p.stem not in best or side > best[p.stem][0]:
            best[p.stem] = (side, p)
    chosen = sorted(p for _, p in best.values())
    return _file_candidates("oxygen-icon-theme", pkg_root, chosen)


def _list_emoji(pkg_root: Path) -> list[Candidate]:
    fonts = sorted(pkg_root.rglob("NotoColorEmoji.ttf"))
    if not fonts:
        raise MediaBankError(f"NotoColorEmoji.ttf not found under {pkg_root}")
    try:
        from PIL import ImageFont
    except ImportError as exc:
        raise MediaBankError("rendering emoji needs Pillow with FreeType (pip install Pillow)") from exc
    path = fonts[0]
    try:
        font = ImageFont.truetype(str(path), EMOJI_FONT_SIZE)
    except OSError as exc:
        raise MediaBankError(f"{path}: Pillow cannot open the font at size {EMOJI_FONT_SIZE} ({exc})") from exc
    rel = str(path.relative_to(pkg_root))
    return [Candidate("fonts-noto-color-emoji", f"{rel}#U+{cp:04X}", lambda cp=cp: render_glyph(font, cp))
            for cp in font_codepoints(path) if cp > 0x20]


def _list_skimage(_: Path) -> list[Candidate]:
    try:
        from skimage import data as skdata  # noqa: F401
    except ImportError as exc:
        raise MediaBankError("scikit-image is needed for its bundled photos (pip install scikit-image)") from exc

    def load(name: str) -> np.ndarray:
        return cv2.cvtColor(skimage_background(name), cv2.COLOR_RGB2BGR)

    # the photos the synthetic generator uses as backgrounds (bundled with the wheel, no download)
    return [Candidate("scikit-image", f"skimage.data.{n}", lambda n=n: load(n)) for n in SKIMAGE_BACKGROUNDS]


def default_sources() -> list[SourceSpec]:
    """The source -> split table (order = round-robin order within a split and kind)."""
    return [
        SourceSpec("gnome-backgrounds", "train", "backgrounds",
                   _dir_lister("gnome-backgrounds", "usr/share/backgrounds")),
        SourceSpec("opencv-doc", "train", "backgrounds",
                   _dir_lister("opencv-doc", "usr/share/doc/opencv-doc/examples/data")),
        SourceSpec("scikit-image", "train", "backgrounds", _list_skimage, package=False),
        SourceSpec("openclipart-png", "train", "objects", _dir_lister("openclipart-png", "usr/share/openclipart")),
        SourceSpec("oxygen-icon-theme", "train", "objects", _list_oxygen),
        SourceSpec("fonts-noto-color-emoji", "train", "objects", _list_emoji),
        SourceSpec("sway-backgrounds", "calib", "backgrounds",
                   _dir_lister("sway-backgrounds", "usr/share/backgrounds")),
        SourceSpec("ukui-wallpapers", "test", "backgrounds", _dir_lister("ukui-wallpapers", "usr/share/backgrounds")),
        SourceSpec("desktop-base", "test", "backgrounds", _list_desktop_base),
    ]


# ----------------------------------------------------------------------------- builder
def _round_robin(lists: list[list[Candidate]]) -> Iterator[Candidate]:
    """Interleave the sources so any cap keeps a spread over them."""
    iters = [iter(x) for x in lists]
    while iters:
        alive = []
        for it in iters:
            item = next(it, None)
            if item is not None:
                yield item
                alive.append(it)
        iters = alive


def _clear_output(out: Path) -> None:
    """Remove what a previous build wrote (only the bank's own layout), so no stale files survive."""
    if out.exists() and not out.is_dir():
        raise MediaBankError(f"--out {out} exists and is not a folder")
    (out / "manifest.json").unlink(missing_ok=True)
    for split in SPLITS:
        for kind in KINDS:
            d = out / split / kind
            if d.is_dir():
                shutil.rmtree(d)


def _log(msg: str) -> None:
    print(msg, flush=True)


def build_bank(
    src: str | Path,
    out: str | Path,
    *,
    max_mb: float = DEFAULT_MAX_MB,
    max_train_backgrounds: int = DEFAULT_MAX_TRAIN_BACKGROUNDS,
    max_train_objects: int = DEFAULT_MAX_TRAIN_OBJECTS,
    seed: int = DEFAULT_SEED,
    sources: list[SourceSpec] | None = None,
    progress: bool = True,
) -> tuple[dict, BankStats]:
    """Build the bank; returns (manifest, stats). Deterministic in (inputs, caps, seed)."""
    src, out = Path(src), Path(out)
    specs = default_sources() if sources is None else sources
    if not src.is_dir():
        raise MediaBankError(f"--src {src} is not a folder (run scripts/fetch_training_media.sh first)")
    missing = [s.name for s in specs if s.package and not (src / s.name).is_dir()]
    if missing:
        raise MediaBankError(f"missing extracted package(s) under {src}: {', '.join(missing)} "
                             "(expected <src>/<package>/usr/...; run scripts/fetch_training_media.sh)")
    _clear_output(out)
    budget = int(max_mb * 1e6) - RESERVE_BYTES
    used = 0
    stats = BankStats()
    manifest: dict = {"format_version": FORMAT_VERSION,
                      "splits": {s: {k: [] for k in KINDS} for s in SPLITS}}
    rng = np.random.default_rng(seed)
    seen: set[bytes] = set()  # content hashes of written images (identical copies count once)
    caps = {("train", "backgrounds"): max_train_backgrounds, ("train", "objects"): max_train_objects}
    # Backgrounds first (few, and every split needs them), then objects fill the remaining budget.
    for kind in KINDS:
        for split in SPLITS:
            group = [s for s in specs if s.split == split and s.kind == kind]
            if not group:
                continue
            lists = []
            for spec in group:
                cands = spec.lister(src / spec.name)
                _log(f"[{split}/{kind}] {spec.name}: {len(cands)} candidates")
                if not cands:
                    raise MediaBankError(f"{spec.name}: no input images found under {src / spec.name}")
                order = rng.permutation(len(cands))  # deterministic sample when capped
                lists.append([cands[i] for i in order])
            cap = caps.get((split, kind), math.inf)
            folder = out / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            entries = manifest["splits"][split][kind]
            total = sum(len(x) for x in lists)
            stream = _round_robin(lists)
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=total, desc=f"{split}/{kind}", unit="img", mininterval=2.0, file=sys.stdout)
            for cand in stream:
                if bar is not None:
                    bar.update(1)
                if len(entries) >= cap:
                    break
                img = cand.load()
                if img is None:
                    stats.skip(cand.source, "unreadable")
                    continue
                prepared, reason = (prepare_background if kind == "backgrounds" else prepare_object)(img)
                if prepared is None:
                    stats.skip(cand.source, reason)
                    continue
                digest = hashlib.sha1(prepared.tobytes() + str(prepared.shape).encode()).digest()
                if digest in seen:
                    stats.skip(cand.source, "duplicate")
                    continue
                ext = ".jpg" if kind == "backgrounds" else ".png"
                params = [cv2.IMWRITE_JPEG_QUALITY, BG_JPEG_QUALITY] if ext == ".jpg" \
                    else [cv2.IMWRITE_PNG_COMPRESSION, 9]
                ok, buf = cv2.imencode(ext, prepared, params)
                if not ok:
                    stats.skip(cand.source, "encode failed")
                    continue
                size = _file_blocks(len(buf))
                if used + size > budget:
                    stats.skip(cand.source, "size budget")
                    if kind == "backgrounds":
                        raise MediaBankError(f"backgrounds alone exceed --max-mb {max_mb}; lower the caps")
                    break
                rel = f"{split}/{kind}/{len(entries):04d}{ext}"
                (out / rel).write_bytes(buf.tobytes())
                seen.add(digest)
                used += size
                entries.append({"file": rel, "source": cand.source, "origin": cand.origin})
                stats.add(split, kind, cand.source, len(buf))
            if bar is not None:
                bar.close()
            _log(f"[{split}/{kind}] wrote {len(entries)}")
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(out / "manifest.json")
    return manifest, stats


def load_manifest(bank: str | Path) -> dict:
    """Read and sanity-check a bank's manifest (format version, splits, files present)."""
    bank = Path(bank)
    path = bank / "manifest.json"
    if not path.is_file():
        raise MediaBankError(f"{path} not found (build the bank: python -m dytrack_ros.data.media_bank)")
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise MediaBankError(f"{path}: format_version {manifest.get('format_version')!r}, "
                                 f"expected {FORMAT_VERSION}")
        for split in SPLITS:
            for kind in KINDS:
                for e in manifest["splits"][split][kind]:
                    if not (bank / e["file"]).is_file():
                        raise MediaBankError(f"{path}: listed file {e['file']} is missing")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MediaBankError(f"{path}: not a media bank manifest ({type(exc).__name__}: {exc})") from exc
    return manifest


def summary_table(stats: BankStats, out: str | Path) -> str:
    """Plain-text table: split, kind, source, count, MB; then totals and skip reasons."""
    rows = [f"{'split':<6} {'kind':<12} {'source':<24} {'count':>6} {'MB':>7}"]
    for (split, kind, source), (count, nbytes) in sorted(stats.written.items(),
                                                         key=lambda kv: (SPLITS.index(kv[0][0]), kv[0][1:])):
        rows.append(f"{split:<6} {kind:<12} {source:<24} {count:>6} {nbytes / 1e6:>7.2f}")
    files = [p for p in Path(out).rglob("*") if p.is_file()]
    apparent = sum(p.stat().st_size for p in files)
    on_disk = sum(_file_blocks(p.stat().st_size) for p in files)
    rows.append(f"total: {len(files)} files, {apparent / 1e6:.2f} MB (on disk, 4 KiB blocks: {on_disk / 1e6:.2f} MB)")
    for source, reasons in sorted(stats.skipped.items()):
        rows.append(f"skipped {source}: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dytrack_ros.data.media_bank", description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, help="folder holding <package>/ (dpkg -x of each package)")
    ap.add_argument("--out", default="data/bank", help="bank folder (default %(default)s)")
    ap.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="whole bank on disk, MB (default %(default)s)")
    ap.add_argument("--max-train-backgrounds", type=int, default=DEFAULT_MAX_TRAIN_BACKGROUNDS)
    ap.add_argument("--max-train-objects", type=int, default=DEFAULT_MAX_TRAIN_OBJECTS)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="sampling seed (default %(default)s)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars (log lines only)")
    args = ap.parse_args(argv)
    try:
        _, stats = build_bank(args.src, args.out, max_mb=args.max_mb, max_train_backgrounds=args.max_train_backgrounds,
                              max_train_objects=args.max_train_objects, seed=args.seed,
                              progress=not args.no_progress)
    except MediaBankError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(stats, args.out))
    print(f"manifest: {Path(args.out) / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
