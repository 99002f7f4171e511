"""CAT-Seg (CVPR 2024) in plain PyTorch on open_clip towers; knows nothing about MESS.

    model = create_model("catseg-b", checkpoint="hub", device="cuda")
    text = encode_classes(model, ["sky", "building, edifice"])
    probs = predict_probs(model, [image_uint8_hwc], text)   # [(T, H, W) float32]
"""

from model.catseg import CATSeg
from model.checkpoint import CheckpointError
from model.configs import CATSegConfig
from model.factory import create_model, get_config, list_models
from model.inference import predict_labels, predict_probs, resize_short_side
from model.text import encode_classes

__all__ = [
    "CATSeg",
    "CATSegConfig",
    "CheckpointError",
    "create_model",
    "encode_classes",
    "get_config",
    "list_models",
    "predict_labels",
    "predict_probs",
    "resize_short_side",
]
