"""The training loop shared by the OSTrack, DyTrack and CompressTracker methods.

- Single process on CPU, or one process per GPU under ``torchrun`` (DDP; NCCL
  on CUDA, gloo on CPU), with the same command line: the rank/world come from
  the ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` environment variables.
- AdamW with the backbone at ``lr·backbone_lr_mult``, StepLR per epoch,
  gradient clipping, mixed precision on CUDA (bf16, or fp16 + GradScaler).
- Exact resume: a checkpoint holds model, optimiser, scheduler, scaler, epoch,
  position in the epoch and step. All randomness is a function of
  ``(seed, step, rank)`` (data: ``(seed, epoch, index)``; drop-path and the
  CompressTracker replacement draw: reseeded every step), so no RNG stream has
  to be saved. Checkpoints are plain tensor/number dicts (``weights_only`` loads).
- TensorBoard scalars (``tensorboard`` package) plus ``metrics.csv`` on rank 0;
  a tqdm bar per epoch.
"""
from __future__ import annotations

import csv
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

from ..model_io.model_file import load_model_file, save_model_file
from ..model import create_model
from ..model.tracker_net import TrackerNet
from .compress import CompressObjective, init_student_from_teacher, replacement_probability, sample_replacement
from .config import TrainConfig
from .dytrack import TrackingObjective
from .pairs import EpochSampler, PairDataset

CKPT_FORMAT = "dytrack_ros.train_ckpt/1"
KEEP_CHECKPOINTS = 2  # step files kept besides latest.pt


class TrainingError(RuntimeError):
    """Training cannot start or continue (bad checkpoint, incompatible resume, non-finite loss)."""


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


def ce_keep_rate(epoch: int, start: int, end: int, final: float) -> float:
    """OSTrack-CE warm-up: keep everything until ``start``, cosine decay to ``final`` at ``end`` (0-based epochs)."""
    if epoch < start:
        return 1.0
    if epoch >= end:
        return float(final)
    t = (epoch - start) / max(1, end - start)
    return float(final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t)))


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.default_rng([seed, step, rank, 1]).integers(2 ** 62))


# ----------------------------------------------------------------------------- model building
def _model_overrides(d: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (d or {}).items()}


