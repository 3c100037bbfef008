"""Stage-by-stage execution of a TrackerNet into fixed (static) buffers, replayed as CUDA graphs on CUDA.

Why: at batch 1 a ViT-B stage is a few hundred small kernels; on a fast GPU
launching them from Python costs more than running them. A CUDA graph per exit
stage launches a whole stage at once. Graphs need fixed addresses, so the
template, the search image and every stage's outputs live in buffers allocated
once: stage k's ``tokens`` output buffer is what stage k+1's graph reads, so
chaining stages copies nothing and nothing goes back to the host between them.

Per frame the host writes the search image into a pinned staging buffer and
issues one asynchronous host-to-device copy; after each executed stage it reads
one small value back (the exit's predicted IoU, 4 bytes, through pinned
memory), which is what the exit decision needs. Maps are copied to the host only
for the exit that answers.

Without graphs (``use_graphs=False``, and always on the CPU) the same stage
functions run eagerly, so one code path serves every device.
"""
from __future__ import annotations

import torch

from ..model.tracker_net import TrackerNet

# outputs of one stage, in this order
STAGE_OUTPUTS = ("tokens", "score_map", "size_map", "offset_map", "pred_iou")


class StaticStages:
    """Static buffers and (optionally) one CUDA graph per stage for a non-CE TrackerNet at batch 1."""

    def __init__(self, model: TrackerNet, device: torch.device, dtype: torch.dtype, use_graphs: bool,
                 warmup_iters: int = 3) -> None:
        cfg = model.cfg
        if cfg.ce_loc:
            raise ValueError("candidate elimination is data dependent: it has no static stage structure")
        if use_graphs and device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, got {device}")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.use_graphs = use_graphs
        self.num_stages = model.num_stages
        pin = device.type == "cuda"
        t_shape = (1, 3, cfg.template_size, cfg.template_size)
        s_shape = (1, 3, cfg.search_size, cfg.search_size)
        self.template = torch.zeros(t_shape, device=device, dtype=dtype)
        self.search = torch.zeros(s_shape, device=device, dtype=dtype)
        self._search_host = torch.zeros(s_shape, dtype=torch.float32, pin_memory=pin)
        self._pred_host = torch.zeros((1,), dtype=torch.float32, pin_memory=pin)
        self.outputs: list[tuple[torch.Tensor, ...] | None] = [None] * self.num_stages
        self._graphs: list[torch.cuda.CUDAGraph | None] = [None] * self.num_stages
        self._warmup_iters = warmup_iters
        self._captured = False

    # the work of one stage ------------------------------------------------------------------
    def _stage(self, k: int) -> tuple[torch.Tensor, ...]:
        m = self.model
        tokens = m.embed(self.template, self.search) if k == 0 else self.outputs[k - 1][0]
        tokens, out = m.forward_stage(k, tokens)
        pred = (torch.sigmoid(out.iou_logit.float()) if out.iou_logit is not None
                else torch.full((1,), float("nan"), device=tokens.device))
        return tokens, out.score_map, out.size_map, out.offset_map, pred

    @torch.inference_mode()
    def capture(self) -> None:
        """Record one CUDA graph per stage (after a few eager runs on a side stream, as CUDA graphs require)."""
        if not self.use_graphs or self._captured:
            return
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self._warmup_iters):
                for k in range(self.num_stages):
                    self.outputs[k] = self._stage(k)
        torch.cuda.current_stream(self.device).wait_stream(side)
        for k in range(self.num_stages):  # in order: stage k's graph reads stage k-1's static tokens
            graph = torch.cuda.CUDAGraph()
            # thread_local: CUDA work of other threads (e.g. a node's other callbacks) does not break the capture
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self.outputs[k] = self._stage(k)
            self._graphs[k] = graph
        torch.cuda.synchronize(self.device)
        self._captured = True

    # per frame -------------------------------------------------------------------------------
    def set_template(self, template: torch.Tensor) -> None:
        self.template.copy_(template)

    def load_search(self, search_host: torch.Tensor) -> None:
        """``search_host``: float32 CPU tensor; on CUDA one pinned, asynchronous upload."""
        if self.device.type == "cuda":
            self._search_host.copy_(search_host)
            self.search.copy_(self._search_host, non_blocking=True)
        else:
            self.search.copy_(search_host)

    @torch.inference_mode()
    def run(self, k: int) -> float | None:
        """Run stage k; return exit k's predicted IoU (one 4-byte device-to-host read) or None without exits."""
        if self._graphs[k] is not None:
            self._graphs[k].replay()
        else:
            self.outputs[k] = self._stage(k)
        if not self.model.cfg.has_exits:
            return None
        pred = self.outputs[k][4]
        if self.device.type == "cuda":
            self._pred_host.copy_(pred.reshape(-1)[:1], non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return float(self._pred_host[0])
        return float(pred.reshape(-1)[0])

    def maps(self, k: int) -> list[torch.Tensor]:
        """Host float32 copies of exit k's score/size/offset maps."""
        out = self.outputs[k]
        return [t.float().cpu() for t in out[1:4]]
