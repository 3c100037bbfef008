"""Backend registry and the one loader that picks the backend from the model file.

``load_backend(model)`` accepts a path or an in-memory ``TrackerNet``:

=================  =============  ==========================================
suffix             backend        file
=================  =============  ==========================================
``.safetensors``   torch          our pickle-free model file
``.pth``/``.tar``  torch          official OSTrack / CompressTracker checkpoint
                                  (safe-loaded and converted in memory)
``.onnx``          onnxruntime    our ONNX export (one graph per exit stage)
=================  =============  ==========================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..model.tracker_net import TrackerNet
from .base import PRECISIONS, Backend, BackendError, BackendOutput

BackendFactory = Callable[..., Backend]
_FACTORIES: dict[str, BackendFactory] = {}
_SUFFIXES: dict[str, str] = {}


def register_backend(name: str, suffixes: tuple[str, ...] = ()) -> Callable[[BackendFactory], BackendFactory]:
    """Register ``factory(model_path_or_net, device, precision) -> Backend`` under ``name``."""

    def deco(factory: BackendFactory) -> BackendFactory:
        _FACTORIES[name] = factory
        for s in suffixes:
            _SUFFIXES[s] = name
        return factory

    return deco


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


def load_torch_model(path: str | Path, device: str = "cpu", ce: bool = False) -> tuple[TrackerNet, str]:
    """TrackerNet from our model file or an official checkpoint; returns (net, model name).

    Candidate elimination cannot be read from official weights (CE and non-CE
    OSTrack have identical keys): pass ``ce=True`` for a CE checkpoint, or
    convert it once with ``dytrack convert --ce`` so the file records it.
    """
    p = Path(path)
    if not p.exists():
        raise BackendError(f"model file not found: {p}")
    if p.name.endswith(".safetensors"):
        from ..model_io.model_file import load_model_file

        net, _ = load_model_file(p, device=device)
        return net, model_name_from_path(p)
    from ..model_io.official import load_official_checkpoint

    net, _report = load_official_checkpoint(p, ce=ce)
    return net.to(device), model_name_from_path(p)


@register_backend("torch", suffixes=(".safetensors", ".pth", ".pth.tar", ".tar", ".pt"))
def _torch_factory(model: str | Path | TrackerNet, device: str = "cpu", precision: str = "fp32",
                   ce: bool = False, threads: int | None = None) -> Backend:
    import torch

    from .torch_backend import TorchBackend

    if threads:
        torch.set_num_threads(int(threads))  # intra-op threads are process-wide in torch

    if isinstance(model, TrackerNet):
        return TorchBackend(model, device, precision)
    net, name = load_torch_model(model, device, ce=ce)
    return TorchBackend(net, device, precision, model_name=name)


@register_backend("onnxruntime", suffixes=(".onnx",))
def _onnx_factory(model: str | Path | TrackerNet, device: str = "cpu", precision: str = "fp32",
                  threads: int | None = None, **_: object) -> Backend:
    try:
        from .onnx_backend import OnnxBackend
    except ImportError as exc:  # onnxruntime not installed
        raise BackendError(f"onnxruntime backend unavailable: {exc}") from exc
    if isinstance(model, TrackerNet):
        raise BackendError("the onnxruntime backend needs an exported .onnx file (see 'dytrack export')")
    return OnnxBackend(model, device, precision, intra_op_threads=threads or None)


def load_backend(model: str | Path | TrackerNet, backend: str = "auto", device: str = "cpu",
                 precision: str = "fp32", ce: bool = False, threads: int | None = None) -> Backend:
    """Create the backend for ``model``; ``backend='auto'`` picks it from the file suffix.

    ``ce`` only matters for official OSTrack checkpoints loaded directly (see load_torch_model).
    ``threads``: CPU threads for inference (None/0: the library default, one per core). On a small CPU
    shared with other processes (camera driver, recorder) fewer threads avoid OpenMP barrier stalls.
    """
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if backend == "auto":
        backend = "torch" if isinstance(model, TrackerNet) else backend_for_path(model)
    if backend not in _FACTORIES:
        raise BackendError(f"unknown backend '{backend}'; available: {available_backends()}")
    return _FACTORIES[backend](model, device=device, precision=precision, ce=ce, threads=threads)


__all__ = ["Backend", "BackendError", "BackendOutput", "PRECISIONS", "available_backends", "backend_for_path",
           "load_backend", "load_torch_model", "model_name_from_path", "register_backend"]
