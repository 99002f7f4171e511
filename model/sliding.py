"""Sliding-window inference for any dense model: crop, stride, optional global view, overlap mean.

The windows follow mmsegmentation's `slide_inference` (the protocol of most training-free CLIP
segmenters): `ceil((size - crop) / stride) + 1` windows per axis, the last one moved back so it
ends at the border, and an image smaller than the crop is segmented as one smaller window without
padding. Window logits are summed into the image frame and divided by how many windows cover
each pixel.

CAT-Seg's own protocol (a fixed 640 x 640 grid plus a global view, in `model.inference`) is a
different recipe and keeps its own code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor


def window_starts(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets of the windows along one axis (mmseg: the last window ends at the border)."""
    if crop <= 0 or stride <= 0:
        raise ValueError(f"crop and stride must be positive, got crop={crop}, stride={stride}")
    count = max(size - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, size) - crop, 0) for i in range(count)]


def window_boxes(height: int, width: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """(y1, y2, x1, x2) of every window in raster order; windows are clipped to the image."""
    boxes = []
    for y1 in window_starts(height, crop[0], stride[0]):
        for x1 in window_starts(width, crop[1], stride[1]):
            boxes.append((y1, min(y1 + crop[0], height), x1, min(x1 + crop[1], width)))
    return boxes


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def slide_logits(
    image: Tensor,
    segment: Callable[[Tensor], Tensor],
    crop: int | tuple[int, int],
    stride: int | tuple[int, int],
    global_view: bool = False,
) -> Tensor:
    """Dense logits (B, K, H, W) of a (B, C, H, W) image from overlapping windows.

    `segment` maps a window batch (B, C, h, w) to logits (B, K, h, w) at the window's own size.
    Overlapping logits are averaged. With `global_view`, the whole image resized to the crop size
    is segmented too; its logits, resized back to (H, W) (bilinear, align_corners=False), are
    averaged 1:1 with the window mean.
    """
    crop, stride = _pair(crop), _pair(stride)
    height, width = image.shape[-2:]
    total = count = None
    for y1, y2, x1, x2 in window_boxes(height, width, crop, stride):
        logits = segment(image[:, :, y1:y2, x1:x2])
        if total is None:
            total = logits.new_zeros(*logits.shape[:2], height, width)
            count = logits.new_zeros(1, 1, height, width)
        total[:, :, y1:y2, x1:x2] += logits
        count[:, :, y1:y2, x1:x2] += 1
    mean = total / count
    if not global_view:
        return mean
    whole = F.interpolate(image, size=crop, mode="bilinear", align_corners=False)
    whole_logits = F.interpolate(segment(whole), size=(height, width), mode="bilinear", align_corners=False)
    return (mean + whole_logits) / 2
