"""ZegFormer's test protocol (as the MESS fork evaluates it): one whole image per forward.

1. the uint8 image is resized so its short side is 640 (long side at most 2560), PIL bilinear
   (detectron2 `ResizeShortestEdge`, `model.inference.resize_short_side`);
2. MaskFormer on the ImageNet-normalised image, zero-padded to a multiple of 32: segment logits
   (Q, T + 1) and mask logits, upsampled to the padded size;
3. CLIP on the masked box crops of the CLIP-normalised, zero-padded image (`model.zegformer.crops`):
   crop logits (Q, T);
4. class logits = [crop logits; segment background logit], softmax, background dropped; scores =
   sum over queries of probs x sigmoid mask, cropped to the resized image, bilinear to the original.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model.inference import resize_short_side
from model.maskformer.inference import class_probabilities, normalized_padded, resize_scores, semantic_scores
from model.zegformer.crops import masked_box_crops
from model.zegformer.modeling import ZegFormer


def prepare_image(model: ZegFormer, image: np.ndarray) -> np.ndarray:
    """Step 1 (cheap; runs in DataLoader workers)."""
    return resize_short_side(image, model.config.test_short_side, model.config.test_max_side)


def crop_logits(model: ZegFormer, clip_image: Tensor, binary: Tensor, clip_text: Tensor) -> Tensor:
    """(Q, T): exp(CLIP logit scale) x cos(crop embedding, class text), `images_per_chunk` crops at a
    time; crops cast to CLIP's dtype, the product in it (the official float16 one), the result in the
    model's dtype."""
    config = model.config
    embeds = []
    for chunk in binary.split(config.images_per_chunk):
        crops = masked_box_crops(clip_image, chunk, config.crop_size)
        embeds.append(F.normalize(model.clip.encode_image(crops.to(model.clip_dtype)), dim=-1))
    embeds = torch.cat(embeds)
    scaled = model.clip.logit_scale.exp().to(embeds.dtype) * embeds
    return (scaled @ clip_text.to(scaled).T).to(model.dtype)


@torch.no_grad()
def predict_parts(model: ZegFormer, image: np.ndarray, class_embeds: Tensor) -> dict[str, Tensor]:
    """Steps 2-4 but the final resize, with the intermediates: `segment_logits` (Q, T + 1),
    `mask_logits` (Q, h, w) at 1/4, `crop_logits` (Q, T), `class_logits` (Q, T + 1), `scores`
    (T, H, W) at the resized image's size. `class_embeds` is `model.class_embeddings(names)`."""
    config = model.config
    mf = config.maskformer
    x = normalized_padded(image, mf.pixel_mean, mf.pixel_std, mf.size_divisibility, model.dtype, model.device)
    clip_image = normalized_padded(image, config.clip_pixel_mean, config.clip_pixel_std, mf.size_divisibility,
                                   model.dtype, model.device)[0]
    segment_logits, masks = model(x, class_embeds[0])
    padded = F.interpolate(masks, size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    mask_probs = padded.sigmoid()
    crops = crop_logits(model, clip_image, mask_probs > config.mask_threshold, class_embeds[1])
    class_logits = torch.cat([crops, segment_logits[0, :, -1:]], dim=1)
    h, w = image.shape[:2]
    scores = semantic_scores(class_probabilities(class_logits), mask_probs)[:, :h, :w]
    return {"segment_logits": segment_logits[0], "mask_logits": masks[0], "crop_logits": crops,
            "class_logits": class_logits, "scores": scores}


def predict_scores(model: ZegFormer, image: np.ndarray, class_embeds: Tensor, original_size: tuple[int, int]) -> Tensor:
    """Semantic scores (T, H, W) at the original size for one image prepared by `prepare_image`."""
    return resize_scores(predict_parts(model, image, class_embeds)["scores"], original_size)


def predict_labels(model: ZegFormer, image: np.ndarray, class_embeds: Tensor, original_size: tuple[int, int]) -> Tensor:
    """Class indices (H, W) int64: the argmax of `predict_scores`."""
    return predict_scores(model, image, class_embeds, original_size).argmax(dim=0)
