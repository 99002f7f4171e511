"""One image through Grounded-SAM: detections, per-class scores, class indices (the fork's `forward`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import Tensor

from model.grounded_sam.detector import Detections
from model.grounded_sam.factory import GroundedSAM
from model.grounded_sam.glue import ClassScores, semantic_labels


def detect_and_score(net: GroundedSAM, image: np.ndarray, class_names: Sequence[str],
                     background: int | None) -> tuple[Detections, Tensor]:
    """The boxes of an RGB uint8 image (already resized to the 1024 long side) and its
    (num_classes + 1, H, W) score map (fork:132-179). SAM runs only when there is a box (fork:142)."""
    detections = net.detector.detect(image, class_names)
    scores = ClassScores(len(class_names), background, image.shape[:2], device=net.masks.device)
    if len(detections.class_ids):
        net.masks.set_image(image)
        for part, logits in net.masks.mask_logits(detections.boxes):
            scores.add(logits, detections.confidences[part], detections.class_ids[part])
    return detections, scores.finish()


def class_scores(net: GroundedSAM, image: np.ndarray, class_names: Sequence[str], background: int | None) -> Tensor:
    return detect_and_score(net, image, class_names, background)[1]


def labels_at(scores: Tensor, size: tuple[int, int]) -> Tensor:
    """(H, W) int64 class indices at the original size (fork:181-188)."""
    return semantic_labels(scores, size)
