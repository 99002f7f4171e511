"""The official CAT-Seg training loss (`CATSeg.forward` in training mode)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def one_hot_targets(labels: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """(B, T, H, W) float one-hot targets of (B, H, W) train IDs; ignore pixels get an all-zero row.

    Zero rows make ignore pixels negatives for every class (they are not excluded from the loss),
    exactly as the official code does.
    """
    valid = labels != ignore_index
    if bool(((labels < 0) | (labels >= num_classes))[valid].any()):
        bad = torch.unique(labels[valid & ((labels < 0) | (labels >= num_classes))])[:5].tolist()
        raise ValueError(f"label values {bad} are neither classes 0..{num_classes - 1} nor ignore {ignore_index}")
    index = torch.where(valid, labels, torch.full_like(labels, num_classes))
    return F.one_hot(index, num_classes + 1)[..., :num_classes].permute(0, 3, 1, 2).float()


def segmentation_loss(logits: Tensor, labels: Tensor, ignore_index: int = 255) -> Tensor:
    """Per-pixel sigmoid BCE of (B, T, h, w) logits against (B, H, W) labels.

    The logits are upsampled bilinearly (align_corners=False) to the label size first; the loss is
    the mean over all B*T*H*W elements, ignore pixels included as all-negative rows.
    """
    logits = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=False)
    targets = one_hot_targets(labels, logits.shape[1], ignore_index)
    return F.binary_cross_entropy_with_logits(logits, targets)
