"""Dynamic int8 quantisation of our per-stage ONNX graphs (ONNX Runtime's ``quantize_dynamic``).

The same scheme as the torch backend's int8: the weight matrices of the
transformer blocks' linear layers (MatMul nodes with a constant weight input)
become int8 once, per output channel; activations are quantised per call, so no
calibration data is needed. Attention's activation-by-activation MatMuls, the
patch-embedding convolution, heads and decisioners stay fp32. ONNX Runtime runs
the quantised MatMuls as ``DynamicQuantizeMatMul`` (VNNI/AVX2 int8 kernels).
"""
from __future__ import annotations

import logging
from pathlib import Path

import onnx

# Only MatMuls whose second input is a weight this large are quantised: the decisioner's last
# layer (D x 1) and other tiny products gain nothing and lose precision.
MIN_WEIGHT_ELEMENTS = 4096


def _block_linear_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes inside transformer blocks whose weight is an initializer."""
    sizes = {init.name: int(max(1, _numel(init.dims))) for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) != 2:
            continue
        weight = node.input[1]
        if sizes.get(weight, 0) >= MIN_WEIGHT_ELEMENTS and "blocks." in (node.name + weight):
            names.append(node.name)
    return names


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def block_linear_matmuls(path: str | Path) -> list[str]:
    """The MatMul nodes of ``path`` that int8 quantisation converts (for reports and tests)."""
    return _block_linear_matmuls(onnx.load(str(path)))


def quantize_stage_file(src: str | Path, dst: str | Path, stage_files: list[str] | None = None) -> int:
    """Write the int8 version of one stage graph ``src`` to ``dst``; returns the number of quantised MatMuls.

    Metadata (format, export id, stage index, model config) is carried over, with ``precision`` = ``int8``
    on the first stage; ``stage_files`` replaces the first stage's list of sibling files (when renamed).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    nodes = _block_linear_matmuls(model)
    props = {p.key: p.value for p in model.metadata_props}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs advice about shape-inference pre-processing to root
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"], nodes_to_quantize=nodes,
                         extra_options={"MatMulConstBOnly": True})
    finally:
        root.setLevel(level)
    out = onnx.load(str(dst))
    del out.metadata_props[:]
    if "precision" in props:
        props["precision"] = "int8"
    if stage_files is not None and "stage_files" in props:
        import json

        props["stage_files"] = json.dumps(list(stage_files))
    for key, value in props.items():
        entry = out.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(out, str(dst))
    return len(nodes)


def quantize_export(first_onnx: str | Path, out_path: str | Path) -> list[Path]:
    """The int8 version of a whole fp32 export (every stage file), written as ``out_path`` and its stage files."""
    import json

    from .onnx_format import stage_file_names

    first = Path(first_onnx)
    meta = {p.key: p.value for p in onnx.load(str(first), load_external_data=False).metadata_props}
    src = [first] + [first.with_name(n) for n in json.loads(meta.get("stage_files", "[]"))]
    dst = stage_file_names(out_path, len(src))
    for k, (a, b) in enumerate(zip(src, dst)):
        quantize_stage_file(a, b, [p.name for p in dst[1:]] if k == 0 else None)
    return dst


__all__ = ["MIN_WEIGHT_ELEMENTS", "block_linear_matmuls", "quantize_export", "quantize_stage_file"]
