"""ZegFormer's "cropmask" CLIP input (`MaskFormer.forward` of the official `mask_former_model.py`):
for each proposal, the CLIP-normalised padded image with the pixels outside the binary mask set to
0 (CLIP's mean colour), cut at the binary mask's box by RoIAlign into a crop_size square.

The box is the official one, computed from cumulative sums: x0 / y0 the first column / row with a
mask pixel, x1 / y1 the last one (inclusive, not one past); a box whose (x1 - x0) x (y1 - y0) is 0
(an empty mask, or one a single row or column wide) becomes the whole padded image
(0, 0, W, H). RoIAlign: torchvision's, aligned=True (half-pixel offset), adaptive sampling ratio.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_boxes(binary: Tensor) -> Tensor:
    """(N, 4) boxes (x0, y0, x1, y1) of (N, H, W) bool masks, as the official code computes them."""
    n, h, w = binary.shape
    cols, rows = binary.any(dim=1), binary.any(dim=2)  # (N, W), (N, H)
    positions_w = torch.arange(w, device=binary.device)
    positions_h = torch.arange(h, device=binary.device)
    x0 = torch.where(cols, positions_w, w).amin(dim=1)
    x1 = torch.where(cols, positions_w, -1).amax(dim=1)
    y0 = torch.where(rows, positions_h, h).amin(dim=1)
    y1 = torch.where(rows, positions_h, -1).amax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1)
    whole = torch.tensor([0, 0, w, h], device=binary.device).expand(n, 4)
    flat = ((x1 - x0) * (y1 - y0) == 0) | ~cols.any(dim=1)
    return torch.where(flat[:, None], whole, boxes)


def masked_box_crops(clip_image: Tensor, binary: Tensor, size: int) -> Tensor:
    """(N, 3, size, size): `clip_image` (3, H, W; CLIP-normalised, zero-padded) x each bool mask
    (N, H, W), RoIAlign-ed at the mask's box."""
    from torchvision.ops import roi_align  # torchvision comes with open_clip

    boxes = mask_boxes(binary).to(clip_image.dtype)
    masked = clip_image[None] * binary[:, None]
    rois = torch.cat([torch.arange(len(boxes), device=boxes.device, dtype=boxes.dtype)[:, None], boxes], dim=1)
    return roi_align(masked, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
