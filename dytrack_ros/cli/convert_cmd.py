"""``dytrack convert``: official OSTrack / CompressTracker checkpoint -> our pickle-free model file.

The checkpoint is read with the restricted unpickler (no pickled code runs,
the official repository is not needed); the result loads with
``load_model_file`` / ``Tracker.from_model`` like any of our models.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "convert", help="convert an official OSTrack/CompressTracker checkpoint to a .safetensors model file",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="official checkpoint (.pth / .pth.tar), trainer file or state dict")
    p.add_argument("--out", type=Path, required=True, help="output model file (.safetensors)")
    p.add_argument("--ce", action=argparse.BooleanOptionalAction, default=None,
                   help="force OSTrack candidate elimination (CE_LOC 3,6,9, keep 0.7) on (--ce) or off (--no-ce). "
                        "Default: read from the experiment name official trainer files record "
                        "(settings.config_name, e.g. vitb_256_mae_ce_32x4_ep300 = CE); files that record none "
                        "(bare state dicts) are converted without CE, with a warning")
    p.add_argument("--variant", default=None,
                   help="registry model name to check the weights against (e.g. ostrack256_ce, ct4); sets CE")
    p.add_argument("--num-heads", type=int, default=None,
                   help="attention heads (not visible in the weights; default embed_dim/64)")
    p.add_argument("--name", default=None, help="model name stored in the file (default: derived)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..model_io.model_file import ModelFileError, save_model_file
    from ..model_io.official import CeUndetectedWarning, load_official_checkpoint
    from ..model_io.safe_pickle import CheckpointError, UnsafeCheckpointError

    out: Path = args.out
    if out.suffix != ".safetensors":
        print(f"error: --out must end in .safetensors, got {out.name}", file=sys.stderr)
        return 2
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():  # CE warnings are printed with the report below, not twice
            warnings.simplefilter("ignore", CeUndetectedWarning)
            model, report = load_official_checkpoint(args.checkpoint, args.variant, ce=args.ce,
                                                     num_heads=args.num_heads, name=args.name)
    except UnsafeCheckpointError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for text in report.warnings:
        print(f"warning: {text}", file=sys.stderr)
    if report.unexpected_objects:
        print(f"note: pickled classes outside the known trainer set were kept inert: {report.unexpected_objects}")
    info = {
        "source_checkpoint": Path(args.checkpoint).name,
        "converted_by": "dytrack convert",
        "layout": report.layout,
        "ignored_keys": report.ignored_keys,
        "dropped_training_keys": len(report.dropped_keys),
        "epoch": report.epoch,
        "ce": report.ce_source,
    }
    try:  # written to a temporary file in --out's directory and renamed: no half-written output on failure
        save_model_file(model, out, info=info)
    except ModelFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({report.config.name})")
    return 0
