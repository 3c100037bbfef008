"""Load official OSTrack / CompressTracker checkpoints into :class:`TrackerNet`.

Accepted containers (read with :func:`~dytrack_ros.model_io.safe_pickle.safe_load`,
never with plain ``torch.load``): a trainer checkpoint (weights under
``net``), a file with weights under ``model``, or a flat ``name -> tensor``
state dict. Layouts:

- OSTrack-256: ``backbone.blocks.{i}``; CE and non-CE files have identical
  keys. Official trainer files record their experiment in the pickled
  ``settings.config_name`` (``vitb_256_mae_ce_32x4_ep300`` = CE,
  ``vitb_256_mae_32x4_ep300`` = no CE); that string is read as data and sets
  CE unless the caller says ``ce=True/False``. Files without it (bare state
  dicts) are loaded without CE and a :class:`CeUndetectedWarning` is issued.
- CompressTracker test model: ``backbone.distill_blocks.{i}`` (no ``blocks``).
- CompressTracker training file: the above plus the frozen teacher copies
  ``backbone.blocks.*`` and ``ori_*``; these are dropped and reported.

The architecture is inferred from tensor shapes; ``num_heads`` cannot be
(ViT convention ``embed_dim / 64`` is the default). ``backbone.cls_token`` and
``backbone.pos_embed`` are unused by OSTrack and ignored; every other tensor
must be used and none may be missing.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, ModelConfig
from ..model.registry import MODEL_CONFIGS
from ..model.tracker_net import TrackerNet
from .safe_pickle import CheckpointError, InertObject, describe, safe_load
from .weights_check import WeightsError, check_declared_size, check_specs, check_values, specs_of

# Official CE setting of OSTrack-256 (vitb_256_mae_ce_32x4_ep300): 0-based blocks, keep ratio.
OFFICIAL_CE_LOC = (3, 6, 9)
OFFICIAL_CE_KEEP_RATIO = 0.7
# Keys present in official files but unused by the OSTrack forward.
UNUSED_KEYS = ("backbone.cls_token", "backbone.pos_embed")
# Classes the official trainers pickle; seeing them is expected (others are listed as unexpected).
KNOWN_TRAINER_CLASSES = frozenset({
    "lib.train.admin.settings.Settings", "lib.train.admin.stats.AverageMeter", "lib.train.admin.stats.StatValue",
    "lib.train.admin.local.EnvironmentSettings",
})

_BLOCK = re.compile(r"^backbone\.(blocks|distill_blocks)\.(\d+)\.")
# OSTrack experiment names mark candidate elimination with a '_ce_' part (vitb_256_mae_ce_32x4_ep300).
_CE_NAME = re.compile(r"(^|_)ce(_|$)")


class OfficialCheckpointError(CheckpointError):
    """A checkpoint is readable but is not a usable OSTrack / CompressTracker tracker checkpoint."""


class CeUndetectedWarning(UserWarning):
    """CE could not be read from the checkpoint, or an explicit choice contradicts what it records."""


@dataclass(frozen=True)
class CeRecord:
    """What a checkpoint records about candidate elimination (read as data, never executed).

    ``ce`` is None when nothing records it; ``why`` then says what was missing.
    """

    ce: bool | None
    field: str | None = None  # e.g. "settings.config_name"
    value: str | None = None
    why: str = ""

    def describe(self) -> str:
        return f"{self.field} = {self.value!r}" if self.field else self.why


def read_ce_record(obj: Any) -> CeRecord:
    """CE from the experiment name an official trainer pickles in ``settings`` (``config_name``)."""
    if not isinstance(obj, Mapping) or "settings" not in obj:
        return CeRecord(None, why="no trainer 'settings' entry (bare state dict)")
    settings = obj["settings"]
    if isinstance(settings, InertObject):
        attrs = settings.attributes
    elif isinstance(settings, Mapping):
        attrs = settings
    else:
        return CeRecord(None, why=f"'settings' is a {type(settings).__name__}, not a settings object")
    name = attrs.get("config_name")
    if not isinstance(name, str) or not name:
        return CeRecord(None, why="the trainer settings record no config_name")
    return CeRecord(bool(_CE_NAME.search(name.lower())), "settings.config_name", name[:200])


def _onoff(on: bool) -> str:
    return "on" if on else "off"


def _decide_ce(ce: bool | None, recorded: CeRecord | None, depth: int, source: str) -> tuple[bool, str, list[str]]:
    """(CE on?, report line, warnings) from the explicit choice and the checkpoint's record."""
    rec = recorded or CeRecord(None, why="no record given")
    if ce is not None:
        line = f"{_onoff(ce)} (explicit; checkpoint: {rec.describe()})"
        if rec.ce is not None and rec.ce != ce:
            return ce, line, [
                f"{source}: CE explicitly {_onoff(ce)}, but {rec.describe()} records CE {_onoff(rec.ce)}; following "
                f"the explicit choice (omit {'--ce / ce=True' if ce else '--no-ce / ce=False'} to use the record)."]
        return ce, line, []
    if rec.ce is None:
        if depth != 12:  # CE exists only for 12-block OSTrack backbones: nothing to detect
            return False, f"off (not applicable to {depth} blocks; {rec.why})", []
        return False, f"off (not detected: {rec.why})", [
            f"{source}: candidate elimination cannot be detected ({rec.why}); loading WITHOUT CE. CE and non-CE "
            "OSTrack weights are identical in layout: give --ce (ce=True) for a CE checkpoint such as "
            "vitb_256_mae_ce_32x4_ep300, or --no-ce (ce=False) to silence this warning."]
    if rec.ce and depth != 12:
        raise OfficialCheckpointError(
            f"{source}: {rec.describe()} says candidate elimination, but CE is defined for 12-block OSTrack "
            f"backbones (CE_LOC {list(OFFICIAL_CE_LOC)}) and this one has {depth} blocks; pass --no-ce (ce=False) "
            "to load it without CE")
    return rec.ce, f"{_onoff(rec.ce)} (detected from {rec.describe()})", []


