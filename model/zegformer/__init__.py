"""ZegFormer (CVPR 2022) in plain PyTorch on `model.maskformer` and an open_clip CLIP.

    net = create_zegformer("zegformer-b", checkpoint="hub")  # official weights + OpenAI ViT-B/16
    embeds = net.class_embeddings(["sky", "tree"])
    scores = predict_scores(net, prepare_image(net, rgb), embeds, rgb.shape[:2])  # (T, H, W)

Knows nothing about MESS. The names below load on first use (PEP 562).
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "ZegFormer": "model.zegformer.modeling",
    "ZegFormerConfig": "model.zegformer.config",
    "ZEGFORMER_CONFIGS": "model.zegformer.config",
    "create_zegformer": "model.zegformer.conversion",
    "prepare_image": "model.zegformer.inference",
    "predict_parts": "model.zegformer.inference",
    "predict_labels": "model.zegformer.inference",
    "predict_scores": "model.zegformer.inference",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
