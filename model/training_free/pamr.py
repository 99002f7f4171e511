"""PAMR, pixel-adaptive mask refinement (Araslanov & Roth, CVPR 2020), as SCLIP and NACLIP apply it.

The logits are repeatedly replaced by an affinity-weighted mean of their 8 neighbours at each
dilation. The affinity of a neighbour is a softmax over all neighbours of
-|I(p) - I(q)| / (1e-8 + 0.1 std), averaged over the image channels, where std is the
(unbiased) standard deviation of the 3 x 3 neighbourhoods of every dilation, centres included.
Borders replicate. Optional in both methods (NACLIP's constructor default is 10 steps at
dilations 8 and 16); off unless `pamr_steps` > 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_OFFSETS = [(i, j) for i in range(3) for j in range(3)]


def _neighbours(x: Tensor, dilation: int, with_centre: bool) -> Tensor:
    """(B, K, H, W) -> (B, K, 8 or 9, H, W): the 3 x 3 neighbourhood at `dilation`, row-major."""
    height, width = x.shape[-2:]
    padded = F.pad(x, [dilation] * 4, mode="replicate")
    offsets = [o for o in _OFFSETS if with_centre or o != (1, 1)]
    return torch.stack([padded[..., i * dilation : i * dilation + height, j * dilation : j * dilation + width]
                        for i, j in offsets], dim=2)


def pamr(image: Tensor, logits: Tensor, steps: int, dilations: tuple[int, ...]) -> Tensor:
    """Refine (B, C, h, w) logits with the (B, 3, H, W) image; returns (B, C, H, W)."""
    logits = F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=True)
    std = torch.cat([_neighbours(image, d, True) for d in dilations], dim=2).std(dim=2, keepdim=True)
    diff = torch.cat([(image.unsqueeze(2) - _neighbours(image, d, False)).abs() for d in dilations], dim=2)
    affinity = (-diff / (1e-8 + 0.1 * std)).mean(dim=1, keepdim=True).softmax(dim=2)
    for _ in range(steps):
        logits = (torch.cat([_neighbours(logits, d, False) for d in dilations], dim=2) * affinity).sum(dim=2)
    return logits
