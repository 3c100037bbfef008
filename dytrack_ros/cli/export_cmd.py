"""``dytrack export``: write a model as ONNX (one graph per exit stage) for ONNX Runtime / TensorRT."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("onnx",)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="export a model to ONNX (one graph per exit stage)",
        description="Export MODEL (our .safetensors model file, or an official OSTrack/CompressTracker checkpoint) "
                    "to ONNX. Early-exit models become one graph per stage (model.onnx, model.stage1.onnx, ...), "
                    "chained by the onnxruntime backend. Every export is checked against torch (max |diff| <= 1e-4) "
                    "and refused if it does not match.")
    p.add_argument("model", type=Path, help="model file (.safetensors) or official checkpoint (.pth/.pth.tar)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="export format (default: onnx)")
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default: MODEL with the .onnx suffix, next to MODEL)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--check", action="store_true",
                   help="print the max |ONNX Runtime - torch| of every output of every stage on random inputs")
    p.add_argument("--simplify", action="store_true", help="simplify the graphs with onnxsim (must be installed)")
    p.set_defaults(func=run)
    return p


def _default_out(model: Path) -> Path:
    name = model.name
    for suffix in (".safetensors", ".pth.tar", ".pth", ".tar", ".pt"):
        if name.endswith(suffix):
            return model.with_name(name[: -len(suffix)] + ".onnx")
    return model.with_name(name + ".onnx")


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError, load_torch_model
    from ..backends.onnx_export import OnnxExportError, export_onnx, parity_report

    out = args.out or _default_out(args.model)
    try:
        try:
            net, name = load_torch_model(args.model)
        except ImportError as exc:
            raise BackendError(f"cannot read {args.model.name}: {exc}") from exc
        net.eval()
        stages = "1 graph" if net.num_stages == 1 else f"{net.num_stages} stage graphs (exits after layers {list(net.cfg.exit_layers)})"
        print(f"exporting {args.model} ({net.cfg.name}) to {out}: {stages}, opset {args.opset}")
        paths = export_onnx(net, out, opset=args.opset, simplify=args.simplify, model_name=name)
        for p in paths:
            print(f"  wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
        if args.check:
            print("parity on random inputs, max |onnxruntime - torch|:")
            for k, diffs in enumerate(parity_report(net, paths[0])):
                print(f"  stage {k}: " + "  ".join(f"{n}={d:.2e}" for n, d in diffs.items()))
    except (BackendError, OnnxExportError, ValueError, OSError) as exc:
        print(f"dytrack export: error: {exc}", file=sys.stderr)
        return 1
    return 0
