"""CompressTracker: stage division, skip init, replacement rules and schedule, objective, export, training."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from train_toy import write_toy_got10k

from dytrack_ros.model import create_model
from dytrack_ros.model_io.model_file import load_model_file, save_model_file
from dytrack_ros.train.compress import (
    CompressError,
    CompressObjective,
    export_student,
    init_student_from_teacher,
    replacement_probability,
    sample_replacement,
    stage_division,
)
from dytrack_ros.train.config import CompressConfig, LossConfig, train_config_from_dict
from dytrack_ros.train.losses import gaussian_heatmap
from dytrack_ros.train.trainer import train

pytestmark = pytest.mark.train


def _teacher(depth=12):
    torch.manual_seed(0)
    return create_model("ostrack_tiny", depth=depth, embed_dim=32, num_heads=2, head_channels=16).eval()


def test_stage_division():
    assert stage_division(12, 4) == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert stage_division(12, 2) == [(0, 6), (6, 12)]
    with pytest.raises(CompressError):
        stage_division(12, 5)


@pytest.mark.parametrize("n, expected", [(4, [2, 5, 8, 11]), (2, [5, 11]), (3, [3, 7, 11]), (6, [1, 3, 5, 7, 9, 11])])
def test_student_init_takes_the_last_layer_of_each_stage(n, expected):
    t = _teacher()
    s, sources = init_student_from_teacher(t, n)
    assert sources == expected and s.cfg.depth == n and not s.cfg.has_exits
    sd, td = s.state_dict(), t.state_dict()
    for i, j in enumerate(expected):
        assert torch.equal(sd[f"backbone.blocks.{i}.attn.qkv.weight"], td[f"backbone.blocks.{j}.attn.qkv.weight"])
        assert torch.equal(sd[f"backbone.blocks.{i}.mlp.fc2.bias"], td[f"backbone.blocks.{j}.mlp.fc2.bias"])
    for key in ("backbone.patch_embed.proj.weight", "backbone.pos_embed_x", "backbone.pos_embed_z",
                "backbone.norm.weight", "box_head.conv1_ctr.0.weight", "box_head.conv1_ctr.1.running_var"):
        assert torch.equal(sd[key], td[key])


def test_exit_teacher_is_refused():
    with pytest.raises(CompressError):
        init_student_from_teacher(create_model("dytrack_tiny"), 2)


def test_progressive_schedule_values():
    p = lambda e: replacement_probability(e, 500)  # noqa: E731
    assert [p(e) for e in (1, 25, 51)] == [0.5, 0.5, 0.5]
    assert p(100) == pytest.approx(0.5625) and p(250) == pytest.approx(0.75) and p(400) == pytest.approx(0.9375)
    assert p(451) == 1.0 and p(500) == 1.0
    vals = [p(e) for e in range(1, 501)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))


def test_replacement_sampling_rules():
    rng = np.random.default_rng(0)
    draws = np.array([sample_replacement(4, 0.5, rng) for _ in range(4000)])
    assert draws.any(axis=1).all()  # never the all-teacher path
    # P(student at a stage) = p + P(all teacher) * 1/4 = 0.5 + 1/16 * 1/4
    assert draws.mean() == pytest.approx(0.5 + 1 / 64, abs=0.02)
    assert np.array([sample_replacement(4, 1.0, rng) for _ in range(50)]).all()
    low = np.array([sample_replacement(4, 0.3, rng) for _ in range(500)])
    assert (low.sum(axis=1) == 1).all()  # p < 0.5: exactly one stage replaced
    assert np.allclose(low.mean(axis=0), 0.25, atol=0.06)


def _batch(cfg, b=2):
    torch.manual_seed(1)
    box = np.array([0.4, 0.35, 0.25, 0.3], dtype=np.float32)
    return {"template": torch.randn(b, 3, cfg.template_size, cfg.template_size),
            "search": torch.randn(b, 3, cfg.search_size, cfg.search_size),
            "search_box": torch.from_numpy(np.stack([box] * b)),
            "heatmap": torch.from_numpy(np.stack([gaussian_heatmap(box, cfg.search_feat)] * b))}


@pytest.mark.slow
def test_objective_gradients_flow_through_frozen_teacher_stages():
    t = _teacher(4)
    s, _ = init_student_from_teacher(t, 2)
    obj = CompressObjective(s, t, LossConfig(), CompressConfig(student_depth=2)).train()
    loss, stats = obj(_batch(s.cfg), use_student=[True, False])
    loss.backward()
    assert {"track", "guidance", "mimic"} <= set(stats)
    assert s.backbone.blocks[0].attn.qkv.weight.grad is not None
    assert s.backbone.blocks[1].attn.qkv.weight.grad is None  # stage 1 ran the teacher's blocks
    assert all(p.grad is None for p in t.parameters())
    assert not t.training  # teacher BN stays frozen
    # the all-teacher path reproduces the teacher exactly: nothing to mimic, and at init (head, norm and
    # embedding copied) the student's box equals the teacher's (fresh copy: the train-mode forward above
    # moved the student's BatchNorm statistics)
    s, _ = init_student_from_teacher(t, 2)
    obj = CompressObjective(s, t, LossConfig(), CompressConfig(student_depth=2)).eval()
    with torch.no_grad():
        _, st = obj(_batch(s.cfg), use_student=[False, False])
    assert float(st["mimic"]) == pytest.approx(0.0, abs=1e-10)
    assert float(st["guidance"]) == pytest.approx(0.0, abs=1e-5)


def test_export_is_a_plain_student_file(tmp_path):
    t = _teacher(4)
    s, _ = init_student_from_teacher(t, 2)
    obj = CompressObjective(s, t, LossConfig(), CompressConfig(student_depth=2))
    path = export_student(obj, tmp_path / "ct2.safetensors", info={"teacher": "t"})
    m, info = load_model_file(path)
    assert m.cfg.depth == 2 and not any(k.startswith("backbone.blocks.2") for k in m.state_dict())
    assert len(m.state_dict()) == len(s.state_dict()) and info == {"teacher": "t"}


@pytest.mark.slow
def test_compress_training_steps_reduce_the_loss(tmp_path):
    root = write_toy_got10k(tmp_path / "toy", num_sequences=3, frames=10, seed=4)
    teacher = _teacher(4)
    save_model_file(teacher, tmp_path / "teacher.safetensors")
    cfg = train_config_from_dict({
        "method": "compress", "seed": 0,
        "compress": {"teacher": str(tmp_path / "teacher.safetensors"), "student_depth": 2},
        "data": {"sources": [{"format": "got10k", "root": str(root), "split": "train"}], "samples_per_epoch": 96},
        "optim": {"batch_size": 8, "epochs": 2, "lr": 1e-3, "backbone_lr_mult": 1.0, "grad_clip": 1.0,
                  "drop_path": 0.0}, "log_every": 1, "checkpoint_every": 0})
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.step == 24
    assert np.mean(res.losses[-4:]) < 0.8 * np.mean(res.losses[:4])
    m, info = load_model_file(tmp_path / "run" / "model.safetensors")
    assert m.cfg.depth == 2 and info["training"]["teacher"].endswith("teacher.safetensors")
    assert "p_replace" in (tmp_path / "run" / "metrics.csv").read_text()
