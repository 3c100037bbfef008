"""CompressTracker training (method ``compress``): stage division, skip init, replacement training,
prediction guidance and stage-wise feature mimicking; export of the plain N-layer student.

The objective holds the trainable student and one frozen teacher. The frozen
teacher serves twice, as in the official code: its blocks are the stand-ins on
the mixed (replacement) path, and its own full forward (no grad) gives the
guidance box and the per-stage features to mimic.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..model.head import decode_boxes
from ..model.tracker_net import TrackerNet
from ..model_io.model_file import load_model_file
from .config import CompressConfig, LossConfig, TrainConfig
from .dytrack import tracking_loss
from .losses import cxcywh_to_xyxy, giou_loss, l1_loss, xywh_to_xyxy
from .objective import Objective, TrainingError, register_objective


class CompressError(ValueError):
    """Teacher/student depths or models that CompressTracker cannot pair."""


def stage_division(teacher_depth: int, student_depth: int) -> list[tuple[int, int]]:
    """Teacher block ranges [start, end) per student layer (even split, r = teacher/student)."""
    if student_depth < 1 or teacher_depth % student_depth:
        raise CompressError(f"teacher depth {teacher_depth} is not divisible into {student_depth} even stages")
    r = teacher_depth // student_depth
    return [(i * r, (i + 1) * r) for i in range(student_depth)]


def init_student_from_teacher(teacher: TrackerNet, student_depth: int) -> tuple[TrackerNet, list[int]]:
    """Student with layer i = teacher block (i+1)·r − 1 ("skip" init); embed, pos, norm, head copied.

    Returns (student, source block indices). The student is a plain model
    (no exits) of the teacher's width.
    """
    if teacher.cfg.has_exits or teacher.cfg.ce_loc:
        raise CompressError("the teacher must be a plain model (no DyTrack exits, no candidate elimination); "
                            "exit models append an IoU token and recycle features, "
                            "which the stage mapping does not cover")
    stages = stage_division(teacher.cfg.depth, student_depth)
    sources = [end - 1 for _, end in stages]
    cfg = teacher.cfg.replace(depth=student_depth, exit_layers=(), exit_thresholds=(), name=f"ct{student_depth}")
    student = TrackerNet(cfg).to(next(teacher.parameters()).device)
    sd = teacher.state_dict()
    new = {}
    for key in student.state_dict():
        if key.startswith("backbone.blocks."):
            rest = key[len("backbone.blocks."):]
            i, tail = rest.split(".", 1)
            new[key] = sd[f"backbone.blocks.{sources[int(i)]}.{tail}"].clone()
        else:
            new[key] = sd[key].clone()
    student.load_state_dict(new, strict=True)
    return student, sources


def replacement_probability(epoch: int, total_epochs: int, p_init: float = 0.5, alpha1: float = 0.1,
                            alpha2: float = 0.1) -> float:
    """Progressive schedule of the official code (epoch 1-based).

    p = p_init up to epoch α1·m + 1, then linear ``p_init + (1 − p_init)·(t − α1·m)/((1 − α1 − α2)·m)``,
    and 1.0 after (1 − α2)·m (pure-student fine-tuning). m = 500: 1-51 → 0.5,
    100 → 0.5625, 250 → 0.75, 400 → 0.9375, ≥ 451 → 1.0.
    """
    m = float(total_epochs)
    t = float(epoch)
    if t <= alpha1 * m + 1:
        return float(p_init)
    if t > (1 - alpha2) * m:
        return 1.0
    p = p_init + (1 - p_init) * (t - alpha1 * m) / ((1 - alpha1 - alpha2) * m)
    return float(min(1.0, p))


def sample_replacement(num_stages: int, p: float, rng: np.random.Generator) -> list[bool]:
    """Per stage True = student layer, False = frozen teacher stage (one draw per stage, whole batch).

    Rules: Bernoulli(p) per stage; with p >= 0.5 an all-teacher draw is replaced
    by exactly one random student stage; with p < 0.5 exactly one random stage
    is the student.
    """
    if p < 0.5:
        chosen = [False] * num_stages
        chosen[int(rng.integers(num_stages))] = True
        return chosen
    chosen = [bool(v) for v in (rng.random(num_stages) < p)]
    if not any(chosen):
        chosen[int(rng.integers(num_stages))] = True
    return chosen


@register_objective("compress")
class CompressObjective(Objective):
    """Student (trainable) + frozen teacher; ``forward(batch, use_student)`` returns (loss, stats).

    ``use_student`` is the per-stage replacement draw (None = student only).
    ``total_epochs`` sets the progressive replacement schedule; ``seed`` the draws.
    """

    find_unused_parameters = True  # student layers of stages the teacher stood in for get no gradient

    def __init__(self, student: TrackerNet, teacher: TrackerNet, loss_cfg: LossConfig, cfg: CompressConfig,
                 total_epochs: int = 1, seed: int = 0) -> None:
        super().__init__()
        self.model = student
        self.teacher = teacher
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()
        self.loss_cfg = loss_cfg
        self.cfg = cfg
        self.stages = stage_division(teacher.cfg.depth, student.cfg.depth)
        self.total_epochs = total_epochs
        self.seed = seed
        self.p_replace = replacement_probability(1, total_epochs, cfg.p_init, cfg.alpha1, cfg.alpha2)

    @classmethod
    def build(cls, cfg: TrainConfig, device: torch.device) -> CompressObjective:
        """Teacher from ``compress.teacher``; student by skip init, drop-path of the teacher block at i·r."""
        if not cfg.compress.teacher:
            raise TrainingError("compress.teacher (a model file) is required for method 'compress'")
        teacher, _ = load_model_file(cfg.compress.teacher, device=device)
        student, _ = init_student_from_teacher(teacher, cfg.compress.student_depth)
        r = teacher.cfg.depth // cfg.compress.student_depth
        for i, blk in enumerate(student.backbone.blocks):
            blk.drop_path = cfg.optim.drop_path * (i * r) / max(teacher.cfg.depth - 1, 1)
        return cls(student.to(device), teacher.to(device), cfg.loss, cfg.compress, cfg.optim.epochs, cfg.seed)

    def begin_epoch(self, epoch: int) -> dict[str, float]:
        """Progressive replacement probability of this epoch (the schedule counts epochs from 1)."""
        c = self.cfg
        self.p_replace = replacement_probability(epoch + 1, self.total_epochs, c.p_init, c.alpha1, c.alpha2)
        return {"p_replace": self.p_replace}

    def step_inputs(self, step: int) -> dict[str, Any]:
        """The replacement draw of ``step``, a function of (seed, step) only: equal on every rank."""
        if not self.cfg.replacement:
            return {}
        rng = np.random.default_rng([self.seed, step, 7])
        return {"use_student": sample_replacement(len(self.stages), self.p_replace, rng)}

    def export_info(self) -> dict[str, Any]:
        return {"teacher": self.cfg.teacher}

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # frozen BN statistics and no drop-path, always
        return self

    def forward(self, batch: dict[str, torch.Tensor], use_student: Sequence[bool] | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg, lc = self.cfg, self.loss_cfg
        s, t = self.model, self.teacher
        template, search = batch["template"], batch["search"]
        nz, nx = s.cfg.num_template_tokens, s.cfg.num_search_tokens
        use_student = [True] * len(self.stages) if use_student is None else list(use_student)
        need_teacher = cfg.guidance > 0 or cfg.feature_mimic > 0
        if need_teacher:
            with torch.no_grad():
                t_feats = t.forward_features(template, search)
                t_out = t.exit_branch(t_feats[-1], 0)
                t_box = cxcywh_to_xyxy(decode_boxes(t_out.score_map.float(), t_out.size_map.float(),
                                                    t_out.offset_map.float()))
        tokens = s.embed(template, search)
        mimic = tokens.new_zeros(())
        for i, (start, end) in enumerate(self.stages):
            if use_student[i]:
                tokens = s.backbone.blocks[i](tokens)
            else:
                for blk in t.backbone.blocks[start:end]:
                    tokens = blk(tokens)
            if cfg.feature_mimic > 0:
                ref = t_feats[end - 1]
                ms = (tokens[:, nz:nz + nx].float() - ref[:, nz:nz + nx].float()).pow(2).mean()
                mt = (tokens[:, :nz].float() - ref[:, :nz].float()).pow(2).mean()
                mimic = mimic + 0.5 * (ms + mt)
        out = s.exit_branch(tokens, 0)
        gt = xywh_to_xyxy(batch["search_box"].float())
        total, iou, parts = tracking_loss(out, gt, batch["heatmap"], lc)
        stats = {"track": total.detach(), "iou": iou.detach().mean(), **{f"final/{k}": v for k, v in parts.items()}}
        if cfg.guidance > 0:
            pred = cxcywh_to_xyxy(decode_boxes(out.score_map.float(), out.size_map.float(), out.offset_map.float()))
            g, _ = giou_loss(pred, t_box)
            guide = lc.giou * g + lc.l1 * l1_loss(pred, t_box)
            total = total + cfg.guidance * guide
            stats["guidance"] = guide.detach()
        if cfg.feature_mimic > 0:
            mimic = mimic / len(self.stages)
            total = total + cfg.feature_mimic * mimic
            stats["mimic"] = mimic.detach()
        stats["student_stages"] = torch.tensor(float(sum(use_student)))
        stats["loss"] = total.detach()
        return total, stats


def export_student(objective_or_student, path, info: dict | None = None):
    """Save the student alone as a plain N-layer model file (no teacher weights)."""
    from ..model_io.model_file import save_model_file

    student = (objective_or_student.model if isinstance(objective_or_student, CompressObjective)
               else objective_or_student)
    return save_model_file(student, path, info=info)


__all__ = [
    "CompressError", "CompressObjective", "export_student", "init_student_from_teacher", "replacement_probability",
    "sample_replacement", "stage_division",
]
