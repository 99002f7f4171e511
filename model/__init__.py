"""CAT-Seg (CVPR 2024) in plain PyTorch on open_clip towers; knows nothing about MESS.

    model = create_model("catseg-b", checkpoint="hub", device="cuda")
    text = encode_classes(model, ["sky", "building, edifice"])
    probs = predict_probs(model, [image_uint8_hwc], text)   # [(T, H, W) float32]

The names below load on first use (PEP 562), so `import model.common.files` does not import torch.
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "CATSeg": "model.catseg",
    "CATSegConfig": "model.configs",
    "CheckpointError": "model.checkpoint",
    "create_model": "model.factory",
    "encode_classes": "model.catseg",
    "get_config": "model.factory",
    "list_models": "model.factory",
    "predict_labels": "model.inference",
    "predict_probs": "model.inference",
    "resize_short_side": "model.inference",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
