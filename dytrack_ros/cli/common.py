"""Options and helpers shared by several subcommands (model selection, box parsing)."""
from __future__ import annotations

import argparse

from ..backends import available_backends
from ..config import ConfigError, TrackerConfig
from ..exit_policy import THRESHOLD_CONVENTION
from ..paths import default_model_path
from ..runtime_options import AUTO_BACKEND, PRECISIONS, RuntimeOptions
from ..tracker.budget import BudgetConfig


def parse_box(text: str) -> tuple[float, float, float, float]:
    """'x,y,w,h' -> floats (argparse type)."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (4 comma-separated numbers), got '{text}'")
    try:
        return tuple(float(p) for p in parts)  # type: ignore[return-value]
    except ValueError:
        raise argparse.ArgumentTypeError(f"box values must be numbers, got '{text}'") from None


def parse_floats(text: str) -> list[float]:
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def add_model_options(p: argparse.ArgumentParser, model_help: str = "",
                      threads_help: str = "") -> argparse._ArgumentGroup:
    """--model/--backend/--device/--precision/--threads/--exit-thresholds/--ce, with the defaults of
    :class:`RuntimeOptions`; turn the parsed values into options with :func:`runtime_options_from_args`."""
    d = RuntimeOptions()
    g = p.add_argument_group("model")
    g.add_argument("--model", default=str(default_model_path()),
                   help=(model_help or "model file: .safetensors (ours), .onnx (our export), or an official "
                         ".pth/.pth.tar checkpoint (safe-loaded).") + " Default: the shipped %(default)s")
    g.add_argument("--backend", default=d.backend, choices=[AUTO_BACKEND] + available_backends(),
                   help="inference backend; 'auto' picks it from the model file suffix, and on a CPU runs a "
                        ".safetensors file through its matching ONNX export next to it, if any (default: %(default)s)")
    g.add_argument("--device", default=d.device, help="device, e.g. cpu, cuda, cuda:1 (default: %(default)s)")
    g.add_argument("--precision", default=d.precision, choices=PRECISIONS,
                   help="compute precision (default: %(default)s)")
    g.add_argument("--threads", type=int, default=None,
                   help=threads_help or f"CPU threads for inference (default: {d.threads} = the runtime's default, "
                                        "one per core)")
    g.add_argument("--exit-thresholds", type=parse_floats, default=None, metavar="T[,T,...]",
                   help=f"DyTrack exit thresholds on the predicted IoU: {THRESHOLD_CONVENTION}; "
                        "default: the ones stored in the model")
    g.add_argument("--ce", action=argparse.BooleanOptionalAction, default=None,
                   help="whether an official OSTrack checkpoint given to --model uses candidate elimination; "
                        "default: detected from what the checkpoint records (converted .safetensors files "
                        "record it)")
    return g


def runtime_options_from_args(args: argparse.Namespace) -> RuntimeOptions:
    """The :class:`RuntimeOptions` the model options of a command describe (``--threads`` unset keeps 0)."""
    if args.threads is not None and args.threads < 0:
        raise ConfigError(f"--threads must be >= 0, got {args.threads}")
    return RuntimeOptions().replace(backend=args.backend, device=args.device, precision=args.precision,
                                    threads=args.threads)


def add_budget_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--latency-budget-ms/--target-depth/--deadline/--threshold-floor (DyTrack models), defaults of BudgetConfig."""
    d = BudgetConfig()
    g = p.add_argument_group("latency budget (DyTrack models)")
    g.add_argument("--latency-budget-ms", type=float, default=d.latency_budget_ms, metavar="B",
                   help="hold the p95 of the tracker's time per frame at B ms by adapting the exit thresholds online "
                        "(0 = off, default)")
    g.add_argument("--target-depth", type=float, default=d.target_depth, metavar="D",
                   help="hold the mean executed depth at D layers or less (0 = off, default)")
    g.add_argument("--deadline", action="store_true", default=d.deadline,
                   help="with --latency-budget-ms: before each further stage, answer with the current exit if the "
                        "time spent plus the next stage's predicted cost would exceed the budget")
    g.add_argument("--threshold-floor", type=float, default=d.min_threshold, metavar="T",
                   help="accuracy floor: the controller never relaxes an exit threshold below T "
                        f"(default: {d.min_threshold})")
    return g