@dataclass
class LoadReport:
    """What was loaded from where, and what was left out (and why)."""

    source: str
    container: str  # "trainer checkpoint['net']", "['model']" or "flat state dict"
    layout: str  # "ostrack", "compresstracker", "compresstracker-training"
    config: ModelConfig
    used_keys: int
    used_elements: int
    ignored_keys: list[str] = field(default_factory=list)  # present, unused by OSTrack too
    dropped_keys: list[str] = field(default_factory=list)  # CT training teacher copies
    stripped_prefix: str | None = None
    inert_objects: list[str] = field(default_factory=list)  # pickled classes kept as placeholders
    epoch: int | None = None
    ce_source: str = ""  # how CE was decided: detected from which field, explicit, or not detectable
    warnings: list[str] = field(default_factory=list)

    @property
    def unexpected_objects(self) -> list[str]:
        return sorted(set(self.inert_objects) - KNOWN_TRAINER_CLASSES)

    def summary(self) -> str:
        c = self.config
        lines = [
            f"source:     {self.source} ({self.container}{f', epoch {self.epoch}' if self.epoch is not None else ''})",
            f"layout:     {self.layout}",
            f"model:      {c.name}: dim {c.embed_dim}, depth {c.depth}, heads {c.num_heads}, mlp {c.mlp_ratio:g}, "
            f"patch {c.patch_size}, template {c.template_size}, search {c.search_size}, head {c.head_channels}"
            + (f", CE at {list(c.ce_loc)} keep {c.ce_keep_ratio:g}" if c.ce_loc else ", no CE"),
            f"used:       {self.used_keys} tensors, {self.used_elements:,} elements (all model tensors, none missing)",
            f"ignored:    {', '.join(self.ignored_keys) or 'none'} (unused by OSTrack)",
        ]
        if self.ce_source:
            lines.insert(3, f"CE:         {self.ce_source}")
        if self.dropped_keys:
            lines.append(f"dropped:    {len(self.dropped_keys)} training-only teacher tensors "
                         "(ori_*, backbone.blocks.*)")
        if self.stripped_prefix:
            lines.append(f"stripped:   '{self.stripped_prefix}' prefix")
        if self.inert_objects:
            lines.append(f"inert:      {', '.join(sorted(self.inert_objects))} (kept as data, never imported)")
        lines.extend(f"WARNING:    {w}" for w in self.warnings)
        return "\n".join(lines)


