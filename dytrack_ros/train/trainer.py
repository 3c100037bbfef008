"""The training loop shared by every registered training objective (ostrack, dytrack, compress, ...).

- Single process on CPU, or one process per GPU under ``torchrun`` (DDP; NCCL
  on CUDA, gloo on CPU), with the same command line: the rank/world come from
  the ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` environment variables.
- AdamW over the objective's parameter groups, StepLR per epoch, gradient
  clipping, mixed precision on CUDA (bf16, or fp16 + GradScaler).
- Exact resume: a checkpoint holds model, optimiser, scheduler, scaler, epoch,
  position in the epoch and step. All randomness is a function of
  ``(seed, step, rank)`` (data: ``(seed, epoch, index)``; drop-path and the
  objective's per-step inputs: reseeded every step), so no RNG stream has
  to be saved. Checkpoints are plain tensor/number dicts (``weights_only`` loads).
- TensorBoard scalars (``tensorboard`` package) plus ``metrics.csv`` on rank 0;
  a tqdm bar per epoch.

Everything that differs between methods lives in the objective
(:mod:`dytrack_ros.train.objective`): the loop never branches on the method.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import ModelConfig
from ..model.tracker_net import TrackerNet
from ..model_io.model_file import save_model_file
from .config import TrainConfig

# re-exported: existing callers (benchmarks, scripts) import these tracking-model helpers from this module
from .dytrack import ce_keep_rate, init_from_file, set_score_prior  # noqa: F401
from .objective import Objective, TrainingError, build_objective, param_groups
from .pairs import EpochSampler, PairDataset

CKPT_FORMAT = "dytrack_ros.train_ckpt/1"
KEEP_CHECKPOINTS = 2  # step files kept besides latest.pt
PROBE_WARMUP = 10  # with optim.time_budget_min: steps run before the timing starts
PROBE_STEPS = 40  # then steps timed before max_steps is planned


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistInfo:
    """Read torchrun's environment; start the process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None or device == "auto":
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank, 1]).integers(2 ** 62))


