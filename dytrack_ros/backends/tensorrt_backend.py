"""TensorRT backend: one engine per exit stage, chained on the GPU with device buffers.

Input: our per-stage ONNX export (``model.onnx`` + ``model.stageK.onnx``) or a
manifest ``model.<precision>.trt`` written by ``dytrack export --format tensorrt``
(it names the ONNX files, the precision and the build options). Engines are
built from the ONNX graphs into an :class:`~dytrack_ros.backends.engine_cache.EngineCache`
(``model.engines/`` next to the ONNX file) keyed by graph hash, TensorRT version,
GPU name, compute capability, precision and build flags; a key mismatch
rebuilds (``rebuild="auto"``, with a log line, at load time: at the node's
configure, never per image) or refuses (``rebuild="never"``). How an FP16
engine is built depends on the TensorRT version
(:func:`~dytrack_ros.backends.trt_plan.build_strategy`): 10.x with the FP16
flag and FP32 constraints on LayerNorm, softmax and the decisioner; 11.x
strongly typed from the exporter's FP16 graph (``model.fp16.onnx``, norms in
FP32).

Execution: buffers are torch CUDA tensors allocated once from
:func:`~dytrack_ros.backends.trt_plan.plan_bindings`; stage k's ``tokens_out``
buffer is stage k+1's ``tokens`` input, so engines chain without a host round
trip. Each executed stage enqueues ``execute_async_v3`` on one CUDA stream and
reads back the 4-byte ``pred_iou`` through pinned memory (the exit decision);
the maps of the exit that answers are copied out once.

The TensorRT calls follow the TensorRT 10/11 Python API (``Builder``,
``OnnxParser``, ``IBuilderConfig``, ``Runtime.deserialize_cuda_engine``,
``IExecutionContext.set_tensor_address`` / ``execute_async_v3``). This code path
has not run in this repository's development environment (no GPU/TensorRT
there); everything around it (cache, build strategy, binding plan, FP16 graph)
is unit-tested, and ``benchmarks/gpu_check.sh`` exercises it on a GPU machine.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import ModelConfig
from ..runtime_options import RuntimeOptions
from .base import Backend, BackendError, BackendOutput
from .engine_cache import EngineCache, EngineKey, StaleEngineError, default_cache_dir, file_sha256
from .trt_plan import PlanError, build_strategy, plan_bindings, read_export

log = logging.getLogger("dytrack_ros.tensorrt")

MANIFEST_SUFFIX = ".trt"
MANIFEST_FORMAT = "dytrack_ros.trt/1"
INSTALL_HINT = ("install TensorRT's Python bindings: on Jetson they come with JetPack (python3-libnvinfer, "
                "JetPack 6 = TensorRT 10.x, JetPack 7 = 11.x); on x86 'pip install tensorrt' (NVIDIA's wheels, "
                "matching your CUDA); the tensorrt backend also needs a CUDA build of torch for its device buffers")


def import_tensorrt():
    """The ``tensorrt`` module, or a :class:`BackendError` that says what to install."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendError(f"the tensorrt backend needs the 'tensorrt' Python package, which cannot be imported "
                           f"({exc}); {INSTALL_HINT}") from exc
    if not hasattr(trt, "Builder"):  # the PyPI placeholder package installs a module without the bindings
        raise BackendError(f"'tensorrt' imports but has no Builder (a placeholder package?); {INSTALL_HINT}")
    return trt


@dataclass(frozen=True)
class TrtBuildOptions:
    """How engines are built and reused; the precision comes from :class:`RuntimeOptions`."""

    rebuild: str = "auto"  # "auto": build missing/mismatching engines; "never": refuse
    version_compatible: bool = False  # engines that embed host code and run on later TensorRT (opt-in)
    workspace_mib: int = 4096
    cache_dir: str | None = None  # default: <model>.engines/ next to the ONNX file


