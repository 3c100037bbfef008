"""PyTorch backend: CPU or CUDA, fp32 / fp16 / bf16 / int8, run stage by stage.

- fp16/bf16: half precision with LayerNorms and decisioners in fp32
  (:func:`~dytrack_ros.backends.precision.half_with_fp32_norms`); bf16 on a CPU
  without native bf16 warns (it is emulated and slower than fp32).
- int8 (CPU): dynamic int8 quantisation of the transformer's linear layers
  (:func:`~dytrack_ros.backends.precision.quantize_linear_int8`).
- CUDA: static buffers, one CUDA graph per exit stage, pinned host memory and
  asynchronous uploads (:class:`~dytrack_ros.backends.static_stages.StaticStages`);
  the exit decision reads 4 bytes back per executed exit.

The model passed in is used as is for fp32 (moved to the device); for the other
precisions the backend works on its own copy, so the caller's model is unchanged.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from ..model.tracker_net import ExitOutput, TrackerNet
from ..runtime_options import RuntimeOptions
from .base import Backend, BackendError, BackendOutput
from .static_stages import StaticStages

# compute dtype per precision (int8 quantises the linear layers' weights; activations stay fp32)
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32}


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: TrackerNet, options: RuntimeOptions | None = None, model_name: str | None = None,
                 fuse_heads: bool = True, cuda_graphs: bool | None = None) -> None:
        """``cuda_graphs``: one CUDA graph per exit stage; default on for CUDA devices (not for CE models)."""
        super().__init__(model.cfg, options, model_name)
        try:
            self.torch_device = torch.device(self.device)
        except RuntimeError as exc:
            raise BackendError(f"invalid torch device {self.device!r}: {exc}") from exc
        on_cuda = self.torch_device.type == "cuda"
        if self.precision == "int8" and self.torch_device.type != "cpu":
            raise BackendError("precision int8 is CPU-only on the torch backend (dynamic int8 linear layers); "
                               "use fp16 on CUDA, or the tensorrt backend")
        if on_cuda and not torch.cuda.is_available():
            raise BackendError(f"device {self.device!r} requested but CUDA is not available in this torch build")
        if self.precision == "bf16":
            from .precision import warn_if_slow_bf16

            warn_if_slow_bf16(self.device)
        self.dtype = _DTYPES[self.precision]
        if self.precision != "fp32":
            model = copy.deepcopy(model)
        self.model = model.to(self.torch_device).eval()
        if fuse_heads:
            self.model.fuse_heads_for_inference(self.dtype)  # folds BN in fp32, then casts
        if self.precision in ("fp16", "bf16"):
            from .precision import half_with_fp32_norms

            half_with_fp32_norms(self.model, self.dtype)
        elif self.precision == "int8":
            from .precision import quantize_linear_int8

            try:
                quantize_linear_int8(self.model)
            except RuntimeError as exc:
                raise BackendError(f"precision int8 unavailable: {exc}") from exc
        ce = bool(model.cfg.ce_loc)
        if cuda_graphs is None:
            cuda_graphs = on_cuda and not ce
        if cuda_graphs and (not on_cuda or ce):
            raise BackendError("cuda_graphs needs a CUDA device and a model without candidate elimination")
        self.cuda_graphs = bool(cuda_graphs)
        # CE models prune data-dependently: they run eagerly through forward_ce
        self._stages = None if ce else StaticStages(self.model, self.torch_device, self.dtype, self.cuda_graphs)
        if self._stages is not None:
            self._stages.capture()  # at load time (a zero template), never inside a frame's processing
        self._template: torch.Tensor | None = None
        self._search: torch.Tensor | None = None
        self._outs: dict[int, ExitOutput] = {}
        self._preds: dict[int, float | None] = {}
        self._next_stage = 0

    def _to_tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(self.torch_device, self.dtype)

    def set_template(self, template: np.ndarray) -> None:
        self._template = self._to_tensor(template)
        if self._stages is not None:
            self._stages.set_template(self._template)  # copied into the captured buffer

    def start_frame(self, search: np.ndarray) -> None:
        if self._template is None:
            raise BackendError("set_template() must be called before inference")
        if self._stages is not None:
            arr = np.ascontiguousarray(search, dtype=np.float32)
            if arr.shape != tuple(self._stages.search.shape):
                raise BackendError(f"search must have shape {tuple(self._stages.search.shape)}, got {arr.shape}")
            self._stages.load_search(torch.from_numpy(arr))
        else:
            self._search = self._to_tensor(search)
        self._outs = {}
        self._preds: dict[int, float | None] = {}
        self._next_stage = 0

    @torch.inference_mode()
    def run_stage(self, k: int) -> float | None:
        if self._template is None or (self._stages is None and self._search is None):
            raise BackendError("start_frame() must be called before run_stage()")
        if k != self._next_stage:
            raise BackendError(f"stages run in order: expected stage {self._next_stage}, got {k}")
        self._next_stage = k + 1
        if self._stages is not None:
            self._preds[k] = self._stages.run(k)
            return self._preds[k]
        out = self.model.forward_ce(self._template, self._search)  # candidate elimination: one stage
        self._outs[k] = out
        return None

    @torch.inference_mode()
    def stage_output(self, k: int) -> BackendOutput:
        if not 0 <= k < self._next_stage:
            raise BackendError(f"stage {k} has not run for this frame")
        layer = self.model.stage_bounds[k][1]
        if self._stages is not None:
            maps = [m.numpy() for m in self._stages.maps(k)]
            return BackendOutput(*maps, exit_index=k, exit_layer=layer, pred_iou=self._preds[k])
        out = self._outs[k]
        maps = [m.float().cpu().numpy() for m in (out.score_map, out.size_map, out.offset_map)]
        return BackendOutput(*maps, exit_index=out.index, exit_layer=out.layer, pred_iou=None)

    def infer_batch(self, searches: np.ndarray, exit_index: int = 0) -> list[BackendOutput]:
        """One batched forward for all windows (the model takes batch > 1; the template is expanded)."""
        from .torch_batch import infer_batch_to_exit

        searches = np.asarray(searches, dtype=np.float32)
        if self._template is None:
            raise BackendError("set_template() must be called before inference")
        if searches.ndim != 4 or searches.shape[1] != 3:
            raise BackendError(f"searches must have shape (B, 3, H, W), got {searches.shape}")
        if not 0 <= exit_index < self.num_stages:
            raise BackendError(f"exit index must be in [0, {self.num_stages - 1}], got {exit_index}")
        return infer_batch_to_exit(self.model, self._template, self._to_tensor(searches), exit_index)

    def info(self) -> dict[str, str]:
        d = super().info()
        if self.torch_device.type == "cuda":
            d["cuda_graphs"] = str(self.cuda_graphs).lower()
        return d