def extract_state_dict(obj: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str, int | None]:
    """Find the weights in a loaded checkpoint: ``net``, ``model`` or a flat tensor mapping."""
    if isinstance(obj, InertObject):
        raise OfficialCheckpointError(f"{source}: holds a pickled '{obj.pickled_name}' object, not a checkpoint dict")
    if not isinstance(obj, Mapping):
        raise OfficialCheckpointError(f"{source}: top-level object is a {type(obj).__name__}, expected a dict "
                                      "(trainer checkpoint or state dict)")
    epoch = obj.get("epoch") if isinstance(obj.get("epoch"), int) else None
    for key in ("net", "model", "state_dict"):
        if key in obj and isinstance(obj[key], Mapping):
            sd, container = obj[key], f"trainer checkpoint['{key}']" if key == "net" else f"['{key}']"
            break
    else:
        if obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
            sd, container = obj, "flat state dict"
        else:
            raise OfficialCheckpointError(
                f"{source}: no weights found: expected a 'net' entry (trainer checkpoint), a 'model' entry or a flat "
                f"name->tensor mapping; top-level keys are {describe(list(obj)[:12], 200)}")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or type(v) not in (torch.Tensor, torch.nn.Parameter)]
    if bad:
        raise OfficialCheckpointError(f"{source}: weights contain non-tensor entries, e.g. {describe(bad[:3], 200)}")
    if not sd:
        raise OfficialCheckpointError(f"{source}: the weight dict is empty")
    # detach(): plain tensors, no hooks/attributes carried over from the pickle
    return {k: v.detach() for k, v in sd.items()}, container, epoch


def _strip_module_prefix(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str | None]:
    if all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}, "module."
    return sd, None


def normalise_keys(sd: dict[str, torch.Tensor],
                   source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], str, list[str], list[str]]:
    """Official key layout -> our names. Returns (tensors, layout, ignored, dropped)."""
    has_distill = any(k.startswith("backbone.distill_blocks.") for k in sd)
    has_blocks = any(k.startswith("backbone.blocks.") for k in sd)
    dropped: list[str] = []
    if has_distill:
        training = [k for k in sd if k.startswith("ori_") or k.startswith("backbone.blocks.")]
        layout = "compresstracker-training" if training else "compresstracker"
        dropped = sorted(training)
        sd = {k: v for k, v in sd.items() if k not in set(training)}
        sd = {k.replace("backbone.distill_blocks.", "backbone.blocks.", 1): v for k, v in sd.items()}
    elif has_blocks:
        layout = "ostrack"
    else:
        hint = " (looks like a backbone-only pretrain such as MAE, not a tracker)" if any(
            k.startswith("blocks.") for k in sd) else ""
        raise OfficialCheckpointError(f"{source}: no 'backbone.blocks.*' or 'backbone.distill_blocks.*' weights: not "
                                      f"an OSTrack/CompressTracker tracker checkpoint{hint}")
    ignored = sorted(k for k in UNUSED_KEYS if k in sd)
    return {k: v for k, v in sd.items() if k not in UNUSED_KEYS}, layout, ignored, dropped


def _need(sd: Mapping[str, torch.Tensor], key: str, source: str) -> torch.Tensor:
    if key not in sd:
        raise OfficialCheckpointError(f"{source}: required tensor '{key}' is missing")
    return sd[key]


def _square_side(n: int, what: str, source: str) -> int:
    side = math.isqrt(n)
    if side * side != n:
        raise OfficialCheckpointError(f"{source}: {what} has {n} tokens, not a square grid")
    return side


