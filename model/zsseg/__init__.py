"""ZSSeg (ECCV 2022 baseline) in plain PyTorch on `model.maskformer` and an open_clip CLIP.

    net = create_zsseg("zsseg-b", checkpoint="hub")       # the official weights (Google Drive)
    embeds = net.class_embeddings(["sky", "tree"])
    scores = predict_scores(net, prepare_image(net, rgb), embeds, rgb.shape[:2])  # (T, H, W)

Knows nothing about MESS. The names below load on first use (PEP 562).
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "ZSSeg": "model.zsseg.modeling",
    "ZSSegConfig": "model.zsseg.config",
    "ZSSEG_CONFIGS": "model.zsseg.config",
    "create_zsseg": "model.zsseg.conversion",
    "prepare_image": "model.zsseg.inference",
    "predict_parts": "model.zsseg.inference",
    "predict_labels": "model.zsseg.inference",
    "predict_scores": "model.zsseg.inference",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