def build_objective(cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The loss module for ``cfg.method`` (its ``.model`` is what gets exported)."""
    if cfg.method == "compress":
        if not cfg.compress.teacher:
            raise TrainingError("compress.teacher (a model file) is required for method 'compress'")
        teacher, _ = load_model_file(cfg.compress.teacher, device=device)
        student, _ = init_student_from_teacher(teacher, cfg.compress.student_depth)
        for i, blk in enumerate(student.backbone.blocks):  # drop-path rate of the teacher block at i·r
            r = teacher.cfg.depth // cfg.compress.student_depth
            blk.drop_path = cfg.optim.drop_path * (i * r) / max(teacher.cfg.depth - 1, 1)
        return CompressObjective(student.to(device), teacher.to(device), cfg.loss, cfg.compress)
    model = create_model(cfg.model.name, drop_path_rate=cfg.optim.drop_path, **_model_overrides(cfg.model.overrides))
    fresh = set(model.state_dict())
    if cfg.model.init:
        fresh = set(init_from_file(model, cfg.model.init)["missing"])
    set_score_prior(model, only=fresh)
    return TrackingObjective(model.to(device), cfg.loss)


SCORE_PRIOR = 0.1


def set_score_prior(model: TrackerNet, prior: float = SCORE_PRIOR, only: set[str] | None = None) -> None:
    """From-scratch heads start with score ~ ``prior`` everywhere (CenterNet's bias −2.19).

    With the default 0.5 the focal loss of the ~all-negative map is ~100 at
    step 0 and its gradient swamps everything else for the first hundreds of steps.
    """
    bias = -math.log((1 - prior) / prior)
    heads = {"box_head": model.box_head}
    if model.cfg.has_exits:
        heads.update({f"exit_heads.{i}": h for i, h in enumerate(model.exit_heads)})
    with torch.no_grad():
        for name, h in heads.items():
            if only is None or f"{name}.conv5_ctr.bias" in only:  # skip heads loaded from a model file
                h.conv5_ctr.bias.fill_(bias)


def init_from_file(model: TrackerNet, path: str) -> dict[str, list[str]]:
    """Copy every tensor of a model file whose name and shape match (e.g. OSTrack weights into DyTrack)."""
    src, _ = load_model_file(path)
    own = model.state_dict()
    theirs = src.state_dict()
    loaded = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(loaded, strict=False)
    return {"loaded": sorted(loaded), "missing": sorted(set(own) - set(loaded))}


def param_groups(model: TrackerNet, lr: float, backbone_mult: float, weight_decay: float) -> list[dict]:
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith("backbone.") else rest).append(p)
    groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
    if backbone:
        groups.append({"params": backbone, "lr": lr * backbone_mult, "weight_decay": weight_decay})
    return groups


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
def save_checkpoint(path: Path, objective, optimizer, scheduler, scaler, epoch: int, position: int, step: int,
                    cfg: TrainConfig, world_size: int) -> Path:
    state = {
        "format": CKPT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in objective.model.state_dict().items()},
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


def train(cfg: TrainConfig, out_dir: str | Path, resume: str | Path | None = None, device: str | None = None,
          dataset: PairDataset | None = None, command: str | None = None, progress: bool = True) -> TrainResult:
    """Run (or continue) a training job; returns where the model file went and the loss history."""
    out = Path(out_dir)
    di = init_distributed(device)
    torch.manual_seed(cfg.seed)
    objective = build_objective(cfg, di.device)
    model = objective.model
    if dataset is None:  # rank 0 first: it may generate synthetic data that the others then read
        if di.distributed and not di.is_main:
            dist.barrier()
        dataset = PairDataset.from_config(cfg.data, model.cfg, seed=cfg.seed)
        if di.distributed and di.is_main:
            dist.barrier()
    oc = cfg.optim
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups(model, oc.lr, oc.backbone_lr_mult, oc.weight_decay), lr=oc.lr,
                                  weight_decay=oc.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, oc.lr_drop_epoch), gamma=oc.lr_gamma)
    use_amp = oc.amp and di.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp and not torch.cuda.is_bf16_supported() else None
    sampler = EpochSampler(len(dataset), oc.batch_size, di.rank, di.world_size)
    epoch, position, step = 0, 0, 0
    if resume:
        state = load_checkpoint(Path(resume))
        if state["world_size"] != di.world_size:
            raise TrainingError(f"checkpoint was written with {state['world_size']} processes, now {di.world_size}: "
                                "the data split per rank would change; resume with the same process count")
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        epoch, position, step = int(state["epoch"]), int(state["position"]), int(state["step"])
    wrapped = objective
    if di.distributed:
        wrapped = DDP(objective, device_ids=[di.device.index] if di.device.type == "cuda" else None,
                      find_unused_parameters=cfg.method == "compress")
    log = MetricsLog(out, di.is_main)
    if di.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    ckpt_dir = out / "checkpoints"
    losses: list[float] = []
    last: dict[str, float] = {}
    steps_per_epoch = sampler.steps_per_epoch

    def sync_buffers() -> None:
        """BatchNorm running stats are updated per rank; DDP re-broadcasts rank 0's at each forward, do it now."""
        if di.distributed:
            for buf in objective.model.buffers():
                dist.broadcast(buf, src=0)

    def checkpoint(ep: int, pos: int) -> None:
        sync_buffers()
        if di.is_main:
            p = save_checkpoint(ckpt_dir / f"step{step:07d}.pt", objective, optimizer, scheduler, scaler, ep, pos,
                                step, cfg, di.world_size)
            (ckpt_dir / "latest.pt").unlink(missing_ok=True)
            os.link(p, ckpt_dir / "latest.pt")
            for old in sorted(ckpt_dir.glob("step*.pt"))[:-KEEP_CHECKPOINTS]:
                old.unlink()
        if di.distributed:
            dist.barrier()

    stop = False
    objective.train()
    base_cfg = model.cfg
    while epoch < oc.epochs and not stop:
        sampler.set_epoch(epoch, position)
        if base_cfg.ce_loc:  # candidate-elimination keep-rate warm-up (the forward reads model.cfg)
            model.cfg = base_cfg.replace(ce_keep_ratio=ce_keep_rate(epoch, oc.ce_warmup_start, oc.ce_warmup_end,
                                                                    base_cfg.ce_keep_ratio))
        p_replace = replacement_probability(epoch + 1, oc.epochs, cfg.compress.p_init, cfg.compress.alpha1,
                                            cfg.compress.alpha2)
        loader = DataLoader(dataset, batch_size=oc.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
                            drop_last=True, pin_memory=di.device.type == "cuda")
        bar = tqdm(total=steps_per_epoch, initial=position // oc.batch_size, desc=f"epoch {epoch + 1}/{oc.epochs}",
                   disable=not (di.is_main and progress), leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        for batch in loader:
            batch = _to_device(batch, di.device)
            torch.manual_seed(_step_seed(cfg.seed, step, di.rank))
            kwargs = {}
            if cfg.method == "compress" and cfg.compress.replacement:
                rng = np.random.default_rng([cfg.seed, step, 7])  # same draw on every rank
                kwargs["use_student"] = sample_replacement(cfg.compress.student_depth, p_replace, rng)
            with _autocast(di.device, use_amp):
                loss, stats = wrapped(batch, **kwargs)
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if oc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trainable, oc.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            position += oc.batch_size
            lv = float(loss.detach())
            losses.append(lv)
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.3f}")
            if step % cfg.log_every == 0 or step == 1:
                scal = {k: float(v) for k, v in stats.items()}
                if di.distributed:
                    t = torch.tensor([scal["loss"]], device=di.device)
                    dist.all_reduce(t)
                    scal["loss"] = float(t) / di.world_size
                scal["lr"] = optimizer.param_groups[0]["lr"]
                scal["samples_per_s"] = oc.batch_size * di.world_size / max(1e-9, time.perf_counter() - t0)
                if cfg.method == "compress":
                    scal["p_replace"] = p_replace
                last = scal
                log.log(step, epoch, {k: v for k, v in scal.items()})
            t0 = time.perf_counter()
            if oc.max_steps and step >= oc.max_steps:
                stop = True
                break
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint(epoch, position)
        bar.close()
        if not stop:
            epoch += 1
            position = 0
            scheduler.step()
        checkpoint(epoch, position)
    log.close()
    model.cfg = base_cfg
    sync_buffers()
    model_path = None
    if di.is_main:
        model_path = export_model(objective, out, cfg, step, epoch, losses, command)
    if di.distributed:
        dist.barrier()
    return TrainResult(model_path, step, epoch, last, losses, model)


def export_model(objective, out: Path, cfg: TrainConfig, step: int, epoch: int, losses: list[float],
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
        }
    }
    if cfg.method == "compress":
        info["training"]["teacher"] = cfg.compress.teacher
    return save_model_file(objective.model, out / "model.safetensors", info=info)


__all__ = ["DistInfo", "TrainResult", "TrainingError", "build_objective", "init_distributed", "init_from_file",
           "load_checkpoint", "param_groups", "save_checkpoint", "train"]
