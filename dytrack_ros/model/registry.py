"""Named architectures (a small timm-style registry)."""
from __future__ import annotations

from ..config import ModelConfig
from .tracker_net import TrackerNet

_VITB = ModelConfig(name="ostrack256")

MODEL_CONFIGS: dict[str, ModelConfig] = {
    # Official OSTrack-256 (ViT-B/16), without and with candidate elimination.
    "ostrack256": _VITB,
    "ostrack256_ce": _VITB.replace(name="ostrack256_ce", ce_loc=(3, 6, 9)),
    # CompressTracker students (ViT-B blocks, N layers).
    **{f"ct{n}": _VITB.replace(name=f"ct{n}", depth=n) for n in (2, 3, 4, 6, 8)},
    # DyTrack on OSTrack-256: exits after layers 2, 6, 12.
    "dytrack256": _VITB.replace(name="dytrack256", exit_layers=(2, 6, 12), exit_thresholds=(0.75, 0.7, 0.0)),
    # Small models for CPU/Jetson. dytrack_small is the architecture of the shipped
    # models/dytrack_small.safetensors (64/128 px inputs); dytrack_small256 is the same ViT at
    # OSTrack's 128/256 px, about 4x the search tokens (tests use it as a model slower than a 100 Hz camera).
    "dytrack_small": ModelConfig(name="dytrack_small", embed_dim=192, depth=6, num_heads=3, head_channels=64,
                                 template_size=64, search_size=128,
                                 exit_layers=(2, 4, 6), exit_thresholds=(0.75, 0.7, 0.0)),
    "dytrack_small256": ModelConfig(name="dytrack_small256", embed_dim=192, depth=6, num_heads=3, head_channels=64,
                                    exit_layers=(2, 4, 6), exit_thresholds=(0.75, 0.7, 0.0)),
    "dytrack_tiny": ModelConfig(name="dytrack_tiny", embed_dim=64, depth=4, num_heads=2, head_channels=32,
                                template_size=64, search_size=128,
                                exit_layers=(1, 2, 4), exit_thresholds=(0.8, 0.8, 0.0)),
    "ostrack_tiny": ModelConfig(name="ostrack_tiny", embed_dim=64, depth=4, num_heads=2, head_channels=32,
                                template_size=64, search_size=128),
}


def list_models() -> list[str]:
    return sorted(MODEL_CONFIGS)


def get_config(arch: str, /, **overrides) -> ModelConfig:
    """Registry config ``arch`` with field overrides (``name=...`` renames the variant)."""
    if arch not in MODEL_CONFIGS:
        raise KeyError(f"unknown model '{arch}'; known: {', '.join(list_models())}")
    cfg = MODEL_CONFIGS[arch]
    return cfg.replace(**overrides) if overrides else cfg


def create_model(name_or_cfg: str | ModelConfig, /, drop_path_rate: float = 0.0, **overrides) -> TrackerNet:
    cfg = get_config(name_or_cfg, **overrides) if isinstance(name_or_cfg, str) else name_or_cfg.replace(**overrides)
    return TrackerNet(cfg, drop_path_rate)
