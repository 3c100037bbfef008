"""PyTorch backend: CPU or CUDA, fp32 / fp16 / bf16, run stage by stage."""
from __future__ import annotations

import numpy as np
import torch

from ..model.tracker_net import ExitOutput, TrackerNet
from ..runtime_options import RuntimeOptions
from .base import Backend, BackendError, BackendOutput

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: TrackerNet, options: RuntimeOptions | None = None, model_name: str | None = None,
                 fuse_heads: bool = True) -> None:
        super().__init__(model.cfg, options, model_name)
        try:
            self.torch_device = torch.device(self.device)
        except RuntimeError as exc:
            raise BackendError(f"invalid torch device {self.device!r}: {exc}") from exc
        if self.torch_device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {self.device!r} requested but CUDA is not available in this torch build")
        self.dtype = _DTYPES[self.precision]
        self.model = model.to(self.torch_device).eval()
        if fuse_heads:
            self.model.fuse_heads_for_inference(self.dtype)  # folds BN in fp32, then casts
        self.model.to(self.dtype)
        self._template: torch.Tensor | None = None
        self._search: torch.Tensor | None = None
        self._tokens: torch.Tensor | None = None
        self._outs: dict[int, ExitOutput] = {}
        self._next_stage = 0

    def _to_tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(self.torch_device, self.dtype)

    def set_template(self, template: np.ndarray) -> None:
        self._template = self._to_tensor(template)

    def start_frame(self, search: np.ndarray) -> None:
        if self._template is None:
            raise BackendError("set_template() must be called before inference")
        self._search = self._to_tensor(search)
        self._tokens = None
        self._outs = {}
        self._next_stage = 0

    @torch.inference_mode()
    def run_stage(self, k: int) -> float | None:
        if self._search is None:
            raise BackendError("start_frame() must be called before run_stage()")
        if k != self._next_stage:
            raise BackendError(f"stages run in order: expected stage {self._next_stage}, got {k}")
        m = self.model
        if m.cfg.ce_loc:  # candidate elimination: one data-dependent stage
            out = m.forward_ce(self._template, self._search)
        else:
            if k == 0:
                self._tokens = m.embed(self._template, self._search)
            self._tokens, out = m.forward_stage(k, self._tokens)
        self._outs[k] = out
        self._next_stage = k + 1
        # the one small device-to-host read per executed exit: the decision
        return None if out.iou_logit is None else float(torch.sigmoid(out.iou_logit.float())[0])

    @torch.inference_mode()
    def stage_output(self, k: int) -> BackendOutput:
        out = self._outs.get(k)
        if out is None:
            raise BackendError(f"stage {k} has not run for this frame")
        maps = [m.float().cpu().numpy() for m in (out.score_map, out.size_map, out.offset_map)]
        pred = None if out.iou_logit is None else float(torch.sigmoid(out.iou_logit.float())[0])
        return BackendOutput(*maps, exit_index=out.index, exit_layer=out.layer, pred_iou=pred)
