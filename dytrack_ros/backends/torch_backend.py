"""PyTorch backend: CPU or CUDA, fp32 / fp16 / bf16."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..model.tracker_net import TrackerNet
from .base import Backend, BackendError, BackendOutput

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: TrackerNet, device: str = "cpu", precision: str = "fp32", model_name: str | None = None,
                 fuse_heads: bool = True) -> None:
        super().__init__(model.cfg, str(device), precision, model_name)
        try:
            self.torch_device = torch.device(device)
        except RuntimeError as exc:
            raise BackendError(f"invalid torch device {device!r}: {exc}") from exc
        if self.torch_device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} requested but CUDA is not available in this torch build")
        self.dtype = _DTYPES[precision]
        self.model = model.to(self.torch_device).eval()
        if fuse_heads:
            self.model.fuse_heads_for_inference(self.dtype)  # folds BN in fp32, then casts
        self.model.to(self.dtype)
        if model.cfg.has_exits:
            self._thresholds = list(model.exit_thresholds)
        self._template: torch.Tensor | None = None

    def _to_tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).to(self.torch_device, self.dtype)

    def set_template(self, template: np.ndarray) -> None:
        self._template = self._to_tensor(template)

    @torch.inference_mode()
    def infer(self, search: np.ndarray) -> BackendOutput:
        if self._template is None:
            raise BackendError("set_template() must be called before infer()")
        out = self.model(self._template, self._to_tensor(search), self._thresholds or None)
        maps = [m.float().cpu().numpy() for m in (out.score_map, out.size_map, out.offset_map)]
        pred = None if out.iou_logit is None else float(torch.sigmoid(out.iou_logit.float())[0])
        return BackendOutput(*maps, exit_index=out.index, exit_layer=out.layer, pred_iou=pred)

    @torch.inference_mode()
    def time_stages(self, search: np.ndarray, repeats: int = 10) -> list[float]:
        """Median ms to reach each exit (all stages run), for benchmarks."""
        if self._template is None:
            raise BackendError("set_template() must be called first")
        x = self._to_tensor(search)
        m = self.model
        times = [[] for _ in range(m.num_stages)]
        for _ in range(repeats):
            t0 = time.perf_counter()
            tokens = m.embed(self._template, x) if not m.cfg.ce_loc else None
            if tokens is None:
                m(self._template, x)
                times[0].append((time.perf_counter() - t0) * 1e3)
                continue
            for k in range(m.num_stages):
                tokens, out = m.forward_stage(k, tokens)
                _ = out.score_map.float().cpu()
                times[k].append((time.perf_counter() - t0) * 1e3)
        return [float(np.median(t)) for t in times if t]
