"""Synthetic sequences whose every background is a high-contrast striped image (GOT-10k layout).

Why: a box that grows frame after frame was reported on a distinct photo patch moving slowly over a
striped background. ``dytrack synth --photos DIR`` adds a folder's images to scikit-image's backgrounds, so
a striped image would be one background among many; this script plans and renders the sequences with the
same generator (``dytrack_ros.data.synth``) but a library whose only background is the striped image
(targets: scikit-image's named object crops, as in ``dytrack synth``). The striped image is also written as
a PNG next to the data, so the same photo can be used with ``dytrack synth --photos``.

    python benchmarks/striped_synth.py --out outputs/size/striped --num-sequences 10 --seed 7201 --preset easy
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from dytrack_ros.data import synth


def striped_image(width: int = 1024, height: int = 768, period: int = 24, angle_deg: float = 30.0) -> np.ndarray:
    """Black/white stripes (RGB uint8) of ``period`` px at ``angle_deg``: high contrast, no object-like blob."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a = np.deg2rad(angle_deg)
    phase = (xx * np.cos(a) + yy * np.sin(a)) / period
    grey = np.where((phase % 1.0) < 0.5, 235, 20).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def striped_library(stripes: np.ndarray) -> synth.PhotoLibrary:
    """scikit-image's named targets (no photo crops) over the one striped background."""
    base = synth.load_photo_library(None)
    return synth.PhotoLibrary(list(base.targets), [synth.Photo("stripes", stripes)])


def write_sequence(split_dir: Path, index: int, preset: synth.SynthPreset, seed: int, frames: int,
                   size: tuple[int, int], library: synth.PhotoLibrary) -> str:
    """Plan and render one sequence into ``split_dir`` (the layout ``dytrack synth`` writes)."""
    plan = synth.plan_sequence(synth._sequence_rng(seed, index, preset.name), preset, frames, size, library)
    name = "striped_" + synth.sequence_name(preset.name, index)
    cache = synth._prepare(plan, library)
    meta = synth._meta(name, plan, preset, seed, index, library)
    synth.write_sequence_folder(split_dir / name, plan, meta,
                                (synth.render_frame(plan, cache, t, preset) for t in range(frames)))
    return name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="dataset root; sequences go to OUT/<split>/")
    ap.add_argument("--split", default="val")
    ap.add_argument("--num-sequences", type=int, default=10)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--preset", default="easy", choices=sorted(synth.PRESETS))
    ap.add_argument("--seed", type=int, default=7201)
    ap.add_argument("--period", type=int, default=24, help="stripe period in background pixels")
    args = ap.parse_args(argv)
    stripes = striped_image(period=args.period)
    root = Path(args.out)
    (root / "photos").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "photos" / "stripes.png"), stripes)
    library = striped_library(stripes)
    split_dir = root / args.split
    split_dir.mkdir(parents=True, exist_ok=True)
    preset = synth.get_preset(args.preset)
    names = [write_sequence(split_dir, i, preset, args.seed, args.frames, (640, 480), library)
             for i in range(args.num_sequences)]
    (split_dir / "list.txt").write_text("".join(f"{n}\n" for n in names))
    print(f"wrote {len(names)} striped-background sequences to {split_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
