"""ZSSeg's test protocol (as the MESS fork evaluates it): one whole image per forward.

1. the uint8 image is resized so its short side is 512 (long side at most 2048), PIL bilinear
   (detectron2 `ResizeShortestEdge`, `model.inference.resize_short_side`);
2. MaskFormer on the ImageNet-normalised image, zero-padded to a multiple of 32;
3. mask logits upsampled to the padded size and cropped to the resized image; sigmoid;
4. CLIP classification of the masked crops, geometric ensemble with MaskFormer's probabilities;
5. scores at the resized size (sum over queries), bilinear to the original size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from model.inference import resize_short_side
from model.maskformer.clip_classifier import clip_mask_logits, ensemble
from model.maskformer.inference import (class_probabilities, masks_at_image_size, normalized_padded, resize_scores,
                                        semantic_scores)
from model.zsseg.modeling import ZSSeg


def prepare_image(model: ZSSeg, image: np.ndarray) -> np.ndarray:
    """Step 1 (cheap; runs in DataLoader workers)."""
    return resize_short_side(image, model.config.test_short_side, model.config.test_max_side)


@torch.no_grad()
def predict_parts(model: ZSSeg, image: np.ndarray, class_embeds: Tensor) -> dict[str, Tensor]:
    """Steps 2-5 but the final resize, with the intermediates: `mask_class_logits` (Q, T + 1),
    `mask_logits` (Q, h, w) at 1/4, `mask_probs` (Q, H, W), `clip_logits` (V, T), `valid` (Q,),
    `scores` (T, H, W) at the resized image's size."""
    config = model.config
    mf = config.maskformer
    x = normalized_padded(image, mf.pixel_mean, mf.pixel_std, mf.size_divisibility, model.dtype, model.device)
    logits, masks = model(x, model.classifier(class_embeds))
    size = image.shape[:2]
    mask_probs = masks_at_image_size(masks[0], x.shape[-2:], size).sigmoid()
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(model.device, model.dtype)
    clip_logits, valid = clip_mask_logits(model.clip, pixels, mask_probs, class_embeds.to(model.dtype),
                                          config.mask_clip, config.images_per_chunk)
    probs = ensemble(class_probabilities(logits[0]), clip_logits, valid, config.mask_clip.ensemble_weight)
    return {"mask_class_logits": logits[0], "mask_logits": masks[0], "mask_probs": mask_probs,
            "clip_logits": clip_logits, "valid": valid, "scores": semantic_scores(probs, mask_probs)}


def predict_scores(model: ZSSeg, image: np.ndarray, class_embeds: Tensor, original_size: tuple[int, int]) -> Tensor:
    """Semantic scores (T, H, W) at the original size for one image prepared by `prepare_image`."""
    return resize_scores(predict_parts(model, image, class_embeds)["scores"], original_size)


def predict_labels(model: ZSSeg, image: np.ndarray, class_embeds: Tensor, original_size: tuple[int, int]) -> Tensor:
    """Class indices (H, W) int64: the argmax of `predict_scores`."""
    return predict_scores(model, image, class_embeds, original_size).argmax(dim=0)
