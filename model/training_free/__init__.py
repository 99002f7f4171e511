"""Training-free open-vocabulary segmentation on a plain open_clip CLIP: MaskCLIP, SCLIP,
ClearCLIP and NACLIP. Knows nothing about MESS.

    tower = load_tower("ViT-B-16", "openai")
    seg = TrainingFreeCLIP(tower.clip, tower.tokenizer, method_config("sclip"))
    text = seg.encode_classes(["sky", "tree"])
    resized = resize_for_method(image_uint8_hwc, seg.method)
    probs = seg.probabilities(seg.image_logits(resized, text, image_uint8_hwc.shape[:2]))
    labels = seg.labels(probs)
"""

from model.training_free.methods import METHODS, MethodConfig, method_config
from model.training_free.segment import TrainingFreeCLIP, resize_for_method
from model.training_free.towers import LoadedTower, TowerWeightsError, load_tower

__all__ = [
    "METHODS",
    "LoadedTower",
    "MethodConfig",
    "TowerWeightsError",
    "TrainingFreeCLIP",
    "load_tower",
    "method_config",
    "resize_for_method",
]
