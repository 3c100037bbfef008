"""Options and helpers shared by several subcommands (model selection, box parsing)."""
from __future__ import annotations

import argparse

from ..backends import PRECISIONS, available_backends
from ..paths import default_model_path


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


def add_model_options(p: argparse.ArgumentParser, model_help: str = "", thresholds_help: str = "",
                      threads_help: str = "") -> argparse._ArgumentGroup:
    """--model/--backend/--device/--precision/--exit-thresholds/--ce/--threads (help texts overridable)."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default=str(default_model_path()),
                   help=(model_help or "model file: .safetensors (ours), .onnx (our export), or an official "
                         ".pth/.pth.tar checkpoint (safe-loaded).") + " Default: the shipped %(default)s")
    g.add_argument("--backend", default="auto", choices=["auto"] + available_backends(),
                   help="inference backend; 'auto' picks it from the model file suffix (default: %(default)s)")
    g.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: %(default)s)")
    g.add_argument("--precision", default="fp32", choices=PRECISIONS, help="compute precision (default: %(default)s)")
    g.add_argument("--exit-thresholds", type=parse_floats, default=None, metavar="T1,T2,...",
                   help=thresholds_help or "DyTrack exit thresholds on the predicted IoU, one per exit in [0,1] "
                                           "(lower = earlier exits = faster); default: the ones stored in the model")
    g.add_argument("--ce", action="store_true",
                   help="the official OSTrack checkpoint given to --model uses candidate elimination "
                        "(not detectable from its weights; converted .safetensors files record it)")
    g.add_argument("--threads", type=int, default=None,
                   help=threads_help or "torch/ORT CPU threads (default: library default)")
    return g


def apply_threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)
