"""dytrack train: run an OSTrack / DyTrack / CompressTracker training job from a YAML config.

Works unchanged under ``torchrun --nproc_per_node=N -m dytrack_ros.cli train ...``
(one process per GPU, DDP); plain ``dytrack train`` is one process.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a tracker (OSTrack / DyTrack / CompressTracker) from a YAML config",
        description="Train from CONFIG (see config/train/*.yaml). Overrides are dotted KEY=VALUE pairs, e.g. "
                    "optim.epochs=2 data.samples_per_epoch=256. Multi-GPU: torchrun --nproc_per_node=N "
                    "-m dytrack_ros.cli train CONFIG (same arguments).")
    p.add_argument("config", help="training YAML file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides (YAML values), directly after CONFIG")
    p.add_argument("--set", dest="more_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override usable anywhere on the line (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default: outputs/train/<config name>)")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CKPT",
                   help="continue from a checkpoint (default: OUT/checkpoints/latest.pt)")
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if available, else cpu), cpu, cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..config import ConfigError
    from ..train.config import load_train_config
    from ..train.trainer import TrainingError, train

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        overrides = [*args.overrides, *args.more_overrides]
        cfg = load_train_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("outputs") / "train" / Path(args.config).stem
    resume = None
    if args.resume:
        resume = out / "checkpoints" / "latest.pt" if args.resume == "latest" else Path(args.resume)
    command = "dytrack train " + " ".join(shlex.quote(a) for a in [args.config, *overrides])
    try:
        result = train(cfg, out, resume=resume, device=args.device, command=command, progress=not args.no_progress)
    except (TrainingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.model_path is not None:
        print(f"trained {result.step} steps; model: {result.model_path}")
        cal = cfg.calibration
        if cal.target_depth or cal.target_latency_ms or cal.max_iou_drop >= 0:
            from ..train.calibrate import calibrate_from_config

            dev = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            path = calibrate_from_config(result.model_path, cal, device=dev)
            print(f"calibrated: {path}")
    return 0
