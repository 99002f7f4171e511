"""Whole-image inference: the paper's patch (sliding-window) protocol and single-view inference.

Sliding protocol (official `inference_sliding_window`, used for every reported number):

1. the test mapper resizes the uint8 image so its short side is 640 (long side at most 2560),
   with PIL bilinear and detectron2's `int(x + 0.5)` rounding (`resize_short_side`);
2. the float image is resized (bilinear, align_corners=False) to 640 x 640, aspect ratio not kept,
   and cut into 4 windows of 384 at stride 256 (offsets 0 and 256 on each axis);
3. a 5th, global view is the step-1 image resized to 384 x 384;
4. each view is CLIP-normalised and segmented; logits are upsampled to 384 and passed through a
   sigmoid; window probabilities are averaged where windows overlap, the global view is
   upsampled to 640 and combined 1:1; the result is resized bilinearly to the original size.

Whole-image mode (the official non-sliding path): the normalised step-1 image is zero-padded to a
multiple of 32, resized to the CLIP resolution, segmented once, and its sigmoid map (a quarter of
the crop) is resized straight to the original size.

All views of all images in a call go through the model together (in chunks of `max_views`).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from model.catseg import CATSeg
from model.common.device import PRECISIONS

TEST_SHORT_SIDE = 640  # INPUT.MIN_SIZE_TEST
TEST_MAX_SIDE = 2560  # INPUT.MAX_SIZE_TEST
SLIDING_GRID = 640  # out_res: the resized image the windows tile
SLIDING_OVERLAP = 0.333  # stride = int(384 * (1 - 0.333)) = 256
WHOLE_SIZE_DIVISIBILITY = 32  # MODEL.MASK_FORMER.SIZE_DIVISIBILITY (padding in whole mode)
MODES = ("sliding", "whole")


def resized_shape(height: int, width: int, short: int = TEST_SHORT_SIDE, max_side: int = TEST_MAX_SIDE) -> tuple[int, int]:
    """detectron2 `ResizeShortestEdge.get_output_shape`: (new_height, new_width)."""
    scale = short / min(height, width)
    new_h, new_w = (short, scale * width) if height < width else (scale * height, short)
    if max(new_h, new_w) > max_side:
        scale = max_side / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_short_side(image: np.ndarray) -> np.ndarray:
    """The official test-time resize of an RGB uint8 image (H, W, 3), with PIL bilinear.

    Cheap enough to run in DataLoader workers; pass the result to `predict_probs` together with
    the original sizes.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    new_h, new_w = resized_shape(*image.shape[:2])
    if (new_h, new_w) == image.shape[:2]:
        return image
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def _window_offsets(grid: int, crop: int, stride: int) -> list[int]:
    return list(range(0, grid - crop + 1, stride))


def _sliding_views(image: Tensor, crop: int) -> Tensor:
    """(3, h, w) float 0-255 -> (n_windows + 1, 3, crop, crop): windows in raster order, then global."""
    stride = int(crop * (1 - SLIDING_OVERLAP))
    grid = F.interpolate(image[None], size=(SLIDING_GRID, SLIDING_GRID), mode="bilinear", align_corners=False)[0]
    offsets = _window_offsets(SLIDING_GRID, crop, stride)
    windows = [grid[:, y : y + crop, x : x + crop] for y in offsets for x in offsets]
    global_view = F.interpolate(image[None], size=(crop, crop), mode="bilinear", align_corners=False)[0]
    return torch.stack([*windows, global_view])


def _merge_sliding(logits: Tensor, crop: int, out_size: tuple[int, int]) -> Tensor:
    """(n_windows + 1, T, l, l) logits of one image -> (T, H, W) probabilities at out_size."""
    stride = int(crop * (1 - SLIDING_OVERLAP))
    probs = F.interpolate(logits.float(), size=(crop, crop), mode="bilinear", align_corners=False).sigmoid()
    offsets = _window_offsets(SLIDING_GRID, crop, stride)
    total = probs.new_zeros(probs.shape[1], SLIDING_GRID, SLIDING_GRID)
    count = probs.new_zeros(1, SLIDING_GRID, SLIDING_GRID)
    index = 0
    for y in offsets:
        for x in offsets:
            total[:, y : y + crop, x : x + crop] += probs[index]
            count[:, y : y + crop, x : x + crop] += 1
            index += 1
    global_probs = F.interpolate(probs[-1:], size=(SLIDING_GRID, SLIDING_GRID), mode="bilinear", align_corners=False)[0]
    merged = (total / count + global_probs) / 2
    return F.interpolate(merged[None], size=out_size, mode="bilinear", align_corners=False)[0]


def _whole_view(model: CATSeg, image: Tensor) -> Tensor:
    """(3, h, w) float 0-255 -> (1, 3, r, r): normalised, zero-padded to a multiple of 32, resized."""
    x = model.normalize(image[None])
    h, w = x.shape[-2:]
    d = WHOLE_SIZE_DIVISIBILITY
    x = F.pad(x, (0, (d - w % d) % d, 0, (d - h % d) % d))
    size = model.config.clip_resolution
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


@torch.no_grad()
def predict_probs(
    model: CATSeg,
    images: list[np.ndarray],
    class_embeds: Tensor,
    mode: str = "sliding",
    precision: str = "fp32",
    original_sizes: list[tuple[int, int]] | None = None,
    max_views: int | None = None,
) -> list[Tensor]:
    """Per-class probabilities (T, H, W) float32 for each image, at its original size.

    images: RGB uint8 arrays (H, W, 3). Without `original_sizes` they are the original images and
    are resized here (`resize_short_side`); with it they are already resized (e.g. by DataLoader
    workers) and `original_sizes[i]` = (H, W) of the original. class_embeds: (T, C) from
    `encode_classes`. mode: "sliding" (the paper's protocol) or "whole". precision: "fp32"
    (reference numerics) or "bf16" (autocast). max_views: largest number of 384 views per forward
    (default: all views of all images at once). Results stay on the model's device.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if model.training:
        raise RuntimeError("predict_probs needs the model in eval mode (model.eval())")
    if original_sizes is None:
        original_sizes = [tuple(image.shape[:2]) for image in images]
        images = [resize_short_side(image) for image in images]
    device = model.device
    crop = model.config.crop_size
    views = []
    for image in images:
        chw = torch.tensor(image, device=device).permute(2, 0, 1).float()
        if mode == "sliding":
            views.append(model.normalize(_sliding_views(chw, crop)))
        else:
            views.append(_whole_view(model, chw))
    counts = [v.shape[0] for v in views]
    batch = torch.cat(views)
    chunk = max_views or batch.shape[0]
    text = class_embeds.to(device)
    with _autocast(device, precision):
        logits = torch.cat([model(batch[i : i + chunk], text).float() for i in range(0, batch.shape[0], chunk)])
    results = []
    for image_logits, size in zip(logits.split(counts), original_sizes):
        if mode == "sliding":
            results.append(_merge_sliding(image_logits, crop, tuple(size)))
        else:
            probs = image_logits.sigmoid()
            results.append(F.interpolate(probs, size=tuple(size), mode="bilinear", align_corners=False)[0])
    return results


def predict_labels(model: CATSeg, images: list[np.ndarray], class_embeds: Tensor, **kwargs) -> list[Tensor]:
    """Arg-max class index (H, W) int64 per image at its original size; kwargs as `predict_probs`."""
    return [probs.argmax(dim=0) for probs in predict_probs(model, images, class_embeds, **kwargs)]
