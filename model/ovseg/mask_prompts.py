"""OVSeg's mask prompt tuning: the CLIP image tower sees which patches of a crop lie outside the
proposal and replaces their tokens by learned "mask prompt" embeddings.

Official `VisionTransformer.forward(x, m)` of OVSeg's vendored CLIP, with `MASK_PROMPT_DEPTH` d
(3 for OVSeg-L) and a learned `mask_embedding` (d, grid², width):

* the binary proposal mask is cut at the crop's box and resized (nearest) to the crop size, like
  the crop (`crop_masks`); a patch counts as inside when any of its pixels is
  (`ceil(avg_pool(mask, patch))`, i.e. a max-pool; `patch_masks`);
* the patch tokens (after `conv1`, before the class token and position embedding) become
  `x * m + mask_embedding[0] * (1 - m)`;
* after CLIP block i (1-based) for i < d, the patch tokens (not the class token) become
  `x * m + mask_embedding[i] * (1 - m)` again;
* the rest is CLIP's: class token, position embedding, `ln_pre`, the blocks, `ln_post` of the class
  token, projection.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.maskformer.clip_classifier import expand_box, mask_box
from model.maskformer.config import MaskClipConfig


def crop_masks(masks: Tensor, config: MaskClipConfig) -> Tensor:
    """(N, 1, S, S) float: each non-empty bool mask (N, H, W) cut at its crop box (the box
    `masked_crops` uses) and resized to the crop size with nearest neighbours."""
    _, h, w = masks.shape
    out = []
    for mask in masks:
        x0, y0, x1, y1 = expand_box(mask_box(mask), config.expand_ratio)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        cut = mask[None, None, y0:y1, x0:x1].float()
        out.append(F.interpolate(cut, size=(config.crop_size, config.crop_size), mode="nearest"))
    return torch.cat(out)


def patch_masks(crop_mask: Tensor, patch: int) -> Tensor:
    """(N, grid², 1): 1 for a patch with any pixel inside the crop mask (N, 1, S, S), else 0."""
    return F.max_pool2d(crop_mask, patch).flatten(1)[..., None]


def _prompted(tokens: Tensor, inside: Tensor, prompt: Tensor) -> Tensor:
    return tokens * inside + prompt.to(tokens.dtype)[None] * (1 - inside)


def encode_with_mask_prompts(visual: nn.Module, mask_embedding: Tensor, crops: Tensor, crop_mask: Tensor) -> Tensor:
    """(N, C) unnormalised image embeddings of normalised crops (N, 3, S, S) through an open_clip
    ViT (OpenAI layout) with OVSeg's mask prompts (`mask_embedding` (depth, grid², width))."""
    inside = patch_masks(crop_mask, visual.conv1.kernel_size[0]).to(crops.dtype)
    x = visual.conv1(crops).flatten(2).transpose(1, 2)
    depth = mask_embedding.shape[0]
    if depth:
        x = _prompted(x, inside, mask_embedding[0])
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype))
    for i, block in enumerate(visual.transformer.resblocks, start=1):
        x = block(x)
        if i < depth:
            x = torch.cat([x[:, :1], _prompted(x[:, 1:], inside, mask_embedding[i])], dim=1)
    return visual.ln_post(x[:, 0]) @ visual.proj
