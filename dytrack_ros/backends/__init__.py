"""Backend registry and the one loader that picks the backend from the model file.

``load_backend(model)`` accepts a path or an in-memory ``TrackerNet``:

=================  =============  ==========================================
suffix             backend        file
=================  =============  ==========================================
``.safetensors``   torch          our pickle-free model file
``.pth``/``.tar``  torch          official OSTrack / CompressTracker checkpoint
                                  (safe-loaded and converted in memory)
``.onnx``          onnxruntime    our ONNX export (one graph per exit stage)
``.trt``           tensorrt       manifest of per-stage TensorRT engines
                                  (``dytrack export --format tensorrt``); the
                                  tensorrt backend also takes an ``.onnx`` file
=================  =============  ==========================================
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..config import ConfigError

if TYPE_CHECKING:
    from ..model.tracker_net import TrackerNet
from ..runtime_options import AUTO_BACKEND, PRECISIONS, RuntimeOptions
from .base import Backend, BackendError, BackendOutput
from .cpu_export import matching_cpu_export

BackendFactory = Callable[..., Backend]
_FACTORIES: dict[str, BackendFactory] = {}
_SUFFIXES: dict[str, str] = {}


def register_backend(name: str, suffixes: tuple[str, ...] = ()) -> Callable[[BackendFactory], BackendFactory]:
    """Register ``factory(model_path_or_net, options: RuntimeOptions, ce) -> Backend`` under ``name``."""

    def deco(factory: BackendFactory) -> BackendFactory:
        _FACTORIES[name] = factory
        for s in suffixes:
            _SUFFIXES[s] = name
        return factory

    return deco


def _is_network(model: object) -> bool:
    """An in-memory network rather than a file path. Checked without importing torch, so the registry (and the
    launch file, which reads backend names from it) stays light; torch loads with the first torch model."""
    return not isinstance(model, (str, Path))


def available_backends() -> list[str]:
    return sorted(_FACTORIES)


def backend_for_path(path: str | Path) -> str:
    name = Path(path).name
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return _SUFFIXES[suffix]
    raise BackendError(f"cannot tell the backend from '{name}': known suffixes {sorted(_SUFFIXES)}")


def model_name_from_path(path: str | Path) -> str:
    """'OSTrack_ep0300.pth.tar' -> 'OSTrack_ep0300'."""
    name = Path(path).name
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def check_torch_device(device: str) -> None:
    """Raise :class:`BackendError` unless torch can use ``device`` here. Why before loading: without a GPU,
    ``cuda`` failed deep inside the weight reader ("pin_memory=True requires a CUDA ... backend")."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BackendError(f"device {device!r} is not a torch device name (cpu, cuda, cuda:N): {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(f"device {device!r}: torch finds no CUDA GPU on this machine; use device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")


def load_torch_model(path: str | Path, device: str = RuntimeOptions.device,
                     ce: bool | None = None) -> tuple[TrackerNet, str]:
    """TrackerNet from our model file or an official checkpoint; returns (net, model name).

    Candidate elimination cannot be read from official weights (CE and non-CE
    OSTrack have identical keys): ``ce=None`` detects it from what the
    checkpoint records, ``True``/``False`` force it; converted ``.safetensors``
    files record it in their config.
    """
    p = Path(path)
    if not p.exists():
        raise BackendError(f"model file not found: {p}")
    check_torch_device(device)
    if p.name.endswith(".safetensors"):
        from ..model_io.model_file import load_model_file

        net, _ = load_model_file(p, device=device)
        return net, model_name_from_path(p)
    from ..model_io.official import load_official_checkpoint

    net, _report = load_official_checkpoint(p, ce=ce)
    return net.to(device), model_name_from_path(p)


@register_backend("torch", suffixes=(".safetensors", ".pth", ".pth.tar", ".tar", ".pt"))
def _torch_factory(model: str | Path | TrackerNet, options: RuntimeOptions, ce: bool | None = None) -> Backend:
    from .torch_backend import TorchBackend

    if _is_network(model):
        return TorchBackend(model, options)
    net, name = load_torch_model(model, options.device, ce=ce)
    return TorchBackend(net, options, model_name=name)


@register_backend("onnxruntime", suffixes=(".onnx",))
def _onnx_factory(model: str | Path | TrackerNet, options: RuntimeOptions, ce: bool | None = None) -> Backend:
    try:
        from .onnx_backend import OnnxBackend
    except ImportError as exc:  # onnxruntime not installed
        raise BackendError(f"onnxruntime backend unavailable: {exc}") from exc
    if _is_network(model):
        raise BackendError("the onnxruntime backend needs an exported .onnx file (see 'dytrack export')")
    return OnnxBackend(model, options)


@register_backend("tensorrt", suffixes=(".trt",))
def _tensorrt_factory(model: str | Path | TrackerNet, options: RuntimeOptions, ce: bool | None = None) -> Backend:
    from .tensorrt_backend import TensorRTBackend, TrtBuildOptions

    if _is_network(model):
        raise BackendError("the tensorrt backend needs an exported .onnx file or a .trt manifest "
                           "(see 'dytrack export --format tensorrt')")
    import os

    # the rebuild policy for engines that do not match: DYTRACK_TRT_REBUILD=never refuses instead of building
    build = TrtBuildOptions(rebuild=os.environ.get("DYTRACK_TRT_REBUILD", "auto"))
    return TensorRTBackend(model, options, build=None if str(model).endswith(".trt") else build)


def _apply_threads(options: RuntimeOptions) -> None:
    """CPU threads, the one place they are set: torch's intra-op pool (process-wide, also used by pre- and
    post-processing tensors); backends with their own pools (onnxruntime sessions) read ``options.threads``."""
    if options.threads:
        import torch

        torch.set_num_threads(int(options.threads))


def load_backend(model: str | Path | TrackerNet, options: RuntimeOptions | None = None, *, ce: bool | None = None,
                 backend: str | None = None, device: str | None = None, precision: str | None = None,
                 threads: int | None = None) -> Backend:
    """Create the backend for ``model`` as ``options`` say; backend ``auto`` picks it from the file suffix.

    On device ``cpu`` (fp32 or int8), ``auto`` runs a ``.safetensors`` model file through ONNX Runtime when a
    matching export ``MODEL.onnx`` lies next to it (:func:`.cpu_export.matching_cpu_export`; about 1.6 times as
    fast at one thread); ``backend="torch"`` always runs it on torch.

    The keyword arguments ``backend``/``device``/``precision``/``threads`` override single fields of
    ``options`` (a convenience for scripts). ``ce`` only matters for official OSTrack checkpoints
    loaded directly (see :func:`load_torch_model`).
    """
    try:
        options = (options or RuntimeOptions()).replace(backend=backend, device=device, precision=precision,
                                                         threads=threads)
    except ConfigError as exc:
        raise BackendError(str(exc)) from exc
    name, source = options.backend, model
    if name == AUTO_BACKEND:
        name = "torch" if _is_network(model) else backend_for_path(model)
        if name == "torch" and not _is_network(model) and options.device == "cpu" \
                and options.precision in ("fp32", "int8"):
            export, _why = matching_cpu_export(model)
            if export is not None:
                name, source = "onnxruntime", export
    if name not in _FACTORIES:
        raise BackendError(f"unknown backend '{name}'; available: {available_backends()}")
    _apply_threads(options)
    backend = _FACTORIES[name](source, options, ce=ce)
    if not _is_network(model) and Path(model).name.endswith(".safetensors"):
        from ..model_io.model_file import read_metadata

        backend.model_info = read_metadata(model)[1]  # training and calibration info, whichever runtime runs it
    return backend


__all__ = ["Backend", "BackendError", "BackendOutput", "PRECISIONS", "RuntimeOptions", "available_backends",
           "backend_for_path", "load_backend", "load_torch_model", "model_name_from_path", "register_backend"]
