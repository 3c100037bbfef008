"""ONNX Runtime backend: chains the per-stage graphs written by ``export_onnx``.

Each exit stage is one graph; the base class's stage loop takes the
early-exit decision between ``run`` calls with the backend's exit policy, so
deeper stages are never run.

Buffers are allocated once: every stage is bound (IO binding) to fixed
output buffers, and stage k's ``tokens_out`` buffer *is* stage k+1's
``tokens`` input, so chaining copies nothing. Only the maps of the exit that
answered are copied out.

Devices: ``cpu`` (CPUExecutionProvider), ``cuda[:N]`` (CUDAExecutionProvider),
``tensorrt[:N]`` (TensorrtExecutionProvider, CUDA for what TensorRT cannot
run; engines cached next to the model). Precision: the file's own (fp32);
``fp16`` only on ``tensorrt`` (TensorRT builds fp16 kernels from the fp32
graph); ``int8`` only on ``cpu``: an fp32 export is quantised at load time
(dynamic int8 MatMuls, :mod:`~dytrack_ros.backends.onnx_int8`) into a temporary
directory, or an int8 export is loaded as it is; ``bf16`` is not offered.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..config import ConfigError, ModelConfig
from ..runtime_options import RuntimeOptions
from .base import Backend, BackendError, BackendOutput
from .onnx_format import FORMAT, StageFilesError, parse_stage_files, stage_io_names

_EP = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def _parse_device(device: str) -> tuple[str, int]:
    kind, _, index = str(device).partition(":")
    if kind not in _EP or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise BackendError(f"onnxruntime device must be 'cpu', 'cuda[:N]' or 'tensorrt[:N]', got {device!r}")
    return kind, int(index or 0)


def _providers(kind: str, device_id: int, precision: str, model_path: Path) -> list:
    available = ort.get_available_providers()
    wanted = _EP[kind]
    if wanted not in available:
        raise BackendError(f"device {kind!r} needs onnxruntime's {wanted}, which this onnxruntime build lacks "
                           f"(available: {available}); install onnxruntime-gpu or use device='cpu'")
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    cuda = ("CUDAExecutionProvider", {"device_id": device_id})
    if kind == "cuda":
        return [cuda]
    cache = model_path.with_name(model_path.name + ".trt_cache")
    trt_opts = {"device_id": device_id, "trt_fp16_enable": precision == "fp16",
                "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}
    return [("TensorrtExecutionProvider", trt_opts)] + ([cuda] if "CUDAExecutionProvider" in available else [])


class OnnxBackend(Backend):
    """One InferenceSession per exit stage, chained with IO binding."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, options: RuntimeOptions | None = None, model_name: str | None = None) -> None:
        options = options or RuntimeOptions()
        device, precision = options.device, options.precision
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"ONNX model file not found: {path}")
        kind, device_id = _parse_device(device)
        if precision == "bf16" or (precision == "fp16" and kind != "tensorrt"):
            raise BackendError(f"precision {precision!r} is not available on onnxruntime device {device!r}: the "
                               "exported graphs are fp32; use precision='fp32', device='tensorrt' for fp16, "
                               "or the torch backend for fp16/bf16")
        if precision == "int8" and kind != "cpu":
            raise BackendError(f"precision 'int8' is CPU-only on onnxruntime (dynamic int8 MatMuls), got device "
                               f"{device!r}; use fp16 on 'tensorrt', or the tensorrt backend")
        self._int8_dir: tempfile.TemporaryDirectory | None = None
        if precision == "int8":
            path = self._int8_files(path)
        self._ort_device = "cpu" if kind == "cpu" else "cuda"
        self._device_id = device_id
        providers = _providers(kind, device_id, precision, path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if options.threads:
            opts.intra_op_num_threads = int(options.threads)

        first = self._open(path, opts, providers)
        meta = first.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise BackendError(f"{path.name} is not a dytrack_ros ONNX export (format={meta.get('format')!r}); "
                               "create one with 'dytrack export MODEL --format onnx'")
        try:
            cfg = ModelConfig.from_dict(json.loads(meta["model_config"]))
            file_precision = meta.get("precision", "fp32")
        except (KeyError, json.JSONDecodeError, ConfigError, TypeError) as exc:
            raise BackendError(f"{path.name}: invalid dytrack_ros ONNX metadata: {exc}") from exc
        try:
            stage_files = parse_stage_files(meta.get("stage_files", "[]"), path.name)
        except StageFilesError as exc:
            raise BackendError(str(exc)) from None
        super().__init__(cfg, options, model_name or meta.get("model_name") or path.stem)
        if file_precision == "fp16":
            raise BackendError(f"{path.name} is the fp16 export that strongly typed TensorRT builds from (precision "
                               "fp16); run its fp32 export with onnxruntime, or this file with the tensorrt backend")
        if file_precision not in ("fp32", "int8"):
            raise BackendError(f"{path.name}: unsupported exported precision {file_precision!r}")
        if file_precision == "int8" and precision != "int8":
            raise BackendError(f"{path.name} is an int8 export: load it with precision='int8'")
        self.path = path
        self.providers = first.get_providers()

        self.sessions = [first]
        for k, name in enumerate(stage_files, start=1):
            stage_path = path.with_name(name)
            if not stage_path.is_file():
                raise BackendError(f"{path.name} needs its stage file {name} next to it (not found: {stage_path})")
            sess = self._open(stage_path, opts, providers)
            smeta = sess.get_modelmeta().custom_metadata_map
            if smeta.get("export_id") != meta.get("export_id") or smeta.get("stage_index") != str(k):
                raise BackendError(f"{name} does not belong to {path.name} (stage {smeta.get('stage_index')} of export "
                                   f"{smeta.get('export_id')}, expected stage {k} of {meta.get('export_id')}); "
                                   "re-export the model")
            self.sessions.append(sess)
        expected_stages = len(cfg.exit_layers) if cfg.has_exits else 1
        if len(self.sessions) != expected_stages:
            raise BackendError(f"{path.name}: {len(self.sessions)} stage graph(s) "
                               f"but the model has {expected_stages} stage(s)")
        self._check_io()
        self._bind_buffers()
        if self._int8_dir is not None:  # the sessions hold the quantised graphs in memory
            self._int8_dir.cleanup()
            self._int8_dir = None
        self._has_template = False
        self._next_stage = 0  # stage to run next for the current frame

    # construction helpers ------------------------------------------------------
    def _int8_files(self, path: Path) -> Path:
        """``path`` itself if it is an int8 export, else its int8 quantisation in a temporary directory."""
        import onnx

        from .onnx_int8 import quantize_stage_file

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and others for a bad file
            raise BackendError(f"cannot read {path.name}: {exc}") from exc
        meta = {p.key: p.value for p in proto.metadata_props}
        del proto
        if meta.get("precision") == "int8" or meta.get("format") != FORMAT:
            return path  # int8 already, or not ours: the checks below say so
        self._int8_dir = tempfile.TemporaryDirectory(prefix="dytrack_int8_")
        out_dir = Path(self._int8_dir.name)
        try:
            names = [path.name] + parse_stage_files(meta.get("stage_files", "[]"), path.name)
        except StageFilesError as exc:
            raise BackendError(str(exc)) from None
        for name in names:
            src = path.with_name(name)
            if not src.is_file():
                raise BackendError(f"{path.name} needs its stage file {name} next to it (not found: {src})")
            quantize_stage_file(src, out_dir / name)
        return out_dir / path.name

    def _open(self, path: Path, opts: ort.SessionOptions, providers: list) -> ort.InferenceSession:
        try:
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
            raise BackendError(f"onnxruntime cannot load {path.name}: {exc}") from exc
        wanted = providers[0] if isinstance(providers[0], str) else providers[0][0]
        if wanted not in sess.get_providers():
            raise BackendError(f"onnxruntime fell back from {wanted} to {sess.get_providers()} for {path.name} "
                               "(missing CUDA/TensorRT libraries?)")
        return sess

    def _check_io(self) -> None:
        n = len(self.sessions)
        cfg = self.config
        self._output_names: list[list[str]] = []
        for k, sess in enumerate(self.sessions):
            want_in, want_out = stage_io_names(cfg.has_exits, k, n)
            got_in = [i.name for i in sess.get_inputs()]
            got_out = [o.name for o in sess.get_outputs()]
            if got_in != want_in or got_out != want_out:
                raise BackendError(f"stage {k} graph has inputs {got_in} / outputs {got_out}, "
                                   f"expected {want_in} / {want_out}")
            self._output_names.append(got_out)
        shapes = {i.name: tuple(i.shape) for i in self.sessions[0].get_inputs()}
        self.template_shape = (1, 3, cfg.template_size, cfg.template_size)
        self.search_shape = (1, 3, cfg.search_size, cfg.search_size)
        if shapes["template"] != self.template_shape or shapes["search"] != self.search_shape:
            raise BackendError(f"graph input shapes {shapes} do not match the model config "
                               f"(template {self.template_shape}, search {self.search_shape})")

    def _ortvalue(self, shape: tuple[int, ...]) -> tuple[ort.OrtValue, np.ndarray | None]:
        """A float32 buffer for binding; on the CPU it is a numpy array shared with the OrtValue."""
        if self._ort_device == "cpu":
            arr = np.zeros(shape, dtype=np.float32)
            return ort.OrtValue.ortvalue_from_numpy(arr), arr
        return ort.OrtValue.ortvalue_from_shape_and_type(list(shape), np.float32, "cuda", self._device_id), None

    def _bind_buffers(self) -> None:
        """Fixed buffers: inputs, tokens (shared between neighbouring stages), host-side maps."""
        self._template_ov, _ = self._ortvalue(self.template_shape)
        self._search_ov, _ = self._ortvalue(self.search_shape)
        self._bindings: list[ort.IOBinding] = []
        self._maps: list[dict[str, np.ndarray]] = []
        self._keep_alive: list[ort.OrtValue] = []
        self._tokens: list[ort.OrtValue] = []  # tokens_out of stage k (= tokens input of stage k+1)
        tokens_in: ort.OrtValue | None = None
        for k, sess in enumerate(self.sessions):
            binding = sess.io_binding()
            if k == 0:
                binding.bind_ortvalue_input("template", self._template_ov)
                binding.bind_ortvalue_input("search", self._search_ov)
            else:
                binding.bind_ortvalue_input("tokens", tokens_in)
            host: dict[str, np.ndarray] = {}
            for o in sess.get_outputs():
                shape = tuple(int(d) for d in o.shape)
                if o.name == "tokens_out":  # stays on the device, feeds the next stage
                    tokens_in, _ = self._ortvalue(shape)
                    self._tokens.append(tokens_in)
                    binding.bind_ortvalue_output(o.name, tokens_in)
                else:  # small maps land directly in host memory
                    arr = np.zeros(shape, dtype=np.float32)
                    host[o.name] = arr
                    ov = ort.OrtValue.ortvalue_from_numpy(arr)
                    self._keep_alive.append(ov)
                    binding.bind_ortvalue_output(o.name, ov)
            self._bindings.append(binding)
            self._maps.append(host)

    # Backend API ---------------------------------------------------------------------
    def _check_input(self, arr: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if arr.shape != shape:
            raise BackendError(f"{what} must have shape {shape}, got {arr.shape}")
        return arr

    def set_template(self, template: np.ndarray) -> None:
        self._template_ov.update_inplace(self._check_input(template, self.template_shape, "template"))
        self._has_template = True

    def start_frame(self, search: np.ndarray) -> None:
        if not self._has_template:
            raise BackendError("set_template() must be called before inference")
        self._search_ov.update_inplace(self._check_input(search, self.search_shape, "search"))
        self._next_stage = 0

    def run_stage(self, k: int) -> float | None:
        if k != self._next_stage:
            raise BackendError(f"stages run in order after start_frame(): expected stage {self._next_stage}, got {k}")
        self.sessions[k].run_with_iobinding(self._bindings[k])
        self._next_stage = k + 1
        maps = self._maps[k]
        return float(maps["pred_iou"].reshape(-1)[0]) if "pred_iou" in maps else None

    def stage_output(self, k: int) -> BackendOutput:
        if not 0 <= k < self._next_stage:
            raise BackendError(f"stage {k} has not run for this frame")
        maps = self._maps[k]
        pred = float(maps["pred_iou"].reshape(-1)[0]) if "pred_iou" in maps else None
        layer = self.config.exit_layers[k] if self.config.has_exits else self.config.depth
        return BackendOutput(maps["score_map"].copy(), maps["size_map"].copy(), maps["offset_map"].copy(),
                             exit_index=k, exit_layer=layer, pred_iou=pred)

    def run_stages(self, search: np.ndarray, upto: int | None = None) -> list[dict[str, np.ndarray]]:
        """Every output of stages 0..``upto`` (default: all), no early exit; for parity checks and benchmarks."""
        self.start_frame(search)
        upto = len(self.sessions) - 1 if upto is None else upto
        results = []
        for k in range(upto + 1):
            self.run_stage(k)
            d = {name: arr.copy() for name, arr in self._maps[k].items()}
            if k < len(self._tokens):
                d["tokens_out"] = self._tokens[k].numpy()  # a copy (host) of the bound buffer
            results.append({name: d[name] for name in self._output_names[k]})
        return results

    def info(self) -> dict[str, str]:
        d = super().info()
        d["providers"] = ",".join(self.providers)
        return d


__all__ = ["OnnxBackend"]
