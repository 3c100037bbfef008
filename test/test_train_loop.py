"""Training loop: the loss drops, exact resume, checkpoints, configs, CLI, and 2-process DDP (gloo)."""
from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml
from train_toy import write_toy_got10k

from dytrack_ros.config import ConfigError
from dytrack_ros.model_io.model_file import load_model_file
from dytrack_ros.train.config import load_train_config, train_config_from_dict
from dytrack_ros.train.trainer import TrainingError, load_checkpoint, train

pytestmark = pytest.mark.train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    return write_toy_got10k(tmp_path_factory.mktemp("toy"), num_sequences=3, frames=12, seed=2)


def _cfg(root, **over):
    d = {
        "method": "dytrack", "seed": 1, "model": {"name": "dytrack_tiny"},
        "data": {"sources": [{"format": "got10k", "root": str(root), "split": "train"}], "samples_per_epoch": 12},
        "optim": {"batch_size": 4, "epochs": 3, "lr": 1e-3, "backbone_lr_mult": 0.5, "grad_clip": 1.0,
                  "lr_drop_epoch": 1, "drop_path": 0.1},
        "log_every": 1, "checkpoint_every": 0,
    }
    for key, value in over.items():
        section, name = key.split("__")
        d[section][name] = value
    return train_config_from_dict(d)


@pytest.mark.slow
def test_a_few_steps_reduce_the_loss(toy_root, tmp_path):
    cfg = _cfg(toy_root, data__samples_per_epoch=192, optim__batch_size=8, optim__epochs=1, optim__drop_path=0.0,
               optim__lr_drop_epoch=10)
    res = train(cfg, tmp_path, progress=False)
    first, last = np.mean(res.losses[:5]), np.mean(res.losses[-5:])
    assert res.step == 24 and last < 0.7 * first, (first, last)
    model, info = load_model_file(tmp_path / "model.safetensors")
    assert info["training"]["method"] == "dytrack" and info["training"]["steps"] == 24
    assert model.cfg.exit_layers == (1, 2, 4)
    assert "loss" in (tmp_path / "metrics.csv").read_text()
    assert any((tmp_path / "tb").iterdir())  # TensorBoard event file


@pytest.mark.slow
def test_resume_is_exact(toy_root, tmp_path):
    """4 steps straight == 2 steps + resume + 2 steps (crossing an epoch end and an LR drop)."""
    full = train(_cfg(toy_root, optim__max_steps=4), tmp_path / "a", progress=False)
    train(_cfg(toy_root, optim__max_steps=2), tmp_path / "b", progress=False)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoints" / "latest.pt")
    assert (ckpt["epoch"], ckpt["position"], ckpt["step"]) == (0, 8, 2)
    rest = train(_cfg(toy_root, optim__max_steps=4), tmp_path / "b",
                 resume=tmp_path / "b" / "checkpoints" / "latest.pt", progress=False)
    assert rest.step == 4 and rest.epoch == 1
    a, b = full.model.state_dict(), rest.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.losses[2:] == rest.losses


@pytest.mark.slow
def test_bad_checkpoint_and_world_size_mismatch(toy_root, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError):
        load_checkpoint(bad)
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(TrainingError):
        load_checkpoint(tmp_path / "other.pt")
    train(_cfg(toy_root, optim__max_steps=1), tmp_path / "r", progress=False)
    ck = torch.load(tmp_path / "r" / "checkpoints" / "latest.pt", weights_only=True)
    ck["world_size"] = 2
    torch.save(ck, tmp_path / "w2.pt")
    with pytest.raises(TrainingError, match="processes"):
        train(_cfg(toy_root, optim__max_steps=2), tmp_path / "r", resume=tmp_path / "w2.pt", progress=False)


