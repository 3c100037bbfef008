"""Network definitions: plain-torch ViT, CENTER head, TrackerNet, named configs."""
from .head import CenterHead, decode_boxes
from .registry import MODEL_CONFIGS, create_model, get_config, list_models
from .tracker_net import ExitOutput, TrackerNet

__all__ = ["CenterHead", "decode_boxes", "ExitOutput", "TrackerNet", "MODEL_CONFIGS", "create_model", "get_config",
           "list_models"]