def budget_config_from_args(args: argparse.Namespace) -> BudgetConfig | None:
    """The :class:`BudgetConfig` the budget options describe, or None when no goal is set."""
    cfg = BudgetConfig(latency_budget_ms=args.latency_budget_ms, target_depth=args.target_depth,
                       deadline=args.deadline, min_threshold=args.threshold_floor)
    return cfg if cfg.active else None



def add_recovery_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--recovery/--no-recovery and the main knobs of lost-target recovery, and the box size update options;
    unset knobs keep the TrackerConfig (or --tracker-config file) values."""
    d = TrackerConfig()
    g = p.add_argument_group("lost-target recovery (DyTrack/OSTrack models)")
    g.add_argument("--recovery", action=argparse.BooleanOptionalAction, default=None,
                   help=f"hold, enlarge the search region, re-detect over the frame and re-acquire a lost target "
                        f"(default: {'on' if d.recovery else 'off'})")
    g.add_argument("--redetect-windows", type=int, default=None, metavar="N",
                   help=f"re-detection windows per frame, the per-frame compute budget (default: {d.redetect_windows})")
    g.add_argument("--redetect-after", type=int, default=None, metavar="F", dest="redetect_after_frames",
                   help=f"lost frames before global re-detection starts (default: {d.redetect_after_frames})")
    g.add_argument("--reacquire-threshold", type=float, default=None, metavar="T",
                   help=f"confidence a re-detected box needs on each agreeing frame (default: {d.reacquire_threshold})")
    g.add_argument("--reacquire-frames", type=int, default=None, metavar="K",
                   help=f"agreeing frames that re-acquire the target (default: {d.reacquire_frames})")
    s = p.add_argument_group("box size update (DyTrack/OSTrack models)")
    s.add_argument("--max-scale-change", type=float, default=None, metavar="R",
                   help=f"largest per-frame ratio of new to old box width and height; 0: no bound "
                        f"(default: {d.max_scale_change:g})")
    s.add_argument("--size-lr", type=float, default=None, metavar="LR",
                   help=f"box size smoothing: new = old + LR * (predicted - old); 1: no smoothing "
                        f"(default: {d.size_lr:g})")
    s.add_argument("--size-lr-by-score", action=argparse.BooleanOptionalAction, default=None,
                   help="multiply --size-lr by the frame's confidence "
                        f"(default: {'on' if d.size_lr_by_score else 'off'})")
    s.add_argument("--early-exit-size-lr", type=float, default=None, metavar="LR",
                   help="DyTrack answers from an exit before the last change the box size with --size-lr times LR; "
                        f"0: they move the box only (default: {d.early_exit_size_lr:g})")
    s.add_argument("--exit-agreement", type=float, default=None, metavar="IOU",
                   help="DyTrack early exits also need IoU >= IOU between the exit's box and the previous frame's "
                        "box (0: off; -1: the model file's calibrated value) "
                        f"(default: {d.exit_agreement:g})")
    return g


_RECOVERY_ARGS = ("recovery", "redetect_windows", "redetect_after_frames", "reacquire_threshold", "reacquire_frames",
                  "max_scale_change", "size_lr", "size_lr_by_score", "early_exit_size_lr", "exit_agreement")


def tracker_config_from_args(args: argparse.Namespace, base: TrackerConfig | None = None) -> TrackerConfig:
    """``base`` (default TrackerConfig()) with the recovery and box size options given on the command line
    applied."""
    changes = {k: getattr(args, k) for k in _RECOVERY_ARGS if getattr(args, k, None) is not None}
    return (base or TrackerConfig()).replace(**changes)
