"""Training objectives and their registry: what differs between training methods, behind one interface.

An objective owns everything method-specific: how the trained network (and
any frozen partner, e.g. a teacher) is built, which parameters the optimiser
sees, the per-step loss and statistics, per-epoch schedules, per-step random
inputs, and extra provenance for the exported model file. The training loop
(data, optimiser, AMP, clipping, LR schedule, logging, checkpoints, DDP) only
calls this interface, so a new method is a new registered class and no loop
change. ``TrainConfig.method`` is the registered name.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

import torch
from torch import nn

from ..config import ConfigError

if TYPE_CHECKING:
    from ..model.tracker_net import TrackerNet
    from .config import OptimConfig, TrainConfig


class TrainingError(RuntimeError):
    """Training cannot start or continue (bad checkpoint, incompatible resume, non-finite loss, missing input)."""


def param_groups(model: nn.Module, lr: float, backbone_mult: float, weight_decay: float) -> list[dict]:
    """AdamW groups: heads at ``lr``, ``backbone.*`` at ``lr·backbone_mult`` (pretrained features move slower)."""
    backbone, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (backbone if name.startswith("backbone.") else rest).append(p)
    groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
    if backbone:
        groups.append({"params": backbone, "lr": lr * backbone_mult, "weight_decay": weight_decay})
    return groups


class Objective(nn.Module):
    """One training method: ``forward(batch, **step_inputs) -> (loss, stats)``; DDP wraps the objective.

    ``stats`` must hold a ``"loss"`` entry (the value averaged over ranks in the log).
    Subclasses set ``model`` (the network that is checkpointed and exported) and
    implement :meth:`build` and ``forward``; the other hooks default to no-ops.
    """

    model: TrackerNet
    # DDP: True when some trainable parameters can miss a step's forward (e.g. replaced student stages)
    find_unused_parameters: bool = False

    @classmethod
    def build(cls, cfg: TrainConfig, device: torch.device) -> Objective:
        """The objective for ``cfg`` with its networks on ``device`` (called under ``torch.manual_seed(cfg.seed)``)."""
        raise NotImplementedError

    def param_groups(self, optim: OptimConfig) -> list[dict]:
        """Optimiser parameter groups of the trained network."""
        return param_groups(self.model, optim.lr, optim.backbone_lr_mult, optim.weight_decay)

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        """Apply per-epoch schedules (``epoch`` 0-based); returns scalars logged with every step of the epoch."""
        return {}

    def step_inputs(self, step: int) -> dict[str, Any]:
        """Extra ``forward`` arguments for optimiser step ``step``; must be equal on every rank."""
        return {}

    def end_training(self) -> None:
        """Undo per-epoch changes to ``model`` before it is exported."""

    def state_for_checkpoint(self) -> dict[str, torch.Tensor]:
        """Tensors a checkpoint stores to resume (frozen partners are rebuilt from the config instead)."""
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def load_from_checkpoint(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`state_for_checkpoint`."""
        self.model.load_state_dict(state, strict=True)

    def export_info(self) -> dict[str, Any]:
        """Extra entries for the ``training`` provenance of the exported model file."""
        return {}


ObjectiveT = TypeVar("ObjectiveT", bound=type[Objective])
_REGISTRY: dict[str, type[Objective]] = {}


def register_objective(*names: str) -> Callable[[ObjectiveT], ObjectiveT]:
    """Class decorator: make the objective available as ``method: <name>`` (one class may serve several names)."""

    def add(cls: ObjectiveT) -> ObjectiveT:
        for name in names:
            known = _REGISTRY.get(name)
            if known is not None and known is not cls:
                raise ValueError(f"training method {name!r} is already registered to {known.__name__}")
            _REGISTRY[name] = cls
        return cls

    return add


def unregister_objective(name: str) -> None:
    """Remove a registration (for objectives registered temporarily, e.g. by a test)."""
    _REGISTRY.pop(name, None)


def _register_builtins() -> None:
    # the built-in objectives register themselves when their modules are imported
    from . import compress, dytrack  # noqa: F401


def objective_names() -> tuple[str, ...]:
    """The registered method names, sorted."""
    _register_builtins()
    return tuple(sorted(_REGISTRY))


def objective_class(name: str) -> type[Objective]:
    """The objective registered as ``name``; a :class:`ConfigError` listing the registered names otherwise."""
    _register_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown training method {name!r}; registered methods: "
                          f"{', '.join(objective_names())}") from None


def build_objective(cfg: TrainConfig, device: torch.device) -> Objective:
    """The objective for ``cfg.method`` (its ``.model`` is what gets exported)."""
    return objective_class(cfg.method).build(cfg, device)


__all__ = ["Objective", "TrainingError", "build_objective", "objective_class", "objective_names", "param_groups",
           "register_objective", "unregister_objective"]
