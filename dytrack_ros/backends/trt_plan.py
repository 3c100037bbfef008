"""What the TensorRT backend builds and binds, worked out from our ONNX export alone (no TensorRT import).

Two plain-logic pieces the backend is made of, unit-tested without a GPU:

- :func:`build_strategy`: how to build an engine of a given precision with a
  given TensorRT major version. TensorRT 10 builds FP16 with weak typing: an fp32
  graph, ``BuilderFlag.FP16``, and precision constraints that keep LayerNorm,
  softmax and the decisioner in FP32 (``OBEY_PRECISION_CONSTRAINTS``). TensorRT
  11 removed weak typing (no FP16/INT8 builder flags): it builds *strongly
  typed* networks that run every tensor in the type the graph gives it, so FP16
  needs an FP16 graph: our exporter's fp16 variant, with the norms and the
  decisioner in FP32. TF32 is disabled for fp32 engines so they match torch fp32.
- :func:`plan_bindings`: the stage graphs' inputs and outputs (names, shapes,
  dtypes) and the device buffers that bind them; stage k's ``tokens_out`` and
  stage k+1's ``tokens`` are one buffer, so chaining engines copies nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .onnx_format import FORMAT, stage_io_names

TRT_PRECISIONS = ("fp32", "fp16")
# name fragments of ONNX nodes that must stay FP32 in a weakly typed (TensorRT 10) FP16 engine
FP32_NODE_PATTERNS = ("decisioners.",)
# TensorRT layer types kept in FP32 under weak typing (names of trt.LayerType members)
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX")


class PlanError(ValueError):
    """The ONNX export cannot be built or bound as planned."""


@dataclass(frozen=True)
class BuildStrategy:
    onnx_precision: str  # which export to parse: "fp32" or "fp16" (norms/decisioner fp32)
    strongly_typed: bool  # NetworkDefinitionCreationFlag.STRONGLY_TYPED
    builder_flags: tuple[str, ...]  # BuilderFlag members to set
    cleared_flags: tuple[str, ...]  # BuilderFlag members to clear
    fp32_layer_types: tuple[str, ...] = ()  # LayerType members pinned to FP32 (weak typing only)
    fp32_node_patterns: tuple[str, ...] = ()  # layer-name fragments pinned to FP32 (weak typing only)

    def flag_names(self, version_compatible: bool, workspace_mib: int) -> tuple[str, ...]:
        """The build flags as they enter the engine cache key."""
        flags = [f"set:{f}" for f in self.builder_flags] + [f"clear:{f}" for f in self.cleared_flags]
        flags += [f"onnx:{self.onnx_precision}", f"workspace_mib={int(workspace_mib)}"]
        if self.strongly_typed:
            flags.append("strongly_typed")
        if version_compatible:
            flags.append("version_compatible")
        return tuple(sorted(flags))


def trt_major(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError as exc:
        raise PlanError(f"cannot read a TensorRT version from {version!r}") from exc


def build_strategy(tensorrt_version: str, precision: str, version_compatible: bool = False) -> BuildStrategy:
    """How to build a ``precision`` engine with this TensorRT (10.x or 11.x and later)."""
    major = trt_major(tensorrt_version)
    if precision not in TRT_PRECISIONS:
        raise PlanError(f"the tensorrt backend builds {' or '.join(TRT_PRECISIONS)} engines, not {precision!r} "
                        "(int8 needs calibration or Q/DQ graphs; use int8 on the CPU backends)")
    if major < 10:
        raise PlanError(f"TensorRT {tensorrt_version} is too old: 10.x or later is supported (JetPack 6 ships 10.x)")
    extra = ("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME") if version_compatible else ()
    if major >= 11:  # strongly typed only: the graph's own types decide
        return BuildStrategy(precision, True, extra, ("TF32",) if precision == "fp32" else ())
    if precision == "fp16":
        return BuildStrategy("fp32", False, ("FP16", "OBEY_PRECISION_CONSTRAINTS") + extra, (),
                             FP32_LAYER_TYPES, FP32_NODE_PATTERNS)
    return BuildStrategy("fp32", False, extra, ("TF32",))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass
class StagePlan:
    index: int
    onnx_path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    # tensor name -> buffer name (the device buffer bound to it)
    buffer_of: dict[str, str] = field(default_factory=dict)


@dataclass
class BindingPlan:
    model_config_json: str
    precision: str  # precision recorded in the export
    stages: list[StagePlan]
    buffers: dict[str, TensorSpec]  # buffer name -> shape/dtype, allocated once on the device

    @property
    def device_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers.values())


_ONNX_TO_NUMPY = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 9: "bool"}


def _specs(values) -> list[TensorSpec]:
    specs = []
    for v in values:
        t = v.type.tensor_type
        dims = []
        for d in t.shape.dim:
            if not d.HasField("dim_value"):
                raise PlanError(f"tensor {v.name} has a dynamic dimension ({d.dim_param or '?'}); "
                                "our exports are static")
            dims.append(int(d.dim_value))
        if t.elem_type not in _ONNX_TO_NUMPY:
            raise PlanError(f"tensor {v.name} has unsupported ONNX element type {t.elem_type}")
        specs.append(TensorSpec(v.name, tuple(dims), _ONNX_TO_NUMPY[t.elem_type]))
    return specs


def read_export(first_onnx: str | Path) -> tuple[dict[str, str], list[Path]]:
    """(metadata of the first stage file, paths of all stage files) of one of our ONNX exports."""
    import onnx

    first = Path(first_onnx)
    if not first.is_file():
        raise PlanError(f"ONNX file not found: {first}")
    meta = {p.key: p.value for p in onnx.load(str(first), load_external_data=False).metadata_props}
    if meta.get("format") != FORMAT:
        raise PlanError(f"{first.name} is not a dytrack_ros ONNX export (format={meta.get('format')!r}); "
                        "create one with 'dytrack export MODEL --format onnx'")
    names = json.loads(meta.get("stage_files", "[]"))
    paths = [first] + [first.with_name(n) for n in names]
    for p in paths[1:]:
        if not p.is_file():
            raise PlanError(f"{first.name} needs its stage file {p.name} next to it")
    return meta, paths


def plan_bindings(first_onnx: str | Path) -> BindingPlan:
    """Inputs/outputs of every stage graph and the device buffers binding them, checked against the format."""
    import onnx

    meta, paths = read_export(first_onnx)
    cfg = json.loads(meta["model_config"])
    has_exits = bool(cfg.get("exit_layers"))
    n = len(paths)
    stages: list[StagePlan] = []
    buffers: dict[str, TensorSpec] = {}
    for k, path in enumerate(paths):
        proto = onnx.load(str(path), load_external_data=False)
        smeta = {p.key: p.value for p in proto.metadata_props}
        if k and (smeta.get("export_id") != meta.get("export_id") or smeta.get("stage_index") != str(k)):
            raise PlanError(f"{path.name} does not belong to {paths[0].name}; re-export the model")
        init = {i.name for i in proto.graph.initializer}
        ins = _specs([v for v in proto.graph.input if v.name not in init])
        outs = _specs(proto.graph.output)
        want_in, want_out = stage_io_names(has_exits, k, n)
        if [s.name for s in ins] != want_in or [s.name for s in outs] != want_out:
            raise PlanError(f"stage {k} graph has inputs {[s.name for s in ins]} / outputs {[s.name for s in outs]}, "
                            f"expected {want_in} / {want_out}")
        plan = StagePlan(k, path, ins, outs)
        for s in ins:
            if s.name == "tokens":
                prev = buffers[f"tokens{k - 1}"]
                if (prev.shape, prev.dtype) != (s.shape, s.dtype):
                    raise PlanError(f"stage {k - 1} tokens_out {prev.shape} {prev.dtype} does not fit stage {k} "
                                    f"tokens {s.shape} {s.dtype}")
                plan.buffer_of[s.name] = f"tokens{k - 1}"
            else:
                buffers[s.name] = s
                plan.buffer_of[s.name] = s.name
        for s in outs:
            buf = f"tokens{k}" if s.name == "tokens_out" else f"stage{k}.{s.name}"
            buffers[buf] = s
            plan.buffer_of[s.name] = buf
        stages.append(plan)
    return BindingPlan(meta["model_config"], meta.get("precision", "fp32"), stages, buffers)


__all__ = ["BindingPlan", "BuildStrategy", "FP32_LAYER_TYPES", "FP32_NODE_PATTERNS", "PlanError", "StagePlan",
           "TRT_PRECISIONS", "TensorSpec", "build_strategy", "plan_bindings", "read_export", "trt_major"]
