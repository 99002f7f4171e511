"""Grounded-SAM (GroundingDINO boxes -> SAM masks) on Hugging Face transformers, with the MESS fork's
glue that turns boxes and masks into a semantic map. Knows nothing about MESS datasets.

    net = load_grounded_sam("grounded-sam-b", checkpoint="none")   # or a weights tag
    image = resize_short_side(image_uint8_hwc, 1024, 1024)         # model.inference
    detections, scores = detect_and_score(net, image, class_names, background=0)
    labels = labels_at(scores, original_size)

`configs`, `glue`, `weights` and `tokenizer` need no transformers; the rest imports it when a model
is built (the `grounded-sam` extra).
"""

from __future__ import annotations

from model.common.lazy import lazy_exports

_EXPORTS = {
    "CONFIGS": "model.grounded_sam.configs",
    "GroundedSAMConfig": "model.grounded_sam.configs",
    "load_grounded_sam": "model.grounded_sam.factory",
    "WeightsError": "model.grounded_sam.factory",
    "detect_and_score": "model.grounded_sam.pipeline",
    "labels_at": "model.grounded_sam.pipeline",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
