"""dytrack calibrate: choose DyTrack exit thresholds for a mean-depth or latency budget."""
from __future__ import annotations

import argparse
import json
import sys

from ..runtime_options import RuntimeOptions
from ..train.config import CalibrationConfig


def add_parser(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="calibrate DyTrack exit thresholds on validation sequences",
        description="Track validation sequences with all exits evaluated, then pick the largest shared threshold "
                    "whose mean executed depth (or expected latency on this machine) meets the target, or the "
                    "least deep rule within an accuracy budget (--max-iou-drop). Writes the thresholds into the "
                    "model file's config and the table into its info.")
    p.add_argument("model", help="DyTrack .safetensors model file")
    p.add_argument("--data", required=True, metavar="FORMAT:ROOT[:SPLIT]",
                   help="validation sequences, e.g. got10k:outputs/synth_val:val")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--target-depth", type=float, help="mean executed transformer layers")
    g.add_argument("--target-latency-ms", type=float, help="mean network latency per frame on this machine")
    g.add_argument("--max-iou-drop", type=float, metavar="D",
                   help="accuracy budget instead: the least mean depth whose mean IoU on the validation frames is "
                        "at most D (absolute IoU, e.g. 0.01) below full depth's")
    p.add_argument("--max-sequences", type=int, default=CalibrationConfig.max_sequences)
    p.add_argument("--exit-agreement", type=float, default=None, metavar="IOU",
                   help="early-exit agreement: an early exit also needs IoU >= IOU between its box and the previous "
                        "frame's box; the thresholds are chosen under it and both are stored (0: off; default: the "
                        "model file's value)")
    p.add_argument("--choose-agreement", action="store_true",
                   help="choose the agreement IoU that meets the target instead of the thresholds (early-exit "
                        "thresholds 0: only the box agreement decides; its depth transfers to unseen footage)")
    p.add_argument("--out", default=None, help="output model file (default: overwrite MODEL)")
    d = RuntimeOptions()
    p.add_argument("--device", default=d.device,
                   help="device the model runs on while calibrating (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for inference (default: the runtime's); latency targets are measured with them")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..data.sequence import DatasetError
    from ..model_io.model_file import ModelFileError
    from ..train.calibrate import CalibrationError, calibrate_from_config
    from ..train.config import DataSource

    parts = args.data.split(":")
    if len(parts) not in (2, 3):
        print("error: --data must be FORMAT:ROOT or FORMAT:ROOT:SPLIT", file=sys.stderr)
        return 2
    src = DataSource(format=parts[0], root=parts[1], split=parts[2] if len(parts) == 3 else None)
    cal = CalibrationConfig(target_depth=args.target_depth or 0.0, target_latency_ms=args.target_latency_ms or 0.0,
                            data=src, max_sequences=args.max_sequences,
                            exit_agreement=-1.0 if args.exit_agreement is None else args.exit_agreement,
                            choose_agreement=args.choose_agreement,
                            max_iou_drop=-1.0 if args.max_iou_drop is None else args.max_iou_drop)
    try:
        options = RuntimeOptions().replace(device=args.device, threads=args.threads)
        path, result = calibrate_from_config(args.model, cal, out=args.out, options=options, return_result=True)
    except (CalibrationError, DatasetError, ModelFileError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.agreement_table:
        _print_sweep(result.agreement_table, "agreement", "agree", "thresholds 0")
    _print_sweep(result.table, "tau", "tau", f"agreement {result.exit_agreement:g}")
    print(json.dumps({k: v for k, v in result.to_dict().items() if k not in ("table", "agreement_table")}, indent=1))
    print(f"written: {path}")
    return 0


def _print_sweep(rows: list[dict], key: str, label: str, note: str) -> None:
    """Every 5th row of a calibration sweep (0.05 steps of ``key``)."""
    print(f"{label:>5} {'depth':>6} {'ms':>7} {'mIoU':>6}  exit fractions ({note})")
    for r in rows[::5]:
        print(f"{r[key]:5.2f} {r['depth']:6.2f} {r['latency_ms']:7.2f} {r['mean_iou']:6.3f}  "
              + " ".join(f"{f:.2f}" for f in r["exit_fractions"]))
