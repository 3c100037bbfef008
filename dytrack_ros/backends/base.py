"""Inference backend interface: preprocessed tensors in, head maps + exit info out.

A backend owns the network (torch module, ONNX sessions, TensorRT engines) and
the early-exit loop; the tracker around it only crops, decodes and keeps state.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..config import ModelConfig

PRECISIONS = ("fp32", "fp16", "bf16")


class BackendError(RuntimeError):
    """A backend cannot be created or run (missing runtime, bad model file, bad option)."""


@dataclass
class BackendOutput:
    """Head maps of the exit that answered, as float32 numpy arrays with batch 1."""

    score_map: np.ndarray  # (1, 1, F, F)
    size_map: np.ndarray  # (1, 2, F, F)
    offset_map: np.ndarray  # (1, 2, F, F)
    exit_index: int  # 0-based exit that answered (0 for plain models)
    exit_layer: int  # 1-based transformer layer where inference stopped
    pred_iou: float | None = None  # decisioner output at that exit (None without exits)
    stage_ms: list[float] = field(default_factory=list)  # per executed stage, when measured


class Backend(ABC):
    """Common behaviour: config, exit thresholds, description."""

    name: str = "base"

    def __init__(self, config: ModelConfig, device: str, precision: str, model_name: str | None = None) -> None:
        if precision not in PRECISIONS:
            raise BackendError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.config = config
        self.device = device
        self.precision = precision
        self.model_name = model_name or config.name
        self._thresholds: list[float] = list(config.default_thresholds)

    # exit thresholds --------------------------------------------------------
    @property
    def exit_layers(self) -> tuple[int, ...]:
        return tuple(self.config.exit_layers)

    @property
    def exit_thresholds(self) -> tuple[float, ...]:
        return tuple(self._thresholds)

    def set_exit_thresholds(self, thresholds: Sequence[float]) -> None:
        values = [float(t) for t in thresholds]
        if len(values) != len(self.config.exit_layers):
            raise ValueError(f"model has {len(self.config.exit_layers)} exits {self.exit_layers}; got {len(values)} thresholds")
        if any(not (0.0 <= t <= 1.0) for t in values):
            raise ValueError(f"exit thresholds must lie in [0, 1], got {values}")
        self._thresholds = values

    def info(self) -> dict[str, str]:
        return {"backend": self.name, "device": self.device, "precision": self.precision, "model": self.model_name}

    # to implement -------------------------------------------------------------
    @abstractmethod
    def set_template(self, template: np.ndarray) -> None:
        """Template image (1, 3, Ht, Wt) float32, normalised."""

    @abstractmethod
    def infer(self, search: np.ndarray) -> BackendOutput:
        """Search image (1, 3, Hs, Ws) float32, normalised -> maps of the exit that answered."""