@dataclass
class Manifest:
    """``model.<precision>.trt``: what ``dytrack export --format tensorrt`` built."""

    onnx: str  # first stage ONNX file, relative to the manifest
    precision: str
    build: TrtBuildOptions
    engines: list[str]  # engine files built (relative to the manifest), for information
    format: str = MANIFEST_FORMAT

    def write(self, path: Path) -> None:
        d = asdict(self)
        path.write_text(json.dumps(d, indent=1))

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        try:
            d = json.loads(Path(path).read_text())
            if d.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {d.get('format')!r}, expected {MANIFEST_FORMAT!r}")
            return cls(d["onnx"], d["precision"], TrtBuildOptions(**d["build"]), list(d["engines"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{Path(path).name} is not a dytrack_ros TensorRT manifest: {exc}") from exc


def manifest_path(onnx_path: str | Path, precision: str) -> Path:
    p = Path(onnx_path)
    stem = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.stem
    for tag in (".fp16", ".fp32"):
        if stem.endswith(tag):
            stem = stem[: -len(tag)]
    return p.with_name(f"{stem}.{precision}{MANIFEST_SUFFIX}")


def fp16_onnx_path(onnx_path: str | Path) -> Path:
    """``model.onnx`` -> ``model.fp16.onnx``: the exporter's FP16 graph that strongly typed builds parse."""
    p = Path(onnx_path)
    return p if p.name.endswith(".fp16.onnx") else p.with_name(p.name[: -len(".onnx")] + ".fp16.onnx")


def gpu_identity(device_index: int) -> tuple[str, tuple[int, int]]:
    import torch

    props = torch.cuda.get_device_properties(device_index)
    return props.name, (props.major, props.minor)


def build_engine(trt, onnx_path: Path, strategy, workspace_mib: int, timing_cache: bytes) -> tuple[bytes, bytes]:
    """Parse ``onnx_path`` and build a serialized engine; returns (engine bytes, timing cache bytes)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    strongly = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strategy.strongly_typed and strongly is not None:  # 11.x accepts and ignores it (always strongly typed)
        flags |= 1 << int(strongly)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    for name in strategy.builder_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:  # a flag this TensorRT does not have cannot be honoured: refuse rather than build otherwise
            raise BackendError(f"TensorRT {trt.__version__} has no BuilderFlag.{name}, needed for this build")
        config.set_flag(flag)
    for name in strategy.cleared_flags:
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is not None:  # a flag that does not exist is off
            config.clear_flag(flag)
    if strategy.fp32_layer_types or strategy.fp32_node_patterns:
        kinds = {getattr(trt.LayerType, t) for t in strategy.fp32_layer_types}
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if layer.type in kinds or any(p in layer.name for p in strategy.fp32_node_patterns):
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    if layer.get_output(j).dtype in (trt.float32, trt.float16):
                        layer.set_output_type(j, trt.float32)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError(f"TensorRT failed to build an engine from {onnx_path.name} (see the TensorRT log above)")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


class TensorRTBackend(Backend):
    """Per-stage TensorRT engines chained on one CUDA stream."""

    name = "tensorrt"

    def __init__(self, model_path: str | Path, options: RuntimeOptions | None = None,
                 build: TrtBuildOptions | None = None, model_name: str | None = None) -> None:
        options = options or RuntimeOptions()
        path = Path(model_path)
        if path.name.endswith(MANIFEST_SUFFIX):
            manifest = Manifest.read(path)
            if options.precision != manifest.precision and options.precision != "fp32":
                raise BackendError(f"{path.name} holds {manifest.precision} engines, not {options.precision}")
            options = options.replace(precision=manifest.precision)
            build = build or manifest.build
            path = path.with_name(manifest.onnx) if not Path(manifest.onnx).is_absolute() else Path(manifest.onnx)
        build = build or TrtBuildOptions()
        trt = import_tensorrt()
        import torch

        device = options.device if options.device != "cpu" else "cuda"
        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise BackendError(f"the tensorrt backend runs on a CUDA device (got {options.device!r}; "
                               f"torch.cuda.is_available() = {torch.cuda.is_available()}); {INSTALL_HINT}")
        options = options.replace(device=device)
        try:
            strategy = build_strategy(trt.__version__, options.precision, build.version_compatible)
            if strategy.onnx_precision == "fp16":
                path = fp16_onnx_path(path)
                if not path.is_file():
                    raise BackendError(f"TensorRT {trt.__version__} builds FP16 strongly typed from an FP16 graph: "
                                       f"{path.name} is missing; write it with 'dytrack export MODEL --format "
                                       "tensorrt --precision fp16' (or --format onnx --precision fp16)")
            meta, stage_paths = read_export(path)
            plan = plan_bindings(path)
        except PlanError as exc:
            raise BackendError(str(exc)) from exc
        if plan.precision != strategy.onnx_precision:
            raise BackendError(f"{path.name} is a {plan.precision} export; this build needs a "
                               f"{strategy.onnx_precision} one")
        cfg = ModelConfig.from_dict(json.loads(plan.model_config_json))
        super().__init__(cfg, options, model_name or meta.get("model_name") or path.stem)
        self.torch_device = torch.device(device)
        self.plan = plan
        self.build_options = build
        self.trt_version = trt.__version__
        gpu, cc = gpu_identity(self.torch_device.index or 0)
        cache = EngineCache(build.cache_dir or default_cache_dir(path))
        flags = strategy.flag_names(build.version_compatible, build.workspace_mib)
        self.engine_paths: list[Path] = []
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if build.version_compatible:
            self._runtime.engine_host_code_allowed = True  # the user opted in to engines that embed host code
        self._engines, self._contexts = [], []
        with torch.cuda.device(self.torch_device):
            for stage in plan.stages:
                key = EngineKey(file_sha256(stage.onnx_path), trt.__version__, gpu, cc, options.precision, flags)
                stage_name = stage.onnx_path.name[: -len(".onnx")]
                try:
                    decision = cache.decide(stage_name, key, build.rebuild)
                except StaleEngineError as exc:
                    raise BackendError(str(exc)) from exc
                if decision.action == "build":
                    log.warning("building TensorRT %s engine for %s (%s); this takes minutes once, then it is cached "
                                "in %s", options.precision, stage.onnx_path.name, decision.reason, cache.root)
                    t0 = time.perf_counter()
                    data, timing = build_engine(trt, stage.onnx_path, strategy, build.workspace_mib,
                                                cache.load_timing_cache(key))
                    cache.store(decision.engine_path, key, data)
                    cache.save_timing_cache(key, timing)
                    log.warning("built %s in %.0f s", decision.engine_path.name, time.perf_counter() - t0)
                engine = self._runtime.deserialize_cuda_engine(decision.engine_path.read_bytes())
                if engine is None:
                    raise BackendError(f"TensorRT could not deserialize {decision.engine_path}")
                self._engines.append(engine)
                self._contexts.append(engine.create_execution_context())
                self.engine_paths.append(decision.engine_path)
            self._allocate(torch)
        self._has_template = False
        self._next_stage = 0

    def _allocate(self, torch) -> None:
        dtypes = {"float32": torch.float32, "float16": torch.float16}
        self._buf = {name: torch.zeros(spec.shape, dtype=dtypes[spec.dtype], device=self.torch_device)
                     for name, spec in self.plan.buffers.items()}
        for stage, engine, ctx in zip(self.plan.stages, self._engines, self._contexts):
            for spec in stage.inputs + stage.outputs:
                buf = self._buf[stage.buffer_of[spec.name]]
                shape = tuple(engine.get_tensor_shape(spec.name))
                if shape != spec.shape:
                    raise BackendError(f"engine tensor {spec.name} has shape {shape}, the ONNX graph {spec.shape}")
                ctx.set_tensor_address(spec.name, buf.data_ptr())
        self._stream = torch.cuda.Stream(self.torch_device)
        self._pred_host = torch.zeros((1,), dtype=torch.float32, pin_memory=True)
        s_shape = self.plan.buffers["search"].shape
        self._search_host = torch.zeros(s_shape, dtype=torch.float32, pin_memory=True)
        self._torch = torch

    # Backend API -----------------------------------------------------------------------------
    def _upload(self, name: str, arr: np.ndarray, host=None) -> None:
        torch = self._torch
        buf = self._buf[name]
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.shape != tuple(buf.shape):
            raise BackendError(f"{name} must have shape {tuple(buf.shape)}, got {arr.shape}")
        src = torch.from_numpy(arr)
        with torch.cuda.stream(self._stream):
            if host is not None:
                host.copy_(src)
                src = host
            buf.copy_(src, non_blocking=host is not None)

    def set_template(self, template: np.ndarray) -> None:
        self._upload("template", template)
        self._stream.synchronize()
        self._has_template = True

    def start_frame(self, search: np.ndarray) -> None:
        if not self._has_template:
            raise BackendError("set_template() must be called before inference")
        self._upload("search", search, self._search_host)
        self._preds: dict[int, float | None] = {}
        self._next_stage = 0

    def run_stage(self, k: int) -> float | None:
        if k != self._next_stage:
            raise BackendError(f"stages run in order after start_frame(): expected stage {self._next_stage}, got {k}")
        if not self._contexts[k].execute_async_v3(self._stream.cuda_stream):
            raise BackendError(f"TensorRT failed to enqueue stage {k}")
        self._next_stage = k + 1
        pred = self._buf.get(f"stage{k}.pred_iou")
        if pred is None:
            self._stream.synchronize()
            self._preds[k] = None
            return None
        with self._torch.cuda.stream(self._stream):
            self._pred_host.copy_(pred.reshape(-1)[:1].float(), non_blocking=True)
        self._stream.synchronize()
        self._preds[k] = float(self._pred_host[0])
        return self._preds[k]

    def stage_output(self, k: int) -> BackendOutput:
        if not 0 <= k < self._next_stage:
            raise BackendError(f"stage {k} has not run for this frame")
        with self._torch.cuda.stream(self._stream):
            maps = [self._buf[f"stage{k}.{n}"].float().cpu().numpy() for n in ("score_map", "size_map", "offset_map")]
        layer = self.config.exit_layers[k] if self.config.has_exits else self.config.depth
        return BackendOutput(*maps, exit_index=k, exit_layer=layer, pred_iou=self._preds[k])

    def info(self) -> dict[str, str]:
        d = super().info()
        d["tensorrt"] = self.trt_version
        d["engines"] = ",".join(p.name for p in self.engine_paths)
        return d


def build_engines(onnx_path: str | Path, options: RuntimeOptions, build: TrtBuildOptions) -> Path:
    """Build (or reuse) every stage engine for ``onnx_path`` and write the manifest; returns its path."""
    backend = TensorRTBackend(onnx_path, options, build)
    mpath = manifest_path(onnx_path, options.precision)
    rel = [str(Path(p).relative_to(mpath.parent)) if Path(p).is_relative_to(mpath.parent) else str(p)
           for p in backend.engine_paths]
    Manifest(Path(onnx_path).name, options.precision, build, rel).write(mpath)
    return mpath


__all__ = ["INSTALL_HINT", "MANIFEST_SUFFIX", "Manifest", "TensorRTBackend", "TrtBuildOptions", "build_engine",
           "build_engines", "fp16_onnx_path", "import_tensorrt", "manifest_path"]
