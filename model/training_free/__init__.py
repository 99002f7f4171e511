"""Training-free open-vocabulary segmentation on a plain open_clip CLIP: MaskCLIP, SCLIP,
ClearCLIP and NACLIP. Knows nothing about MESS.

    tower = load_tower("ViT-B-16", "openai")
    seg = TrainingFreeCLIP(tower.clip, tower.tokenizer, method_config("sclip"))
    text = seg.encode_classes(["sky", "tree"])
    resized = resize_for_method(image_uint8_hwc, seg.method)
    probs = seg.probabilities(seg.image_logits(resized, text, image_uint8_hwc.shape[:2]))
    labels = seg.labels(probs)

The names below load on first use (PEP 562): the method table (`methods`) needs no torch.
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "model.training_free.methods",
    "MethodConfig": "model.training_free.methods",
    "method_config": "model.training_free.methods",
    "TrainingFreeCLIP": "model.training_free.segment",
    "resize_for_method": "model.training_free.segment",
    "LoadedTower": "model.training_free.towers",
    "TowerWeightsError": "model.training_free.towers",
    "load_tower": "model.training_free.towers",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
