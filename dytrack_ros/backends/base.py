"""Inference backend interface: preprocessed tensors in, head maps + exit info out.

A backend owns the network (torch module, ONNX sessions, TensorRT engines) and
runs it **stage by stage**: stage k = the transformer blocks up to exit k, then
exit k's head and decisioner. Concrete backends implement only the staged
primitives (``set_template``, ``start_frame``, ``run_stage``, ``stage_output``);
everything built on them lives here once, for every backend:

- :meth:`Backend.infer` applies the exit rule of the backend's
  :class:`~dytrack_ros.exit_policy.ExitPolicy` (stop at the first exit whose
  predicted IoU reaches its threshold; deeper stages never run), and an
  optional stage gate (a deadline: may the next stage still run?);
- :meth:`Backend.infer_to_exit` forces exit k (benchmarks);
- :meth:`Backend.infer_all` evaluates every exit (calibration traces);
- :meth:`Backend.infer_batch` answers exit k for several search images at once
  (lost-target re-detection windows); here a loop over :meth:`infer_to_exit`,
  overridden where the runtime has a real batch axis (torch);
- :meth:`Backend.warmup`.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..config import ModelConfig
from ..exit_policy import ExitPolicy
from ..runtime_options import PRECISIONS, RuntimeOptions


class BackendError(RuntimeError):
    """A backend cannot be created or run (missing runtime, bad model file, bad option)."""


@dataclass
class BackendOutput:
    """Head maps of one exit, as float32 numpy arrays with batch 1."""

    score_map: np.ndarray  # (1, 1, F, F)
    size_map: np.ndarray  # (1, 2, F, F)
    offset_map: np.ndarray  # (1, 2, F, F)
    exit_index: int  # 0-based exit (0 for plain models)
    exit_layer: int  # 1-based transformer layer after which this exit sits
    pred_iou: float | None = None  # decisioner output at this exit (None without exits)
    stage_ms: list[float] = field(default_factory=list)  # wall ms of each executed stage, 0..exit_index
    cut_by_deadline: bool = False  # answered early because the stage gate refused the next stage
    stage_pred_iou: list[float | None] = field(default_factory=list)  # decisioner output of each executed stage


class Backend(ABC):
    """Common behaviour: config, options, the exit policy, and the stage loop."""

    name: str = "base"

    def __init__(self, config: ModelConfig, options: RuntimeOptions | None = None,
                 model_name: str | None = None) -> None:
        self.options = options or RuntimeOptions()
        if self.options.precision not in PRECISIONS:
            raise BackendError(f"precision must be one of {PRECISIONS}, got {self.options.precision!r}")
        self.config = config
        self.model_name = model_name or config.name
        self.model_info: dict = {}  # the model file's info (training, calibration sweep), where the loader has it
        self._policy = ExitPolicy.for_model(config.exit_layers, config.default_thresholds)

    # options --------------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return self.options.device

    @property
    def precision(self) -> str:
        return self.options.precision

    # exit policy ----------------------------------------------------------------------------
    @property
    def exit_policy(self) -> ExitPolicy:
        return self._policy

    @exit_policy.setter
    def exit_policy(self, policy: ExitPolicy) -> None:
        if tuple(policy.exit_layers) != tuple(self.config.exit_layers):
            raise BackendError(f"exit policy for exits {policy.exit_layers} does not fit the model's exits "
                               f"{self.config.exit_layers}")
        self._policy = policy  # one attribute swap: a frame in flight keeps the policy it started with

    @property
    def exit_layers(self) -> tuple[int, ...]:
        return tuple(self.config.exit_layers)

    @property
    def exit_thresholds(self) -> tuple[float, ...]:
        return self._policy.thresholds

    def set_exit_thresholds(self, thresholds: Iterable[float] | float | str) -> None:
        """Validate and apply thresholds (see :data:`~dytrack_ros.exit_policy.THRESHOLD_CONVENTION`)."""
        self._policy = self._policy.with_thresholds(thresholds)

    @property
    def num_stages(self) -> int:
        return self._policy.num_stages

    def info(self) -> dict[str, str]:
        return {"backend": self.name, "device": self.device, "precision": self.precision, "model": self.model_name}

    # staged primitives: implemented by every backend ----------------------------------------------
    @abstractmethod
    def set_template(self, template: np.ndarray) -> None:
        """Template image (1, 3, Ht, Wt) float32, normalised."""

    @abstractmethod
    def start_frame(self, search: np.ndarray) -> None:
        """Load the search image (1, 3, Hs, Ws) float32, normalised; the next stage to run is stage 0."""

    @abstractmethod
    def run_stage(self, k: int) -> float | None:
        """Run stage ``k`` (stages run in order 0, 1, ...) and return exit k's predicted IoU (None: no exits)."""

    @abstractmethod
    def stage_output(self, k: int) -> BackendOutput:
        """Maps of exit ``k`` as host float32 arrays; valid after ``run_stage(k)`` for the current frame."""

    # built on the primitives: one implementation for every backend -----------------------------
    def infer(self, search: np.ndarray, policy: ExitPolicy | None = None,
              gate: Callable[[int], bool] | None = None,
              accept: Callable[[int, BackendOutput], bool] | None = None) -> BackendOutput:
        """Maps of the exit that answers under ``policy`` (default: the backend's own).

        ``gate(k)`` is asked before every stage k >= 1; when it says no, the exit of stage k-1 answers
        even if its predicted IoU is below its threshold (``cut_by_deadline``). Stage 0 always runs.
        ``accept(k, out)`` is asked when an early exit passes its threshold; when it says no, the next stage
        runs (the tracker's agreement check of the exit's box against the previous frame's).
        """
        policy = policy or self._policy
        self.start_frame(search)
        stage_ms: list[float] = []
        preds: list[float | None] = []
        for k in range(self.num_stages):
            if k and gate is not None and not gate(k):
                out = self.stage_output(k - 1)
                out.stage_ms, out.stage_pred_iou, out.cut_by_deadline = stage_ms, preds, True
                return out
            t0 = time.perf_counter()
            pred = self.run_stage(k)
            stage_ms.append((time.perf_counter() - t0) * 1e3)
            preds.append(pred)
            if policy.should_exit(k, pred):
                out = self.stage_output(k)
                if accept is not None and not policy.is_last(k) and not accept(k, out):
                    continue
                out.stage_ms, out.stage_pred_iou = stage_ms, preds
                return out
        raise AssertionError("unreachable: the last stage always answers")

    def infer_to_exit(self, search: np.ndarray, k: int) -> BackendOutput:
        """Run stages 0..k and answer with exit k whatever its predicted IoU (forced exit)."""
        if not 0 <= k < self.num_stages:
            raise BackendError(f"exit index must be in [0, {self.num_stages - 1}], got {k}")
        self.start_frame(search)
        stage_ms = []
        for j in range(k + 1):
            t0 = time.perf_counter()
            self.run_stage(j)
            stage_ms.append((time.perf_counter() - t0) * 1e3)
        out = self.stage_output(k)
        out.stage_ms = stage_ms
        return out

    def infer_batch(self, searches: np.ndarray, exit_index: int = 0) -> list[BackendOutput]:
        """Exit ``exit_index`` for each of ``searches`` (B, 3, Hs, Ws) against the current template.

        Re-detection asks this for its search windows: it needs each window's score and box, not the
        exit rule, and stopping all windows at one fixed exit keeps the cost of a frame known in advance.
        This loop is the fallback for runtimes with a fixed batch of 1 (the ONNX export, TensorRT
        engines); one output per window, in order, each with batch 1 and ``stage_ms`` of its own.
        """
        searches = np.asarray(searches, dtype=np.float32)
        if searches.ndim != 4 or searches.shape[1] != 3:
            raise BackendError(f"searches must have shape (B, 3, H, W), got {searches.shape}")
        if not 0 <= exit_index < self.num_stages:
            raise BackendError(f"exit index must be in [0, {self.num_stages - 1}], got {exit_index}")
        return [self.infer_to_exit(searches[i:i + 1], exit_index) for i in range(searches.shape[0])]

    def infer_all(self, search: np.ndarray) -> list[BackendOutput]:
        """Every exit's maps for one frame (all stages run; exit k does not depend on later stages)."""
        self.start_frame(search)
        outs = []
        for k in range(self.num_stages):
            t0 = time.perf_counter()
            pred = self.run_stage(k)
            dt = (time.perf_counter() - t0) * 1e3
            out = self.stage_output(k)
            out.stage_ms = (outs[-1].stage_ms if outs else []) + [dt]
            out.stage_pred_iou = (outs[-1].stage_pred_iou if outs else []) + [pred]
            outs.append(out)
        return outs

    def warmup(self, iterations: int = 2) -> None:
        """Run every stage on zero inputs so first-frame latency excludes lazy initialisation.

        It replaces the template: call it before the real ``set_template``.
        """
        cfg = self.config
        template = np.zeros((1, 3, cfg.template_size, cfg.template_size), np.float32)
        search = np.zeros((1, 3, cfg.search_size, cfg.search_size), np.float32)
        self.set_template(template)
        for _ in range(max(0, int(iterations))):
            self.infer_all(search)
