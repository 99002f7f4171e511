"""SAN (Side Adapter Network, CVPR 2023) in plain PyTorch on open_clip towers and a timm side adapter.

    net = create_san("san-b", checkpoint="hub")          # the official weights (Mendel192/san)
    classifier = net.classifier(net.class_embeddings(["sky", "tree"]))
    scores = predict_scores(net, prepare_image(net, rgb), classifier, rgb.shape[:2])  # (T, H, W)

Knows nothing about MESS. The names below load on first use (PEP 562): `config` and `weights`
need no torch.
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "SAN": "model.san.modeling",
    "SANConfig": "model.san.config",
    "SAN_CONFIGS": "model.san.config",
    "create_san": "model.san.conversion",
    "prepare_image": "model.san.inference",
    "predict_labels": "model.san.inference",
    "predict_scores": "model.san.inference",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