# ----------------------------------------------------------------------------- logging
class MetricsLog:
    """Scalars to TensorBoard (when installed) and to ``metrics.csv`` (always)."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        self.csv_path = out_dir / "metrics.csv"
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out_dir / "tb"))
        except ImportError:
            self.writer = None

    def log(self, step: int, epoch: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)
        new = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "epoch", "key", "value"])
            for k, v in sorted(scalars.items()):
                w.writerow([step, epoch, k, f"{v:.6g}"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, objective: Objective, optimizer, scheduler, scaler, epoch: int, position: int,
                    step: int, cfg: TrainConfig, world_size: int) -> Path:
    state = {
        "format": CKPT_FORMAT,
        "model": objective.state_for_checkpoint(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "epoch": epoch, "position": position, "step": step, "world_size": world_size,
        "config": json.dumps(cfg.to_dict(), sort_keys=True),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not Path(path).is_file():
        raise TrainingError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors come in many types
        raise TrainingError(f"{path}: not a readable training checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CKPT_FORMAT:
        raise TrainingError(f"{path}: not a dytrack_ros training checkpoint")
    return state


# ----------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    model_path: Path | None
    step: int
    epoch: int
    last_stats: dict[str, float]
    losses: list[float]
    model: TrackerNet | None = None  # the trained network (this rank's copy)


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def load_dataset(cfg: TrainConfig, model_cfg: ModelConfig, di: DistInfo) -> PairDataset:
    """The configured pairs; rank 0 first, since it may generate synthetic data that the others then read."""
    if di.distributed and not di.is_main:
        dist.barrier()
    dataset = PairDataset.from_config(cfg.data, model_cfg, seed=cfg.seed)
    if di.distributed and di.is_main:
        dist.barrier()
    return dataset


class TrainingRun:
    """One training job's state between steps; each method is one named step of the loop."""

    def __init__(self, cfg: TrainConfig, out: Path, di: DistInfo, objective: Objective, dataset: PairDataset,
                 progress: bool = True) -> None:
        self.cfg, self.out, self.di, self.objective, self.dataset = cfg, out, di, objective, dataset
        self.progress = progress
        oc = cfg.optim
        self.trainable = [p for p in objective.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(objective.param_groups(oc), lr=oc.lr, weight_decay=oc.weight_decay)
        self.total_steps = oc.max_steps
        if oc.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.cosine_factor)
        else:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=max(1, oc.lr_drop_epoch),
                                                             gamma=oc.lr_gamma)
        self.t_fit = 0.0
        self.t_probe = 0.0
        self.use_amp = oc.amp and di.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp and not torch.cuda.is_bf16_supported() else None
        self.sampler = EpochSampler(len(dataset), oc.batch_size, di.rank, di.world_size)
        self.epoch, self.position, self.step = 0, 0, 0
        self.losses: list[float] = []
        self.last: dict[str, float] = {}
        self.epoch_scalars: dict[str, float] = {}
        self.ckpt_dir = out / "checkpoints"
        self.wrapped: torch.nn.Module = objective
        self.log: MetricsLog | None = None

    def cosine_factor(self, step: int) -> float:
        """LR multiplier of the cosine schedule at optimiser step ``step`` (before the plan is known: 1)."""
        oc = self.cfg.optim
        if step < oc.warmup_steps:
            return 0.1 + 0.9 * step / oc.warmup_steps
        total = self.total_steps
        if total <= 0:
            return 1.0
        t = min(1.0, (step - oc.warmup_steps) / max(1, total - oc.warmup_steps))
        return oc.min_lr_ratio + (1.0 - oc.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))

    def plan_steps(self) -> None:
        """With ``optim.time_budget_min``: set the step count from the measured step time (same on every rank)."""
        oc, di = self.cfg.optim, self.di
        if not oc.time_budget_min:
            return
        if self.step == PROBE_WARMUP:
            self.t_probe = time.perf_counter()
        if self.step != PROBE_WARMUP + PROBE_STEPS:
            return
        per_step = (time.perf_counter() - self.t_probe) / PROBE_STEPS
        left = oc.time_budget_min * 60.0 - (time.perf_counter() - self.t_fit)
        planned = self.step + max(0, int(left / per_step))
        if oc.max_steps:
            planned = min(planned, oc.max_steps)
        if di.distributed:
            t = torch.tensor([planned], device=di.device)
            dist.broadcast(t, src=0)
            planned = int(t)
        self.total_steps = planned
        self.cfg = dataclasses.replace(self.cfg, optim=dataclasses.replace(oc, max_steps=planned))
        if di.is_main:
            print(f"time budget {oc.time_budget_min:g} min: {per_step * 1000:.1f} ms/step measured, "
                  f"{planned} steps planned", flush=True)

    # ------------------------------------------------------------------ setup
    def resume(self, path: Path) -> None:
        """Continue exactly where the checkpoint at ``path`` stopped."""
        state = load_checkpoint(path)
        if state["world_size"] != self.di.world_size:
            raise TrainingError(f"checkpoint was written with {state['world_size']} processes, now "
                                f"{self.di.world_size}: the data split per rank would change; resume with the same "
                                "process count")
        self.objective.load_from_checkpoint(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.position, self.step = int(state["epoch"]), int(state["position"]), int(state["step"])

    def start(self) -> None:
        """DDP wrapper, logs, and the resolved config next to the outputs."""
        di = self.di
        if di.distributed:
            self.wrapped = DDP(self.objective, device_ids=[di.device.index] if di.device.type == "cuda" else None,
                               find_unused_parameters=self.objective.find_unused_parameters)
        self.log = MetricsLog(self.out, di.is_main)
        if di.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        self.objective.train()

    # ------------------------------------------------------------------ the loop
    def fit(self) -> None:
        """Epochs until ``optim.epochs`` or ``optim.max_steps``; a checkpoint at every epoch end (and at a stop)."""
        self.start()
        self.t_fit = time.perf_counter()
        stop = False
        while self.epoch < self.cfg.optim.epochs and not stop:
            stop = self.run_epoch()
            if not stop:
                self.epoch += 1
                self.position = 0
                if self.cfg.optim.schedule == "step":
                    self.scheduler.step()
            self.checkpoint()
        self.log.close()
        self.objective.end_training()
        self.sync_buffers()

    def run_epoch(self) -> bool:
        """The rest of the current epoch; True when ``optim.max_steps`` was reached."""
        cfg, oc, di = self.cfg, self.cfg.optim, self.di
        self.sampler.set_epoch(self.epoch, self.position)
        self.epoch_scalars = self.objective.begin_epoch(self.epoch)
        loader = DataLoader(self.dataset, batch_size=oc.batch_size, sampler=self.sampler,
                            num_workers=cfg.data.num_workers, drop_last=True, pin_memory=di.device.type == "cuda")
        bar = tqdm(total=self.sampler.steps_per_epoch, initial=self.position // oc.batch_size,
                   desc=f"epoch {self.epoch + 1}/{oc.epochs}", disable=not (di.is_main and self.progress),
                   leave=False, dynamic_ncols=True)
        stop = False
        t0 = time.perf_counter()
        for batch in loader:
            loss, stats = self.train_step(batch)
            self.losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if self.step % cfg.log_every == 0 or self.step == 1:
                self.log_step(stats, time.perf_counter() - t0)
            t0 = time.perf_counter()
            self.plan_steps()
            oc = self.cfg.optim
            if oc.max_steps and self.step >= oc.max_steps:
                stop = True
                break
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.checkpoint()
        bar.close()
        return stop

    def train_step(self, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
        """Forward, backward and optimiser update of one batch; returns (loss, the objective's stats)."""
        di = self.di
        batch = _to_device(batch, di.device)
        torch.manual_seed(_step_seed(self.cfg.seed, self.step, di.rank))
        inputs = self.objective.step_inputs(self.step)
        with _autocast(di.device, self.use_amp):
            loss, stats = self.wrapped(batch, **inputs)
        if not torch.isfinite(loss):
            raise TrainingError(f"non-finite loss {loss.item()} at step {self.step}")
        self.optimise(loss)
        self.step += 1
        if self.cfg.optim.schedule == "cosine":
            self.scheduler.step()
        self.position += self.cfg.optim.batch_size
        return float(loss.detach()), stats

    def optimise(self, loss: torch.Tensor) -> None:
        """Backward (scaled under fp16), gradient clipping, optimiser step."""
        opt, scaler, clip = self.optimizer, self.scaler, self.cfg.optim.grad_clip
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(self.trainable, clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()

    def log_step(self, stats: dict[str, torch.Tensor], seconds: float) -> None:
        """The objective's stats (loss averaged over ranks), LR, throughput and the epoch's schedule scalars."""
        di = self.di
        scal = {k: float(v) for k, v in stats.items()}
        if di.distributed:
            t = torch.tensor([scal["loss"]], device=di.device)
            dist.all_reduce(t)
            scal["loss"] = float(t) / di.world_size
        scal["lr"] = self.optimizer.param_groups[0]["lr"]
        scal["samples_per_s"] = self.cfg.optim.batch_size * di.world_size / max(1e-9, seconds)
        scal.update(self.epoch_scalars)
        self.last = scal
        self.log.log(self.step, self.epoch, scal)

    # ------------------------------------------------------------------ state
    def sync_buffers(self) -> None:
        """BatchNorm running stats are updated per rank; DDP re-broadcasts rank 0's at each forward, do it now."""
        if self.di.distributed:
            for buf in self.objective.model.buffers():
                dist.broadcast(buf, src=0)

    def checkpoint(self) -> None:
        """``checkpoints/step<N>.pt`` + ``latest.pt`` (a hard link) on rank 0; the oldest step files are removed."""
        self.sync_buffers()
        if self.di.is_main:
            d = self.ckpt_dir
            p = save_checkpoint(d / f"step{self.step:07d}.pt", self.objective, self.optimizer, self.scheduler,
                                self.scaler, self.epoch, self.position, self.step, self.cfg, self.di.world_size)
            (d / "latest.pt").unlink(missing_ok=True)
            os.link(p, d / "latest.pt")
            for old in sorted(d.glob("step*.pt"))[:-KEEP_CHECKPOINTS]:
                old.unlink()
        if self.di.distributed:
            dist.barrier()

    def export(self, command: str | None) -> Path | None:
        """Rank 0 writes the model file; every rank waits for it."""
        path = None
        if self.di.is_main:
            path = export_model(self.objective, self.out, self.cfg, self.step, self.epoch, self.losses, command)
        if self.di.distributed:
            dist.barrier()
        return path


def train(cfg: TrainConfig, out_dir: str | Path, resume: str | Path | None = None, device: str | None = None,
          dataset: PairDataset | None = None, command: str | None = None, progress: bool = True) -> TrainResult:
    """Run (or continue) a training job; returns where the model file went and the loss history."""
    di = init_distributed(device)
    torch.manual_seed(cfg.seed)
    objective = build_objective(cfg, di.device)
    if dataset is None:
        dataset = load_dataset(cfg, objective.model.cfg, di)
    run = TrainingRun(cfg, Path(out_dir), di, objective, dataset, progress)
    if resume:
        run.resume(Path(resume))
    run.fit()
    model_path = run.export(command)
    return TrainResult(model_path, run.step, run.epoch, run.last, run.losses, objective.model)


def export_model(objective: Objective, out: Path, cfg: TrainConfig, step: int, epoch: int, losses: list[float],
                 command: str | None) -> Path:
    """Write ``out/model.safetensors`` with the training provenance in its info."""
    tail = losses[-20:]
    info = {
        "training": {
            "method": cfg.method,
            "command": command or " ".join(["dytrack", "train"] + sys.argv[1:]),
            "steps": step, "epochs_completed": epoch,
            "final_loss_mean20": float(np.mean(tail)) if tail else None,
            "data": [{"format": s.format, "root": s.root, "split": s.split, "weight": s.weight}
                     for s in cfg.data.sources],
            "config": cfg.to_dict(),
            **objective.export_info(),
        }
    }
    return save_model_file(objective.model, out / "model.safetensors", info=info)


__all__ = ["DistInfo", "TrainResult", "TrainingError", "TrainingRun", "build_objective", "init_distributed",
           "init_from_file", "load_checkpoint", "load_dataset", "param_groups", "save_checkpoint", "train"]
