"""Checks of untrusted weights against the architecture they claim, before and after reading them.

A model file's config is data from the file: trusting it to build the network
first lets a few bytes of JSON (depth 100000, embed_dim 49152) allocate until
memory runs out. So the declared architecture is first checked against what
the file really holds (tensor names, shapes and dtypes from the header, whose
sizes the file's length bounds), and only then is anything allocated. Values
are checked once read: non-finite or non-floating weights for floating
parameters are refused by name instead of tracking with NaN boxes.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from ..config import ModelConfig
from ..model.tracker_net import TrackerNet

_BLOCK_INDEX = re.compile(r"^backbone\.blocks\.(\d+)\.")
# safetensors dtype names -> torch dtypes (the ones a model file can hold).
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


class WeightsError(ValueError):
    """Weights do not match their declared architecture, or hold unusable values."""


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one tensor (from a file header or a model), without its data."""

    shape: tuple[int, ...]
    dtype: torch.dtype | None  # None: a dtype name torch does not know

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def min_parameter_count(cfg: ModelConfig) -> int:
    """A lower bound on the number of weights ``cfg`` needs, computed without building anything."""
    d, hidden = cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio)
    per_block = 4 * d * d + 2 * d * hidden  # qkv + proj, fc1 + fc2 (biases left out: a lower bound)
    tokens = cfg.num_template_tokens + cfg.num_search_tokens
    heads = len(cfg.exit_layers) or 1
    head = 3 * d * cfg.head_channels  # first layer of the three head branches (at least 1x1)
    decision = len(cfg.exit_layers) * (d * cfg.decision_hidden + cfg.decision_hidden ** 2)
    return cfg.depth * per_block + tokens * d + 3 * cfg.patch_size ** 2 * d + heads * head + decision


def check_declared_size(cfg: ModelConfig, specs: Mapping[str, TensorSpec], source: str) -> None:
    """Refuse a config the file's tensors cannot possibly fill (cheap: integer arithmetic on the header)."""
    blocks = {int(m.group(1)) for k in specs if (m := _BLOCK_INDEX.match(k))}
    if len(blocks) != cfg.depth:
        raise WeightsError(f"{source}: the config declares depth {cfg.depth} but the file holds "
                           f"{len(blocks)} transformer blocks")
    held = sum(s.numel for s in specs.values())
    needed = min_parameter_count(cfg)
    if needed > held:
        raise WeightsError(f"{source}: the config (embed_dim {cfg.embed_dim}, depth {cfg.depth}, mlp_ratio "
                           f"{cfg.mlp_ratio:g}, search {cfg.search_size}) needs at least {needed:,} weights but the "
                           f"file holds {held:,}; refusing to build it")


def expected_specs(cfg: ModelConfig) -> dict[str, TensorSpec]:
    """Names, shapes and dtypes of the state dict ``cfg`` builds; the network is made on the meta device (no memory)."""
    with torch.device("meta"):
        net = TrackerNet(cfg)
    return {k: TensorSpec(tuple(v.shape), v.dtype) for k, v in net.state_dict().items()}


def _kind_ok(want: torch.dtype | None, got: torch.dtype | None) -> bool:
    """Floating parameters need floating weights; integer buffers (BatchNorm's counter) take any real dtype."""
    if want is None or got is None:
        return False
    if want.is_floating_point:
        return got.is_floating_point
    return not got.is_complex


def check_specs(expected: Mapping[str, TensorSpec], found: Mapping[str, TensorSpec], source: str,
                what: str = "architecture") -> None:
    """Every expected tensor present with its shape and a dtype of the same kind; nothing extra."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    common = sorted(set(expected) & set(found))
    bad_shape = [f"{k}: file {found[k].shape} vs model {expected[k].shape}" for k in common
                 if found[k].shape != expected[k].shape]
    bad_dtype = [f"{k}: {found[k].dtype or 'unknown dtype'}" for k in common
                 if not _kind_ok(expected[k].dtype, found[k].dtype)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    if bad_shape:
        parts.append(f"{len(bad_shape)} shape mismatches (e.g. {bad_shape[:2]})")
    if bad_dtype:
        parts.append(f"{len(bad_dtype)} tensors of the wrong type, floating-point parameters need floating-point "
                     f"weights (e.g. {bad_dtype[:3]})")
    if parts:
        raise WeightsError(f"{source}: weights do not match the {what}: " + "; ".join(parts))


def check_values(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse tensors without data (meta), views presenting more elements than they store, and floating
    tensors holding NaN or infinity, by name."""
    for name, t in tensors.items():
        if t.device.type == "meta":
            raise WeightsError(f"{source}: tensor '{name}' is a meta tensor (a shape without data); "
                               "the file holds no weights")
        stored = t.untyped_storage().nbytes() // t.element_size()
        if t.numel() > stored:  # zero or overlapping strides: a (49152, 49152) view of one stored number
            raise WeightsError(f"{source}: tensor '{name}' presents {t.numel()} elements over {stored} stored "
                               "ones (an expanded view); weights must be stored in full")
        if t.is_floating_point() and t.numel():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise WeightsError(f"{source}: tensor '{name}' has {bad} non-finite values (NaN/inf) out of "
                                   f"{t.numel()}; refusing broken weights")


def specs_of(tensors: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    return {k: TensorSpec(tuple(v.shape), v.dtype) for k, v in tensors.items()}


__all__ = ["SAFETENSORS_DTYPES", "TensorSpec", "WeightsError", "check_declared_size", "check_specs", "check_values",
           "expected_specs", "min_parameter_count", "specs_of"]
