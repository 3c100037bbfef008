"""The on-disk contract of our ONNX export, shared by the exporter and the runtime.

Kept free of torch and onnxruntime imports so either side can use it alone.
See :mod:`dytrack_ros.backends.onnx_export` for the full description.
"""
from __future__ import annotations

from pathlib import Path

FORMAT = "dytrack_ros.onnx/1"
DEFAULT_OPSET = 17
OUTPUT_MAPS = ("score_map", "size_map", "offset_map")


def stage_file_names(out_path: str | Path, num_stages: int) -> list[Path]:
    """[model.onnx, model.stage1.onnx, ...] for ``out_path`` = model.onnx."""
    out_path = Path(out_path)
    if out_path.suffix != ".onnx":
        raise ValueError(f"ONNX output must end in .onnx, got {out_path.name}")
    stem = out_path.name[: -len(".onnx")]
    return [out_path] + [out_path.with_name(f"{stem}.stage{k}.onnx") for k in range(1, num_stages)]


def stage_io_names(has_exits: bool, k: int, num_stages: int) -> tuple[list[str], list[str]]:
    """(input names, output names) of stage ``k``'s graph."""
    inputs = ["template", "search"] if k == 0 else ["tokens"]
    if not has_exits:
        return inputs, list(OUTPUT_MAPS)
    outputs = [] if k == num_stages - 1 else ["tokens_out"]
    return inputs, outputs + list(OUTPUT_MAPS) + ["pred_iou"]
