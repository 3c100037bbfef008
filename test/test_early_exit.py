"""Early exit really skips the remaining blocks (counted with forward hooks on the real model)."""
from __future__ import annotations

import pytest
import torch

from dytrack_ros.config import ConfigError, ModelConfig
from dytrack_ros.exit_policy import ExitPolicy
from dytrack_ros.model import create_model


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("dytrack_tiny").eval()


def _run_counting(net, thresholds):
    calls = []
    hooks = [b.register_forward_hook(lambda m, i, o, k=k: calls.append(k)) for k, b in enumerate(net.backbone.blocks)]
    head_calls = []
    hooks += [h.register_forward_hook(lambda m, i, o, k=k: head_calls.append(k)) for k, h in enumerate(net.exit_heads)]
    hooks.append(net.box_head.register_forward_hook(lambda m, i, o: head_calls.append("final")))
    cfg = net.cfg
    z = torch.randn(1, 3, cfg.template_size, cfg.template_size)
    x = torch.randn(1, 3, cfg.search_size, cfg.search_size)
    with torch.no_grad():
        policy = None if thresholds is None else ExitPolicy.for_model(net.cfg.exit_layers, thresholds)
        out = net(z, x, policy)
    for h in hooks:
        h.remove()
    return out, calls, head_calls


@pytest.mark.parametrize("thresholds, layer, blocks, heads", [
    ((0.0, 0.0, 0.0), 1, [0], [0]),
    ((1.0, 0.0, 0.0), 2, [0, 1], [0, 1]),
    ((1.0, 1.0, 0.0), 4, [0, 1, 2, 3], [0, 1, "final"]),
])
def test_blocks_after_the_exit_are_not_executed(net, thresholds, layer, blocks, heads):
    out, calls, head_calls = _run_counting(net, thresholds)
    assert out.layer == layer
    assert calls == blocks
    assert head_calls == heads


def test_exit_outputs_equal_the_all_exits_forward(net):
    """The early-exit answer is exactly what the full pass computes at that exit (recycling included)."""
    cfg = net.cfg
    torch.manual_seed(1)
    z = torch.randn(2, 3, cfg.template_size, cfg.template_size)
    x = torch.randn(2, 3, cfg.search_size, cfg.search_size)
    with torch.no_grad():
        for r in net.recyclers:  # make recycling non-trivial
            torch.nn.init.normal_(r.weight, std=0.05)
        all_exits = net.forward_all_exits(z, x)
        for k, th in enumerate([(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (1.0, 1.0, 0.0)]):
            out = net(z, x, ExitPolicy.for_model(cfg.exit_layers, th))
            assert out.index == k
            torch.testing.assert_close(out.score_map, all_exits[k].score_map)
            torch.testing.assert_close(out.iou_logit, all_exits[k].iou_logit)


def test_network_without_a_policy_runs_full_depth_and_holds_no_thresholds(net):
    out, calls, _ = _run_counting(net, None)
    assert out.layer == 4 and calls == [0, 1, 2, 3]
    assert not hasattr(net, "exit_thresholds")  # the ExitPolicy owns thresholds, never the network


def test_exit_config_validation():
    with pytest.raises(ConfigError, match="last must equal depth"):
        ModelConfig(depth=4, exit_layers=(1, 2))
    with pytest.raises(ConfigError, match="increasing"):
        ModelConfig(depth=4, exit_layers=(2, 1, 4))
    with pytest.raises(ConfigError, match="cannot be combined"):
        ModelConfig(depth=12, exit_layers=(2, 6, 12), ce_loc=(3,))
    with pytest.raises(ConfigError, match="one per exit"):
        ModelConfig(depth=6, exit_layers=(2, 4, 6), exit_thresholds=(0.5, 0.4))
    with pytest.raises(ConfigError, match="no early exits"):
        ModelConfig(depth=4, exit_thresholds=(0.5,))
    # the one convention: a single value applies to every early exit
    assert ModelConfig(depth=4, exit_layers=(2, 4), exit_thresholds=(0.5,)).exit_thresholds == (0.5, 0.0)
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(embed_dim=100, num_heads=3)


@pytest.mark.parametrize("name", ["dytrack_tiny", "ostrack_tiny"])
def test_fused_heads_match_the_real_heads(name):
    """Inference-only head fusion (BN folded, branches merged) changes nothing but speed."""
    torch.manual_seed(2)
    net = create_model(name).eval()
    for mod in net.modules():  # non-trivial BN statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.normal_(1.0, 0.1)
            mod.bias.data.normal_(0, 0.1)
    cfg = net.cfg
    z = torch.randn(1, 3, cfg.template_size, cfg.template_size)
    x = torch.randn(1, 3, cfg.search_size, cfg.search_size)
    keys = list(net.state_dict())
    with torch.no_grad():
        ref = net.forward_all_exits(z, x)
        net.fuse_heads_for_inference()
        fused = net.forward_all_exits(z, x)
    assert list(net.state_dict()) == keys  # saved layout unchanged
    for a, b in zip(ref, fused):
        for m_ref, m_fused in ((a.score_map, b.score_map), (a.size_map, b.size_map), (a.offset_map, b.offset_map)):
            torch.testing.assert_close(m_fused, m_ref, atol=1e-5, rtol=1e-5)
    net.train()  # training uses the real heads again
    assert net._head(0) is (net.exit_heads[0] if cfg.has_exits else net.box_head)
