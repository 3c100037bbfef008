"""The on-disk contract of our ONNX export, shared by the exporter and the runtime.

Kept free of torch and onnxruntime imports so either side can use it alone.
See :mod:`dytrack_ros.backends.onnx_export` for the full description.
"""
from __future__ import annotations

import json
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


class StageFilesError(ValueError):
    """The ``stage_files`` metadata of an export is not a list of file names next to the model."""


def parse_stage_files(text: str, model_name: str) -> list[str]:
    """The ``stage_files`` metadata (JSON) as plain file names in the model's folder.

    Why so strict: the loader opens each name next to the model, and the value comes from the file itself;
    ``5`` or ``[1, 2]`` made it fail with a TypeError and ``../x.onnx`` with pathlib's ``Invalid name``,
    neither saying which file or field was wrong, and a path could name a file outside the model folder.
    """
    where = f"{model_name}: metadata stage_files"
    try:
        names = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise StageFilesError(f"{where} is not JSON ({exc})") from None
    if not isinstance(names, list):
        raise StageFilesError(f"{where} must be a list of file names, got {type(names).__name__}")
    for name in names:
        if not isinstance(name, str):
            raise StageFilesError(f"{where} must list file names (strings), got {type(name).__name__} "
                                  f"{str(name)[:40]}")
        if (not name or name in (".", "..") or Path(name).name != name or "/" in name or "\\" in name
                or "\0" in name or not name.endswith(".onnx")):
            raise StageFilesError(f"{where}: {name[:80]!r} is not an .onnx file name in the model's own folder")
    return names
