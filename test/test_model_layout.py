"""Our ViT-B model layouts equal the official OSTrack-256 / CompressTracker state-dict tables.

Official files additionally hold ``backbone.cls_token`` (1,1,768) and
``backbone.pos_embed`` (1,197,768), which OSTrack never uses and we drop:
152,064 elements. CT ``backbone.distill_blocks.i`` is our ``backbone.blocks.i``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from dytrack_ros.model import create_model, get_config

_spec = importlib.util.spec_from_file_location("ostrack_reference",
                                               Path(__file__).parent / "reference" / "ostrack_reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

UNUSED = {"backbone.cls_token", "backbone.pos_embed"}
UNUSED_ELEMENTS = 768 + 197 * 768  # = 152,064

# Counted on the official files: (keys, elements incl. cls_token/pos_embed and BN buffers, depth, distill)
OFFICIAL_COUNTS = {
    "ostrack256": (242, 92_521_425, 12, False),
    "ostrack256_ce": (242, 92_521_425, 12, False),
    "ct2": (122, 21_642_705, 2, True),
    "ct3": (134, 28_730_577, 3, True),
    "ct4": (146, 35_818_449, 4, True),
    "ct6": (170, 49_994_193, 6, True),
}


def _ours_as_official(name: str, distill: bool) -> dict[str, tuple]:
    sd = create_model(name).state_dict()
    rename = (lambda k: k.replace("backbone.blocks.", "backbone.distill_blocks.", 1)) if distill else (lambda k: k)
    return {rename(k): tuple(v.shape) for k, v in sd.items()}


@pytest.fixture(scope="module")
def layouts() -> dict[str, dict[str, tuple]]:
    """Each model built once for the module (ViT-B construction takes ~2 s on 2 cores)."""
    torch.manual_seed(0)
    return {name: _ours_as_official(name, distill) for name, (_, _, _, distill) in OFFICIAL_COUNTS.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OFFICIAL_COUNTS))
def test_keys_and_shapes_match_official_table(layouts, name):
    n_keys, n_elem, depth, distill = OFFICIAL_COUNTS[name]
    official = ref.official_shapes(depth=depth, distill=distill)
    assert len(official) == n_keys  # the reference table itself matches the official key count
    assert sum(torch.Size(s).numel() for s in official.values()) == n_elem
    expected = {k: v for k, v in official.items() if k not in UNUSED}
    ours = layouts[name]
    assert sorted(set(ours) - set(expected)) == [], "keys we have that official files lack"
    assert sorted(set(expected) - set(ours)) == [], "official keys our model lacks"
    assert {k: ours[k] for k in expected} == expected
    assert sum(torch.Size(s).numel() for s in ours.values()) == n_elem - UNUSED_ELEMENTS


@pytest.mark.slow
def test_block_and_head_key_counts(layouts):
    ours = layouts["ostrack256"]
    assert sum(k.startswith("backbone.blocks.") for k in ours) == 12 * 12
    assert sum(k.startswith("box_head.") for k in ours) == 90
    assert sum(k.startswith("backbone.distill_blocks.") for k in layouts["ct4"]) == 4 * 12


@pytest.mark.slow
def test_ce_variant_has_identical_keys_and_official_ce_setting(layouts):
    assert layouts["ostrack256_ce"] == layouts["ostrack256"]
    cfg = get_config("ostrack256_ce")
    assert cfg.ce_loc == (3, 6, 9) and cfg.ce_keep_ratio == 0.7 and cfg.ce_template_centre


def test_ce_token_counts_follow_keep_ratio():
    """256 -> 180 -> 126 -> 89 search tokens (keep ratio 0.7 at layers 3/6/9, ceil), checked on a narrow 12-block
    model."""
    import math

    lens = [256]
    for _ in (3, 6, 9):
        lens.append(math.ceil(0.7 * lens[-1]))
    assert lens == [256, 180, 126, 89]
    net = create_model("ostrack256_ce", embed_dim=64, num_heads=2, head_channels=32).eval()
    kept = []
    blocks = net.backbone.blocks
    for i in (3, 6, 9):
        orig = blocks[i].forward_ce

        def spy(*a, _orig=orig, **k):
            out = _orig(*a, **k)
            kept.append(out[0].shape[1] - 64)
            return out

        blocks[i].forward_ce = spy
    with torch.no_grad():
        out = net(torch.randn(1, 3, 128, 128), torch.randn(1, 3, 256, 256))
    assert kept == [180, 126, 89]
    assert out.score_map.shape == (1, 1, 16, 16) and out.size_map.shape == (1, 2, 16, 16)
    assert out.offset_map.shape == (1, 2, 16, 16)
    # the head saw exactly 256 - 89 zero-filled (eliminated) positions
    assert int((out.search_feat.abs().sum(-1) == 0).sum()) == 256 - 89
