"""OVSeg (CVPR 2023, mask-adapted CLIP) in plain PyTorch on `model.maskformer` and an open_clip CLIP.

    net = create_ovseg("ovseg-l", checkpoint="hub")      # the official weights (Google Drive)
    embeds = net.class_embeddings(["sky", "tree"])
    scores = predict_scores(net, prepare_image(net, rgb), embeds, rgb.shape[:2])  # (T, H, W)

Knows nothing about MESS. The names below load on first use (PEP 562): `config` and `weights`
need no torch.
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "OVSeg": "model.ovseg.modeling",
    "OVSegConfig": "model.ovseg.config",
    "OVSEG_CONFIGS": "model.ovseg.config",
    "create_ovseg": "model.ovseg.conversion",
    # ZSSeg's whole-image protocol (OVSeg's values come from its config)
    "prepare_image": "model.zsseg.inference",
    "predict_labels": "model.zsseg.inference",
    "predict_scores": "model.zsseg.inference",
    "predict_parts": "model.zsseg.inference",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
