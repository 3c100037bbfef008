"""Parity with the official OSTrack semantics, via the independent reference in ``reference/ostrack_reference.py``.

Random weights in the official layout are written as a trainer checkpoint,
loaded through ``load_official_checkpoint`` (the path a user takes) and run
through our model and tracker; the reference runs the official forward and
test loop on the same official-key tensors. The small models keep the
official structure and token counts (12 blocks, CE after blocks 3/6/9,
template 128 / search 256 = 64 + 256 tokens) with a narrow width.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from dytrack_ros.backends import load_backend
from dytrack_ros.config import TrackerConfig
from dytrack_ros.model_io.official import build_from_state_dict, load_official_checkpoint
from dytrack_ros.tracker import Tracker

_spec = importlib.util.spec_from_file_location("ostrack_reference",
                                               Path(__file__).parent / "reference" / "ostrack_reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

ATOL = 1e-5
SMALL = dict(dim=64, depth=12, head_channels=32)
HEADS = 2
CE_LOC = (3, 6, 9)


@pytest.fixture(scope="module")
def small_sd():
    return ref.random_official_state_dict(11, **SMALL)


@pytest.fixture(scope="module")
def small_models(small_sd, tmp_path_factory):
    """(non-CE model, CE model), both loaded from one official-format trainer checkpoint file."""
    path = tmp_path_factory.mktemp("ckpt") / "OSTrack_small.pth.tar"
    torch.save({"epoch": 300, "net": small_sd, "settings": None}, path)
    plain, _ = load_official_checkpoint(path, num_heads=HEADS)
    ce, report = load_official_checkpoint(path, ce=True, num_heads=HEADS)
    assert report.config.ce_loc == CE_LOC
    return plain, ce


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, 128, 128, generator=g), torch.randn(1, 3, 256, 256, generator=g)


def _max_diffs(ours, theirs) -> list[float]:
    return [float((a - b).abs().max()) for a, b in zip((ours.score_map, ours.size_map, ours.offset_map), theirs)]


@pytest.mark.slow
@pytest.mark.parametrize("ce", [False, True], ids=["plain", "ce"])
def test_maps_match_reference(small_models, small_sd, ce):
    model = small_models[1] if ce else small_models[0]
    for seed in range(3):
        z, x = _inputs(seed)
        with torch.no_grad():
            ours = model(z, x)
        theirs = ref.reference_forward(small_sd, z, x, HEADS, CE_LOC if ce else (), 0.7,
                                       ref.ctr_point_mask(8) if ce else None)
        diffs = _max_diffs(ours, theirs)
        assert max(diffs) < ATOL, f"seed {seed}: score/size/offset max abs diff {diffs}"


@pytest.mark.slow
def test_parity_check_detects_wrong_ce_semantics(small_models, small_sd):
    """The comparison above can fail: plausible CE variants give clearly different maps."""
    z, x = _inputs(0)
    with torch.no_grad():
        ours = small_models[1](z, x)
    wrong = {
        "all template queries instead of the centre token": ref.reference_forward(small_sd, z, x, HEADS, CE_LOC, 0.7,
                                                                                  None),
        "no candidate elimination": ref.reference_forward(small_sd, z, x, HEADS),
        "CE at other blocks": ref.reference_forward(small_sd, z, x, HEADS, (2, 5, 8), 0.7, ref.ctr_point_mask(8)),
    }
    for what, theirs in wrong.items():
        assert max(_max_diffs(ours, theirs)) > 1e-3, what


def _sequence(n=10, size=(240, 320), seed=3):
    """Textured frames with a textured target drifting towards the bottom-right corner (crops hit the edge)."""
    rng = np.random.default_rng(seed)
    h, w = size
    bg = rng.integers(0, 120, (h, w, 3), dtype=np.uint8)
    target = rng.integers(120, 256, (36, 44, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        f = bg.copy()
        x0, y0 = 230 + 4 * i, 160 + 3 * i
        f[y0:y0 + 36, x0:x0 + 44][: h - y0, : w - x0] = target[: h - y0, : w - x0]
        frames.append(f)
    return frames, (230.0, 160.0, 44.0, 36.0)


@pytest.fixture(scope="module")
def tracking_sd(small_sd):
    """``small_sd`` with the size branch's output layer set so predicted boxes are ~1/4 of the search crop.

    Random size logits make every box about half the crop, so the box doubles each frame and
    fills the image within a few frames, after which any two trackers agree trivially.
    """
    sd = dict(small_sd)
    sd["box_head.conv5_size.bias"] = torch.full((2,), -1.1)  # sigmoid(-1.1) ~ 0.25 = 1 / search factor
    sd["box_head.conv5_size.weight"] = 0.1 * small_sd["box_head.conv5_size.weight"]
    return sd


@pytest.mark.slow
@pytest.mark.parametrize("ce", [False, True], ids=["plain", "ce"])
def test_tracking_run_matches_reference_tracker(tracking_sd, ce):
    model, _ = build_from_state_dict(dict(tracking_sd), "tracking", ce=ce, num_heads=HEADS)
    frames, init = _sequence(n=12)
    # the official tracker takes the predicted size as is: no per-frame scale bound, no size smoothing
    ours = Tracker(load_backend(model, backend="torch"), TrackerConfig(max_scale_change=0.0, size_lr=1.0))
    theirs = ref.ReferenceTracker(tracking_sd, HEADS, CE_LOC if ce else ())
    ours.initialize(frames[0], init)
    theirs.initialize(frames[0], init)
    boxes = []
    for i, frame in enumerate(frames[1:], 1):
        a = np.array(ours.track(frame).box)
        b = np.array(theirs.track(frame))
        assert np.allclose(a, b, rtol=0, atol=1e-3), f"frame {i}: ours {a} vs official {b}"
        boxes.append(b)
    boxes = np.array(boxes)
    # a meaningful run: boxes stay target-sized and move (random weights do not follow the target)
    assert boxes[:, 2:].max() < 100 and np.ptp(boxes[:, :2], axis=0).max() > 10
    # the first search crop reaches past the right image edge: the +1 padding quirk is exercised
    x, y, w, h = init
    crop_sz = int(np.ceil(np.sqrt(w * h) * 4.0))
    assert round(x + 0.5 * w - 0.5 * crop_sz) + crop_sz > frames[0].shape[1]


@pytest.mark.slow
def test_vitb_ostrack256_single_forward_matches_reference():
    """Full-size ViT-B/16 OSTrack-256 (non-CE) on random official weights: one forward each."""
    sd = ref.random_official_state_dict(5)
    model, report = build_from_state_dict(dict(sd), "vitb")
    assert report.config.name == "ostrack256" and report.config.num_heads == 12
    z, x = _inputs(7)
    with torch.no_grad():
        ours = model(z, x)
    theirs = ref.reference_forward(sd, z, x, 12)
    diffs = _max_diffs(ours, theirs)
    assert max(diffs) < ATOL, f"score/size/offset max abs diff {diffs}"
