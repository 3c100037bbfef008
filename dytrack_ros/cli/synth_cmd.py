"""dytrack synth: write synthetic tracking sequences with exact ground truth (GOT-10k layout)."""
from __future__ import annotations

import argparse
import sys
import time


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 640x480, got '{text}'") from None
    return w, h


def add_parser(sub) -> None:
    from ..data.synth import PRESETS

    p = sub.add_parser(
        "synth", help="generate synthetic sequences with exact ground truth from real photos",
        description="Compose tracking sequences from real photographs (scikit-image's bundled photos, plus an "
                    "optional folder of your own): a target crop moves over a background seen through a "
                    "panning/zooming camera, with scale/aspect change, fast motion and blur, illumination change, "
                    "occlusion, out-of-view periods and distractors depending on --preset. Written in GOT-10k "
                    "layout (OUT/<split>/list.txt, <seq>/00000001.jpg..., groundtruth.txt, absence.label, "
                    "cover.label, cut_by_image.label, meta_info.ini); read it back with --format got10k. "
                    "Deterministic in (--seed, --preset, sequence number, photos). "
                    "Re-running skips finished sequences.")
    p.add_argument("--out", required=True, metavar="DIR", help="output dataset root (sequences go to DIR/<split>/)")
    p.add_argument("--num-sequences", type=int, default=10, metavar="N",
                   help="number of sequences (default: %(default)s)")
    p.add_argument("--frames", type=int, default=150, metavar="F", help="frames per sequence (default: %(default)s)")
    p.add_argument("--preset", default="medium", choices=sorted(PRESETS),
                   help="difficulty: easy (slow, no occlusion), medium, hard (fast motion, full occlusion, "
                        "out of view, distractors) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed = same sequences (default: %(default)s)")
    p.add_argument("--size", type=_parse_size, default=(640, 480), metavar="WxH",
                   help="frame size in pixels (default: 640x480)")
    p.add_argument("--split", default="val", help="split folder name: val, train or test (default: %(default)s)")
    p.add_argument("--start-index", type=int, default=0, metavar="I",
                   help="number of the first sequence; use to add sequences to an existing set (default: %(default)s)")
    p.add_argument("--photos", default=None, metavar="DIR",
                   help="extra photos (jpg/png) used as backgrounds and target crops, e.g. data/media/photos "
                        "filled by scripts/fetch_media.sh (default: scikit-image photos only)")
    p.add_argument("--photos-only", action="store_true",
                   help="use only the --photos folder, without scikit-image's photos (evaluation sets from "
                        "sources never used for training, e.g. data/bank/test/backgrounds)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.synth import SynthError, generate_dataset

    t0 = time.perf_counter()
    try:
        paths = generate_dataset(args.out, args.num_sequences, preset=args.preset, seed=args.seed, frames=args.frames,
                                 size=args.size, split=args.split, photo_dir=args.photos, workers=args.workers,
                                 progress=not args.quiet, start_index=args.start_index,
                                 photos_only=args.photos_only)
    except (SynthError, OSError) as exc:
        print(f"dytrack synth: error: {exc}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    print(f"wrote {len(paths)} sequences x {args.frames} frames to {paths[0].parent} in {dt:.1f} s")
    return 0
