"""``dytrack export``: write a model as ONNX (one graph per exit stage) or build TensorRT engines from it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("onnx", "tensorrt")
# onnx: fp32 graphs, the fp16 graph strongly typed TensorRT builds from, or int8 (dynamic int8 MatMuls, CPU)
ONNX_PRECISIONS = ("fp32", "fp16", "int8")
TRT_PRECISIONS = ("fp32", "fp16")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export", help="export a model to ONNX (one graph per exit stage) or TensorRT engines",
        description="Export MODEL (our .safetensors model file, or an official OSTrack/CompressTracker checkpoint) "
                    "to ONNX. Early-exit models become one graph per stage (model.onnx, model.stage1.onnx, ...), "
                    "chained by the onnxruntime and tensorrt backends. Every export is checked against torch "
                    "(max |diff| <= 1e-4 for fp32) and refused if it does not match. --format tensorrt also builds "
                    "one TensorRT engine per stage on this machine's GPU into MODEL.engines/ (cached by graph hash, "
                    "TensorRT version, GPU, precision and build flags) and writes the manifest "
                    "MODEL.<precision>.trt that the tensorrt backend and the node load.")
    p.add_argument("model", type=Path, help="model file (.safetensors) or official checkpoint (.pth/.pth.tar)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="export format (default: onnx)")
    p.add_argument("--precision", choices=ONNX_PRECISIONS, default="fp32",
                   help="onnx: fp32 (default), fp16 (norms and decisioner fp32; what TensorRT 11 builds from) or "
                        "int8 (dynamic int8 MatMuls for CPUs); tensorrt: fp32 or fp16")
    p.add_argument("--out", type=Path, default=None,
                   help="output ONNX file (default: MODEL with the .onnx suffix, next to MODEL; "
                        ".fp16.onnx / .int8.onnx for those precisions)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument("--check", action="store_true",
                   help="print the max |ONNX Runtime - torch| of every output of every stage on random inputs")
    p.add_argument("--simplify", action="store_true", help="simplify the graphs with onnxsim (must be installed)")
    trt = p.add_argument_group("tensorrt")
    trt.add_argument("--device", default="cuda:0", help="GPU to build for (default: cuda:0)")
    trt.add_argument("--rebuild", choices=("auto", "never"), default="auto",
                     help="auto: build engines that are missing or do not match (default); never: fail instead")
    trt.add_argument("--version-compatible", action="store_true",
                     help="engines that also run on later TensorRT versions (they embed host code: opt in only "
                          "for engines you built yourself)")
    trt.add_argument("--workspace-mib", type=int, default=4096, help="builder workspace in MiB (default: 4096)")
    trt.add_argument("--cache-dir", type=Path, default=None, help="engine cache directory (default: MODEL.engines/)")
    p.set_defaults(func=run)
    return p


def _default_out(model: Path, precision: str = "fp32") -> Path:
    name = model.name
    tag = "" if precision == "fp32" else f".{precision}"
    for suffix in (".safetensors", ".pth.tar", ".pth", ".tar", ".pt"):
        if name.endswith(suffix):
            return model.with_name(name[: -len(suffix)] + tag + ".onnx")
    return model.with_name(name + tag + ".onnx")


def _print_files(paths) -> None:
    for p in paths:
        print(f"  wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")


def run(args: argparse.Namespace) -> int:
    from ..backends import BackendError, load_torch_model
    from ..backends.engine_cache import file_sha256
    from ..backends.onnx_export import OnnxExportError, export_onnx, parity_report

    if args.format == "tensorrt" and args.precision not in TRT_PRECISIONS:
        print(f"dytrack export: error: --format tensorrt builds {' or '.join(TRT_PRECISIONS)} engines "
              f"(int8 is for the CPU backends)", file=sys.stderr)
        return 2
    graph_precision = "fp16" if args.precision == "fp16" and args.format == "onnx" else "fp32"
    out = args.out or _default_out(args.model, graph_precision)
    try:
        if args.format == "tensorrt":  # fail before the export when TensorRT is missing
            from ..backends.tensorrt_backend import import_tensorrt

            import_tensorrt()
        try:
            net, name = load_torch_model(args.model)
        except ImportError as exc:
            raise BackendError(f"cannot read {args.model.name}: {exc}") from exc
        net.eval()
        stages = ("1 graph" if net.num_stages == 1
                  else f"{net.num_stages} stage graphs (exits after layers {list(net.cfg.exit_layers)})")
        print(f"exporting {args.model} ({net.cfg.name}) to {out}: {stages}, {graph_precision}, opset {args.opset}")
        paths = export_onnx(net, out, opset=args.opset, simplify=args.simplify, model_name=name,
                            precision=graph_precision, source_sha256=file_sha256(args.model))
        _print_files(paths)
        if args.check:
            print("parity on random inputs, max |onnxruntime - torch|:")
            for k, diffs in enumerate(parity_report(net, paths[0])):
                print(f"  stage {k}: " + "  ".join(f"{n}={d:.2e}" for n, d in diffs.items()))
        if args.format == "onnx" and args.precision == "int8":
            from ..backends.onnx_int8 import quantize_export

            int8_out = _default_out(args.model, "int8") if args.out is None else out.with_name(
                out.name[: -len(".onnx")] + ".int8.onnx")
            print(f"quantising to int8 (dynamic int8 MatMuls of the transformer blocks): {int8_out}")
            _print_files(quantize_export(paths[0], int8_out))
        if args.format == "tensorrt":
            _build_trt(args, net, name, paths[0])
    except (BackendError, OnnxExportError, ValueError, OSError) as exc:
        print(f"dytrack export: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _build_trt(args: argparse.Namespace, net, name: str, onnx_path: Path) -> None:
    """Engines for every stage (and the fp16 graph strongly typed TensorRT needs), then the manifest."""
    from ..backends.onnx_export import export_onnx
    from ..backends.tensorrt_backend import TrtBuildOptions, build_engines, fp16_onnx_path, import_tensorrt
    from ..backends.trt_plan import build_strategy
    from ..runtime_options import RuntimeOptions

    trt = import_tensorrt()
    strategy = build_strategy(trt.__version__, args.precision, args.version_compatible)
    if strategy.onnx_precision == "fp16":
        print(f"TensorRT {trt.__version__} builds FP16 strongly typed: exporting the fp16 graph")
        _print_files(export_onnx(net, fp16_onnx_path(onnx_path), opset=args.opset, model_name=name, precision="fp16"))
    build = TrtBuildOptions(args.rebuild, args.version_compatible, args.workspace_mib,
                            str(args.cache_dir) if args.cache_dir else None)
    print(f"building TensorRT {trt.__version__} {args.precision} engines on {args.device} (minutes; cached)")
    manifest = build_engines(onnx_path, RuntimeOptions(backend="tensorrt", device=args.device,
                                                       precision=args.precision), build)
    print(f"  wrote {manifest}: load it with --model {manifest} (the tensorrt backend)")