def infer_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint", num_heads: int | None = None,
                 name: str | None = None) -> ModelConfig:
    """Architecture from tensor shapes (our key names, after :func:`normalise_keys`)."""
    w = _need(sd, "backbone.patch_embed.proj.weight", source)
    if w.ndim != 4 or w.shape[1] != 3 or w.shape[2] != w.shape[3]:
        raise OfficialCheckpointError(f"{source}: patch embedding weight has shape {tuple(w.shape)}, "
                                      "expected (D, 3, P, P)")
    dim, patch = int(w.shape[0]), int(w.shape[2])
    indices = sorted({int(m.group(2)) for k in sd if (m := _BLOCK.match(k))})
    if indices != list(range(len(indices))):
        raise OfficialCheckpointError(f"{source}: transformer block indices are not contiguous from 0: {indices}")
    depth = len(indices)
    fc1 = _need(sd, "backbone.blocks.0.mlp.fc1.weight", source)
    pz = _need(sd, "backbone.pos_embed_z", source)
    px = _need(sd, "backbone.pos_embed_x", source)
    head = _need(sd, "box_head.conv1_ctr.0.weight", source)
    if head.shape[1] != dim:
        raise OfficialCheckpointError(f"{source}: box head input {head.shape[1]} != embedding dim {dim}")
    heads = num_heads if num_heads is not None else max(dim // 64, 1)
    try:
        cfg = ModelConfig(
            embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=fc1.shape[0] / dim, patch_size=patch,
            template_size=_square_side(pz.shape[1], "pos_embed_z", source) * patch,
            search_size=_square_side(px.shape[1], "pos_embed_x", source) * patch,
            head_channels=int(head.shape[0]), qkv_bias="backbone.blocks.0.attn.qkv.bias" in sd,
            name=name or "official",
        )
    except ConfigError as exc:
        raise OfficialCheckpointError(f"{source}: inferred architecture is invalid: {exc}") from exc
    return cfg


def _default_name(cfg: ModelConfig, layout: str) -> str:
    for reg_name, reg in MODEL_CONFIGS.items():
        if reg.replace(name=cfg.name) == cfg:
            return reg_name
    base = f"ct{cfg.depth}" if layout.startswith("compresstracker") else f"ostrack{cfg.search_size}"
    return base + ("_ce" if cfg.ce_loc else "") + ("" if cfg.embed_dim == 768 else f"_d{cfg.embed_dim}")


def build_from_state_dict(sd: dict[str, torch.Tensor], source: str = "checkpoint", *, ce: bool | None = False,
                          variant: str | None = None, num_heads: int | None = None, name: str | None = None,
                          recorded: CeRecord | None = None) -> tuple[TrackerNet, LoadReport]:
    """TrackerNet from an official-layout state dict (see module docstring).

    ``ce=None`` takes CE from ``recorded`` (warning when nothing is recorded);
    ``True``/``False`` override it, with a warning when they contradict it.
    """
    sd, prefix = _strip_module_prefix(sd)
    sd, layout, ignored, dropped = normalise_keys(sd, source)
    cfg = infer_config(sd, source, num_heads)
    ce_warnings: list[str] = []
    if variant is not None and variant in MODEL_CONFIGS:
        variant_ce = bool(MODEL_CONFIGS[variant].ce_loc)
        ce_source = f"{_onoff(variant_ce)} (variant '{variant}')"
        if recorded is not None and recorded.ce is not None and recorded.ce != variant_ce:
            ce_warnings.append(f"{source}: variant '{variant}' sets CE {_onoff(variant_ce)}, but "
                               f"{recorded.describe()} records CE {_onoff(recorded.ce)}; following the variant")
    else:
        ce, ce_source, ce_warnings = _decide_ce(ce, recorded, cfg.depth, source)
    if variant is not None:
        if variant not in MODEL_CONFIGS:
            raise OfficialCheckpointError(f"unknown variant '{variant}'; known: {sorted(MODEL_CONFIGS)}")
        reg = MODEL_CONFIGS[variant]
        for key in ("embed_dim", "depth", "mlp_ratio", "patch_size", "template_size", "search_size", "head_channels"):
            if getattr(reg, key) != getattr(cfg, key):
                raise OfficialCheckpointError(f"{source}: variant '{variant}' has {key}={getattr(reg, key)} but the "
                                              f"weights have {getattr(cfg, key)}")
        if reg.has_exits:
            raise OfficialCheckpointError(f"variant '{variant}' has early exits; official checkpoints have none")
        cfg = cfg.replace(num_heads=num_heads or reg.num_heads, ce_loc=reg.ce_loc, ce_keep_ratio=reg.ce_keep_ratio,
                          ce_template_centre=reg.ce_template_centre, norm_eps=reg.norm_eps)
        ce = bool(reg.ce_loc)
    elif ce:
        if cfg.depth != 12:
            raise OfficialCheckpointError(f"{source}: candidate elimination is defined for 12-block OSTrack "
                                          f"backbones (CE_LOC {list(OFFICIAL_CE_LOC)}); "
                                          f"this one has {cfg.depth} blocks")
        cfg = cfg.replace(ce_loc=OFFICIAL_CE_LOC, ce_keep_ratio=OFFICIAL_CE_KEEP_RATIO, ce_template_centre=True)
    cfg = cfg.replace(name=name or variant or _default_name(cfg, layout))
    if cfg.embed_dim % cfg.num_heads:
        raise OfficialCheckpointError(f"num_heads {cfg.num_heads} does not divide embed_dim {cfg.embed_dim}")

    try:  # before anything is built: real, finite data, and no more model than the tensors can fill
        check_values(sd, source)
        check_declared_size(cfg, specs_of(sd), source)
    except WeightsError as exc:
        raise OfficialCheckpointError(str(exc)) from None
    model = TrackerNet(cfg)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
           for k in sorted(set(own) & set(sd)) if sd[k].shape != own[k].shape]
    if missing or unexpected or bad:
        parts = [f"{len(missing)} missing {missing[:4]}" if missing else "",
                 f"{len(unexpected)} unused {unexpected[:4]}" if unexpected else "",
                 f"{len(bad)} shape mismatches {bad[:3]}" if bad else ""]
        raise OfficialCheckpointError(f"{source}: weights do not fit the inferred {layout} model: "
                                      + "; ".join(p for p in parts if p))
    try:  # e.g. int8 or bool tensors where the model has float parameters (load_state_dict would cast them)
        check_specs(specs_of(own), specs_of(sd), source, what=f"inferred {layout} model")
    except WeightsError as exc:
        raise OfficialCheckpointError(str(exc)) from None
    model.load_state_dict(sd, strict=True)
    report = LoadReport(source=source, container="", layout=layout, config=cfg, used_keys=len(sd),
                        used_elements=sum(v.numel() for v in sd.values()), ignored_keys=ignored,
                        dropped_keys=dropped, stripped_prefix=prefix, ce_source=ce_source,
                        warnings=list(ce_warnings))
    for text in ce_warnings:
        warnings.warn(text, CeUndetectedWarning, stacklevel=3)
    return model.eval(), report


