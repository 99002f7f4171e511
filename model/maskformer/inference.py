"""MaskFormer's semantic inference steps, shared by the two-stage methods.

* `normalized_padded`: uint8 (H, W, 3) -> normalised (1, 3, H', W'), zero-padded at the bottom and
  right to a multiple of the size divisibility (detectron2 `ImageList.from_tensors`);
* `masks_at_image_size`: mask logits at 1/4 -> bilinear to the padded size, cropped to the image;
* `class_probabilities`: softmax over classes + "no object", the last column dropped;
* `semantic_scores`: sum over queries of class probability x sigmoid mask (einsum "qc,qhw->chw");
* `resize_scores`: bilinear (align_corners=False) to the original image size (`sem_seg_postprocess`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def normalized_padded(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...], divisibility: int,
                      dtype: torch.dtype, device: torch.device) -> Tensor:
    """(1, 3, H', W'): (image - mean) / std, zero-padded at the bottom/right to a multiple of
    `divisibility`. mean/std are made float32 first, as the official float32 buffers are."""
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(device)
    mean_t = torch.tensor(mean, dtype=torch.float32).to(device, dtype).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).to(device, dtype).view(3, 1, 1)
    x = (pixels.to(dtype) - mean_t) / std_t
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % divisibility, 0, -h % divisibility))[None]


def masks_at_image_size(mask_logits: Tensor, padded_size: tuple[int, int], image_size: tuple[int, int]) -> Tensor:
    """(Q, h, w) mask logits -> (Q, H, W) at the (unpadded) image size."""
    up = F.interpolate(mask_logits[None], size=padded_size, mode="bilinear", align_corners=False)[0]
    return up[:, : image_size[0], : image_size[1]]


def class_probabilities(logits: Tensor) -> Tensor:
    """(Q, T + 1) logits -> (Q, T): softmax, the "no object" column dropped."""
    return F.softmax(logits, dim=-1)[..., :-1]


def semantic_scores(class_probs: Tensor, mask_probs: Tensor) -> Tensor:
    """(T, H, W) = sum over queries of class_probs (Q, T) x mask_probs (Q, H, W)."""
    return torch.einsum("qc,qhw->chw", class_probs, mask_probs)


def resize_scores(scores: Tensor, size: tuple[int, int]) -> Tensor:
    """(T, h, w) -> (T, H, W), bilinear, align_corners=False (unchanged when the size is the same)."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    return F.interpolate(scores[None], size=size, mode="bilinear", align_corners=False)[0]
