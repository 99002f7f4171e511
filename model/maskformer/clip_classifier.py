"""CLIP classification of mask proposals by masked crops, and its ensemble with MaskFormer's scores
(ZSSeg's `MaskFormerClipAdapter` + `ZeroShotMaskFormer.semantic_inference`; OVSeg's is a copy).

For each proposal whose sigmoid mask exceeds the threshold somewhere ("valid"):
  tight box of the binary mask (x0, y0, x1 + 1, y1 + 1), optionally expanded about its centre
  -> the image (0-255) inside the box, pixels outside the binary mask set to `fill`
  -> (crop - CLIP mean) / CLIP std -> bicubic resize to 224 x 224 (align_corners=False)
  -> CLIP image embedding (class token, ln_post, projection), L2-normalised
  -> logits = temperature x cosine with the class text embeddings.
Ensemble: p = maskformer_probs^(1 - w) x clip_probs^w per query; an invalid proposal keeps a CLIP
probability of 1 (official `map_back_clip_cls`), so its scores are maskformer_probs^(1 - w).

OVSeg's mask prompt tuning passes the binary masks to its CLIP tower; it can subclass or wrap
`encode_crops` and keep the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.maskformer.config import MaskClipConfig

# OpenAI CLIP's mean/std on the 0-1 scale as the official adapter writes them; it multiplies the
# float32 tensors by 255 at use, which `model.configs.CLIP_PIXEL_MEAN` (0-255, float64) can differ
# from in the last float32 bit.
CLIP_PIXEL_MEAN_UNIT = (0.48145466, 0.4578275, 0.40821073)
CLIP_PIXEL_STD_UNIT = (0.26862954, 0.26130258, 0.27577711)


def mask_box(mask: Tensor) -> tuple[int, int, int, int]:
    """Tight box (x0, y0, x1, y1), end exclusive, of a non-empty (H, W) bool mask (detectron2
    `BitMasks.get_bounding_boxes`)."""
    xs = torch.where(mask.any(dim=0))[0]
    ys = torch.where(mask.any(dim=1))[0]
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def expand_box(box: tuple[int, int, int, int], ratio: float) -> tuple[int, int, int, int]:
    """The box scaled by `ratio` about its centre, truncated to ints (official `expand_box`)."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = 0.5 * (x0 + x1), 0.5 * (y0 + y1), (x1 - x0) * ratio, (y1 - y0) * ratio
    return int(cx - 0.5 * w), int(cy - 0.5 * h), int(cx + 0.5 * w), int(cy + 0.5 * h)


def fill_colour(config: MaskClipConfig) -> tuple[float, float, float]:
    if config.fill == "mean":
        return tuple(255.0 * c for c in CLIP_PIXEL_MEAN_UNIT)
    if config.fill == "zero":
        return (0.0, 0.0, 0.0)
    raise ValueError(f"unknown mask fill '{config.fill}' (known: mean, zero)")


def masked_crops(image: Tensor, masks: Tensor, config: MaskClipConfig) -> Tensor:
    """(N, 3, S, S) normalised crops of `image` (3, H, W; 0-255, the model's dtype) for the
    non-empty bool masks (N, H, W)."""
    fill = fill_colour(config)
    dtype = image.dtype
    mean = (torch.tensor(CLIP_PIXEL_MEAN_UNIT, dtype=torch.float32) * 255.0).to(image.device, dtype).view(1, 3, 1, 1)
    std = (torch.tensor(CLIP_PIXEL_STD_UNIT, dtype=torch.float32) * 255.0).to(image.device, dtype).view(1, 3, 1, 1)
    _, h, w = image.shape
    crops = []
    for mask in masks:
        x0, y0, x1, y1 = expand_box(mask_box(mask), config.expand_ratio)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        m = mask[None, y0:y1, x0:x1].to(dtype)
        background = torch.stack([image.new_full((y1 - y0, x1 - x0), value) for value in fill])
        crop = image[:, y0:y1, x0:x1] * m + (1 - m) * background
        crop = (crop[None] - mean) / std
        crops.append(F.interpolate(crop, size=(config.crop_size, config.crop_size), mode="bicubic",
                                   align_corners=False))
    return torch.cat(crops)


def encode_crops(clip: nn.Module, crops: Tensor, images_per_chunk: int = 16) -> Tensor:
    """(N, C) L2-normalised CLIP image embeddings of normalised crops, `images_per_chunk` at a time."""
    out = [clip.encode_image(chunk) for chunk in crops.split(images_per_chunk)]
    return F.normalize(torch.cat(out), dim=-1)


def clip_mask_logits(clip: nn.Module, image: Tensor, mask_probs: Tensor, text: Tensor, config: MaskClipConfig,
                     images_per_chunk: int = 16) -> tuple[Tensor, Tensor]:
    """(CLIP logits (V, T) of the valid proposals, valid flags (Q,)).

    `image` (3, H, W) 0-255 at the size of `mask_probs` (Q, H, W) sigmoid masks; `text` (T, C)
    unit class embeddings. No valid proposal gives a (0, T) tensor.
    """
    binary = mask_probs > config.mask_threshold
    valid = binary.flatten(1).any(dim=1)
    if not bool(valid.any()):
        return text.new_zeros(0, text.shape[0]), valid
    embeds = encode_crops(clip, masked_crops(image, binary[valid], config), images_per_chunk)
    return config.temperature * embeds @ text.to(embeds).T, valid


def ensemble(mask_class_probs: Tensor, clip_logits: Tensor, valid: Tensor, weight: float) -> Tensor:
    """(Q, T): maskformer_probs^(1 - w) x clip_probs^w; invalid proposals keep a CLIP probability of 1."""
    clip_probs = torch.ones_like(mask_class_probs)
    clip_probs[valid] = F.softmax(clip_logits, dim=-1).to(clip_probs)
    return torch.pow(mask_class_probs, 1 - weight) * torch.pow(clip_probs, weight)
