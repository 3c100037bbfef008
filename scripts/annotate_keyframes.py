#!/usr/bin/env python3
"""Dump video frames as PNGs with a labelled pixel grid and optional candidate boxes, for hand annotation.

Why: keyframe boxes are read off by eye. A grid with coordinates gives the numbers, and drawing the candidate box
back onto the frame (optionally cropped and enlarged around an edge) checks them before they go into
``benchmarks/keyframes/<stem>.txt``.

Examples::

    # every 10th frame of cup.mp4 with a 20 px grid labelled every 100 px
    python scripts/annotate_keyframes.py data/media/cup.mp4 --every 10 --out outputs/annot/cup
    # one frame, a candidate box, zoomed x3 around it
    python scripts/annotate_keyframes.py data/media/cup.mp4 --frames 40 --box 300,120,126,250 \\
        --crop 280,100,170,290 --scale 3 --grid 10 --out outputs/annot/cup
    # check a finished keyframe file: one montage of all keyframes with their boxes
    python scripts/annotate_keyframes.py data/media/cup.mp4 --keyframes benchmarks/keyframes/cup.txt --montage \\
        --out outputs/annot/cup
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from dytrack_ros.eval.keyframes import parse_keyframes, read_video_frames

MARGIN = 34  # px of border (left and top) that carries the coordinate labels


def parse_box(text: str) -> tuple[float, float, float, float]:
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4:
        raise argparse.ArgumentTypeError(f"box needs four numbers x,y,w,h, got {text!r}")
    return vals[0], vals[1], vals[2], vals[3]


def render(frame: np.ndarray, boxes: list[tuple[tuple[float, float, float, float], tuple[int, int, int]]],
           crop: tuple[float, float, float, float] | None, scale: float, grid: int, label_every: int,
           title: str) -> np.ndarray:
    """Crop, enlarge, draw grid lines every ``grid`` px (labelled every ``label_every`` px) and the boxes."""
    h_img, w_img = frame.shape[:2]
    x0, y0, cw, ch = (0, 0, w_img, h_img) if crop is None else (int(v) for v in crop)
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x0 + cw, w_img), min(y0 + ch, h_img)
    img = cv2.resize(frame[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    out = np.full((img.shape[0] + MARGIN + 14, img.shape[1] + MARGIN, 3), 255, np.uint8)
    out[MARGIN:MARGIN + img.shape[0], MARGIN:] = img
    view = out[MARGIN:MARGIN + img.shape[0], MARGIN:]
    font = cv2.FONT_HERSHEY_SIMPLEX
    for gx in range((x0 + grid - 1) // grid * grid, x1 + 1, grid):
        px = int(round((gx - x0) * scale))
        major = gx % label_every == 0
        col = (0, 255, 255) if major else (160, 160, 160)
        if px < view.shape[1]:
            view[:, px] = (0.5 * view[:, px] + 0.5 * np.array(col)).astype(np.uint8)
        if major:
            cv2.putText(out, str(gx), (MARGIN + px - 10, MARGIN - 6), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for gy in range((y0 + grid - 1) // grid * grid, y1 + 1, grid):
        py = int(round((gy - y0) * scale))
        major = gy % label_every == 0
        col = (0, 255, 255) if major else (160, 160, 160)
        if py < view.shape[0]:
            view[py, :] = (0.5 * view[py, :] + 0.5 * np.array(col)).astype(np.uint8)
        if major:
            cv2.putText(out, str(gy), (1, MARGIN + py + 4), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    for (bx, by, bw, bh), color in boxes:
        if not np.isfinite([bx, by, bw, bh]).all():
            continue
        # the box covers pixels [x, x+w) x [y, y+h): draw on those pixel boundaries
        p0 = (int(round((bx - x0) * scale)), int(round((by - y0) * scale)))
        p1 = (int(round((bx + bw - x0) * scale)) - 1, int(round((by + bh - y0) * scale)) - 1)
        cv2.rectangle(view, p0, p1, color, 1)
    cv2.putText(out, title, (MARGIN, out.shape[0] - 3), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def edge_strips(frame: np.ndarray, box: tuple[float, float, float, float], band: int, scale: float,
                title: str) -> np.ndarray:
    """The four edges of ``box`` side by side, each a ``2*band`` px strip around the edge, enlarged, 5 px grid.

    Why: judging whether an edge sits on the object's boundary is easiest close up, relative to the drawn line.
    """
    x, y, w, h = box
    strips = []
    for cx, cy, cw, ch in ((x - band, y - band, 2 * band, h + 2 * band),      # left
                           (x + w - band, y - band, 2 * band, h + 2 * band),  # right
                           (x - band, y - band, w + 2 * band, 2 * band),      # top
                           (x - band, y + h - band, w + 2 * band, 2 * band)):  # bottom
        strips.append(render(frame, [(box, (0, 255, 0))], (cx, cy, cw, ch), scale, 5, 50, ""))
    left = montage(strips[:2], 2)
    right = np.vstack(strips[2:])
    hh = max(left.shape[0], right.shape[0])
    pad = [np.pad(a, ((0, hh - a.shape[0]), (0, 0), (0, 0)), constant_values=255) for a in (left, right)]
    out = np.hstack(pad)
    cv2.putText(out, title, (4, hh - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 255), 1, cv2.LINE_AA)
    return out


def montage(tiles: list[np.ndarray], cols: int) -> np.ndarray:
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * h:r * h + t.shape[0], c * w:c * w + t.shape[1]] = t
    return sheet


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--out", required=True, help="folder for the PNGs")
    ap.add_argument("--frames", default="", help="comma-separated frame indices")
    ap.add_argument("--every", type=int, default=0, help="every Nth frame from --start to --stop")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=None)
    ap.add_argument("--box", type=parse_box, action="append", default=[], help="candidate box x,y,w,h (repeatable)")
    ap.add_argument("--cand", action="append", default=[],
                    help="per-frame candidate FRAME:x,y,w,h (repeatable; its frames are the ones shown)")
    ap.add_argument("--pad", type=int, default=None,
                    help="crop to the candidate/keyframe box plus this many px on each side (overrides --crop)")
    ap.add_argument("--keyframes", default=None, help="keyframe file: draw its boxes (and use its frames)")
    ap.add_argument("--crop", type=parse_box, default=None, help="show only this region x,y,w,h")
    ap.add_argument("--scale", type=float, default=1.0, help="enlargement (nearest neighbour)")
    ap.add_argument("--grid", type=int, default=20, help="grid spacing in original pixels")
    ap.add_argument("--label-every", type=int, default=100, help="label grid lines at multiples of this")
    ap.add_argument("--edges", type=int, default=0,
                    help="instead of the frame: the four box edges close up, each a strip of +-N px")
    ap.add_argument("--montage", action="store_true", help="one sheet of all frames instead of one PNG each")
    ap.add_argument("--cols", type=int, default=4)
    args = ap.parse_args(argv)

    kf = parse_keyframes(args.keyframes) if args.keyframes else None
    cands: dict[int, tuple[float, float, float, float]] = {}
    for c in args.cand:
        f_text, _, b_text = c.partition(":")
        try:
            cands[int(f_text)] = parse_box(b_text)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            ap.error(f"--cand {c!r}: expected FRAME:x,y,w,h ({exc})")
    try:
        frame_list = [int(v) for v in args.frames.split(",")] if args.frames else []
    except ValueError:
        ap.error(f"--frames {args.frames!r}: expected comma-separated frame indices")
    if cands:
        wanted = sorted(cands)
    elif frame_list:
        wanted = frame_list
    elif kf is not None:
        wanted = [int(v) for v in kf.frames]
    elif args.every > 0:
        wanted = []
    else:
        ap.error("give --frames, --every or --keyframes")
    frames = read_video_frames(args.video, None if args.every > 0 and args.stop is None else
                               (max(wanted) + 1 if wanted else args.stop))
    if not wanted:
        stop = len(frames) if args.stop is None else min(args.stop, len(frames))
        wanted = list(range(args.start, stop, args.every))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.video).stem
    tiles = []
    for f in wanted:
        if f >= len(frames):
            print(f"frame {f}: video has only {len(frames)} frames")
            continue
        cand = list(args.box) + ([cands[f]] if f in cands else [])
        boxes = [(b, (0, 255, 0)) for b in cand]
        title = f"{f}"
        if kf is not None and f in set(int(v) for v in kf.frames):
            b = kf.boxes[list(kf.frames).index(f)]
            boxes.append((tuple(b), (0, 0, 255)))
            title += " kf " + ",".join(f"{v:g}" for v in b)
        for b in cand:
            title += " cand " + ",".join(f"{v:g}" for v in b)
        crop = args.crop
        if args.pad is not None and boxes and np.isfinite(boxes[0][0]).all():
            bx, by, bw, bh = boxes[0][0]
            crop = (bx - args.pad, by - args.pad, bw + 2 * args.pad, bh + 2 * args.pad)
        if args.edges and boxes:
            tile = edge_strips(frames[f], boxes[0][0], args.edges, args.scale, title)
        else:
            tile = render(frames[f], boxes, crop, args.scale, args.grid, args.label_every, title)
        if args.montage:
            tiles.append(tile)
        else:
            cv2.imwrite(str(out / f"{stem}_f{f:04d}.png"), tile)
    if args.montage and tiles:
        path = out / f"{stem}_montage.png"
        cv2.imwrite(str(path), montage(tiles, min(args.cols, len(tiles))))
        print(path)
    else:
        print(f"{len(wanted)} PNGs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