def load_official_checkpoint(path: str | Path, variant: str | None = None, *, ce: bool | None = None,
                             num_heads: int | None = None, name: str | None = None) -> tuple[TrackerNet, LoadReport]:
    """Safely load an official OSTrack / CompressTracker checkpoint as (TrackerNet in eval mode, report).

    ``variant``: a registry name (e.g. ``"ostrack256_ce"``) whose CE setting and
    head count are used after checking it against the weights; otherwise the
    architecture is inferred. ``ce=None`` (default) reads CE from the trainer's
    recorded experiment name and warns (:class:`CeUndetectedWarning`) when the
    file records none; ``ce=True/False`` decides explicitly (warning when it
    contradicts the record). ``report.ce_source`` says which applied.
    """
    path = Path(path)
    obj, placeholders = safe_load(path)
    sd, container, epoch = extract_state_dict(obj, path.name)
    recorded = read_ce_record(obj)
    model, report = build_from_state_dict(sd, path.name, ce=ce, variant=variant, num_heads=num_heads, name=name,
                                          recorded=recorded)
    report.container, report.epoch, report.inert_objects = container, epoch, sorted(placeholders)
    return model, report


__all__ = ["CeRecord", "CeUndetectedWarning", "KNOWN_TRAINER_CLASSES", "LoadReport", "OFFICIAL_CE_KEEP_RATIO",
           "OFFICIAL_CE_LOC", "OfficialCheckpointError",
           "UNUSED_KEYS", "build_from_state_dict", "extract_state_dict", "infer_config", "load_official_checkpoint",
           "normalise_keys", "read_ce_record"]