def test_shipped_train_configs_load_and_overrides_apply():
    files = sorted((REPO / "config" / "train").glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        load_train_config(f)
    cfg = load_train_config(files[0], ["optim.lr=0.123", "data.samples_per_epoch=64"])
    assert cfg.optim.lr == 0.123 and cfg.data.samples_per_epoch == 64
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(files[0], ["optim.lrr=1"])
    with pytest.raises(ConfigError):
        load_train_config(files[0], ["method=nope"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import torch.distributed as dist

    res = train(_cfg(root, optim__max_steps=3, data__samples_per_epoch=24), out, device="cpu", progress=False)
    torch.save(res.model.state_dict(), Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_ddp_keeps_ranks_identical(toy_root, tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(toy_root), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    torch.manual_seed(1)
    from dytrack_ros.model import create_model

    init = create_model("dytrack_tiny").state_dict()
    assert any(not torch.equal(init[k], r0[k])
               for k in ("backbone.blocks.0.attn.qkv.weight", "box_head.conv5_ctr.weight"))
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["world_size"] == 2


@pytest.mark.slow
def test_cli_single_process_and_torchrun(toy_root, tmp_path):
    cfg = _cfg(toy_root).to_dict()
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "dytrack_ros.cli", "train", str(path), "optim.max_steps=2", "--out",
           str(tmp_path / "single"), "--no-progress", "--threads", "1"]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "single" / "model.safetensors").is_file()
    _, info = load_model_file(tmp_path / "single" / "model.safetensors")
    assert "optim.max_steps=2" in info["training"]["command"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
           "-m", "dytrack_ros.cli", "train", str(path), "optim.max_steps=2", "--out", str(tmp_path / "ddp"),
           "--no-progress", "--threads", "1"]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert load_checkpoint(tmp_path / "ddp" / "checkpoints" / "latest.pt")["world_size"] == 2
    bad = subprocess.run([sys.executable, "-m", "dytrack_ros.cli", "train", str(path), "optim.nope=1"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown key" in bad.stderr


def test_candidate_elimination_keep_rate_warmup():
    from dytrack_ros.train.dytrack import ce_keep_rate

    assert [ce_keep_rate(e, 20, 100, 0.7) for e in (0, 19, 20)] == [1.0, 1.0, 1.0]
    assert ce_keep_rate(60, 20, 100, 0.7) == pytest.approx(0.85)
    assert ce_keep_rate(100, 20, 100, 0.7) == 0.7 and ce_keep_rate(300, 20, 100, 0.7) == 0.7


def test_init_from_a_plain_model_file(tmp_path):
    """DyTrack from OSTrack weights: backbone and final head copied, exits fresh (with the score prior)."""
    from dytrack_ros.model import create_model
    from dytrack_ros.model_io.model_file import save_model_file
    from dytrack_ros.train.trainer import build_objective

    torch.manual_seed(5)
    plain = create_model("ostrack_tiny")
    save_model_file(plain, tmp_path / "plain.safetensors")
    cfg = train_config_from_dict({"model": {"name": "dytrack_tiny", "init": str(tmp_path / "plain.safetensors")}})
    dy = build_objective(cfg, torch.device("cpu")).model
    sd, pd = dy.state_dict(), plain.state_dict()
    assert torch.equal(sd["backbone.blocks.3.mlp.fc1.weight"], pd["backbone.blocks.3.mlp.fc1.weight"])
    assert torch.equal(sd["box_head.conv5_ctr.bias"], pd["box_head.conv5_ctr.bias"])
    assert float(dy.exit_heads[0].conv5_ctr.bias.detach()) == pytest.approx(-math.log(9.0))


def test_cosine_schedule_and_its_validation(toy_root, tmp_path):
    with pytest.raises(ConfigError, match="cosine"):
        _cfg(toy_root, optim__schedule="cosine")
    with pytest.raises(ConfigError, match="schedule"):
        _cfg(toy_root, optim__schedule="linear")
    with pytest.raises(ConfigError, match="got 0, 0.0, 1.5"):  # the values, not only the rules
        _cfg(toy_root, optim__min_lr_ratio=1.5)
    cfg = _cfg(toy_root, optim__schedule="cosine", optim__max_steps=6, optim__warmup_steps=2, optim__epochs=5,
               optim__min_lr_ratio=0.1)
    res = train(cfg, tmp_path, progress=False)
    assert res.step == 6
    lrs = [float(line.split(",")[3]) for line in (tmp_path / "metrics.csv").read_text().splitlines()
           if ",lr," in line]
    # warm-up from 0.1 x lr, then a cosine down towards 0.1 x lr at step 6 (the lr logged after each step)
    assert lrs[0] == pytest.approx(1e-3 * 0.55) and lrs[-1] == pytest.approx(1e-4)
    assert max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 1


@pytest.mark.slow
def test_time_budget_plans_the_step_count(toy_root, tmp_path, capsys):
    cfg = _cfg(toy_root, optim__schedule="cosine", optim__time_budget_min=0.001, optim__epochs=100,
               data__samples_per_epoch=400)
    res = train(cfg, tmp_path, progress=False)
    # 0.06 s is spent long before the 50 probe steps end: the run stops right after planning
    assert res.step == 50
    assert "steps planned" in capsys.readouterr().out
    _, info = load_model_file(tmp_path / "model.safetensors")
    assert info["training"]["config"]["optim"]["max_steps"] == 50
