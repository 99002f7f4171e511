"""A training-free CLIP segmenter: text embeddings, resize, windows, softmax, argmax.

Inference for one image, as the official mmseg-based code runs it:

1. `resize_for_method`: the uint8 image is rescaled (keep ratio) so that its short side is
   `short_side` unless the long side would pass `long_side`, exactly as the official test
   pipelines' `Resize(keep_ratio=True)` does through mmcv `imrescale`: sizes `int(x * scale + 0.5)`,
   pixels by OpenCV's `cv2.resize(..., INTER_LINEAR)` on the uint8 image (its fixed-point
   bilinear; PyTorch's float bilinear differs by one grey level on ~12 % of values).
2. the float image is normalised with the method's mean/std (0-255 scale);
3. each window (or the whole image) gives patch embeddings; their cosine similarity with the
   class embeddings is resized bilinearly to the window, windows are averaged
   (`model.sliding.slide_logits`);
4. the logits are resized bilinearly to the original size (then refined by PAMR when
   `pamr_steps` > 0, with the normalised image resized to that size), multiplied by `logit_scale` and
   soft-maxed over classes; the label is the argmax (class 0 where the top probability is below
   `prob_threshold`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.clip_towers import encode_prompts
from model.sliding import slide_logits
from model.training_free.dense import check_tower, patch_embeddings
from model.training_free.methods import MethodConfig
from model.training_free.pamr import pamr
from model.training_free.templates import template_set


def rescaled_shape(height: int, width: int, short_side: int, long_side: int) -> tuple[int, int]:
    """mmcv `rescale_size` with keep_ratio: (new_height, new_width)."""
    scale = min(long_side / max(height, width), short_side / min(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_for_method(image: np.ndarray, method: MethodConfig) -> np.ndarray:
    """The test-time resize of an RGB uint8 image (H, W, 3); cheap enough for DataLoader workers."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    height, width = rescaled_shape(*image.shape[:2], method.short_side, method.long_side)
    if (height, width) == image.shape[:2]:
        return image
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_LINEAR)


def _center_padding(height: int, width: int, patch: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding to a multiple of the patch size, split evenly."""
    pad_w, pad_h = (-width) % patch, (-height) % patch
    return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2


class TrainingFreeCLIP(nn.Module):
    """An open_clip CLIP run by one training-free method (`MethodConfig`)."""

    def __init__(self, clip: nn.Module, tokenizer, method: MethodConfig):
        super().__init__()
        check_tower(clip.visual)
        self.clip = clip
        self.tokenizer = tokenizer
        self.method = method
        self.templates = template_set(method.templates)
        self.register_buffer("pixel_mean", torch.tensor(method.pixel_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(method.pixel_std).view(1, 3, 1, 1), persistent=False)

    @property
    def patch_size(self) -> int:
        return int(self.clip.visual.conv1.kernel_size[0])

    @torch.no_grad()
    def encode_classes(self, class_names: list[str]) -> Tensor:
        """(K, C) unit class embeddings: the normalised mean of the normalised prompt embeddings."""
        device = self.pixel_mean.device
        embeds = []
        for name in class_names:
            tokens = self.tokenizer([template.replace("{}", name) for template in self.templates]).to(device)
            prompts = encode_prompts(self.clip, tokens).float()
            prompts = prompts / prompts.norm(dim=-1, keepdim=True)
            mean = prompts.mean(dim=0)
            embeds.append(mean / mean.norm())
        return torch.stack(embeds)

    def window_logits(self, window: Tensor, class_embeds: Tensor) -> Tensor:
        """(B, 3, h, w) normalised window -> (B, K, h, w) cosine similarities at the window's size."""
        height, width = window.shape[-2:]
        padding = self.method.window_padding
        pad = (0, 0, 0, 0)
        if padding == "center":
            pad = _center_padding(height, width, self.patch_size)
        elif padding == "corner":
            pad = (0, (-width) % self.patch_size, 0, (-height) % self.patch_size)
        if any(pad):
            window = F.pad(window, pad)
        feats = patch_embeddings(self.clip.visual, window, self.method).float()
        feats = feats / feats.norm(dim=1, keepdim=True)
        logits = torch.einsum("bchw,kc->bkhw", feats, class_embeds)
        if padding == "center" and any(pad):
            logits = F.interpolate(logits, size=window.shape[-2:], mode="bilinear", align_corners=False)
            return logits[:, :, pad[2] : pad[2] + height, pad[0] : pad[0] + width]
        return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)

    def normalize(self, images: Tensor) -> Tensor:
        return (images - self.pixel_mean) / self.pixel_std

    @torch.no_grad()
    def image_logits(self, image: np.ndarray, class_embeds: Tensor, original_size: tuple[int, int]) -> Tensor:
        """(K, H, W) cosine logits (PAMR-refined when enabled) at the original size for one resized uint8 image."""
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.pixel_mean.device)
        x = self.normalize(x.permute(2, 0, 1)[None].float())

        def segment(window: Tensor) -> Tensor:
            return self.window_logits(window, class_embeds)

        if self.method.crop > 0:
            logits = slide_logits(x, segment, self.method.crop, self.method.stride)
        else:
            logits = segment(x)
        logits = F.interpolate(logits, size=tuple(original_size), mode="bilinear", align_corners=False)
        if self.method.pamr_steps > 0:
            image_at_size = F.interpolate(x, size=tuple(original_size), mode="bilinear", align_corners=False)
            logits = pamr(image_at_size, logits, self.method.pamr_steps, self.method.pamr_dilations)
        return logits[0]

    def probabilities(self, logits: Tensor) -> Tensor:
        return (logits * self.method.logit_scale).softmax(dim=0)

    def labels(self, probs: Tensor) -> Tensor:
        labels = probs.argmax(dim=0)
        if self.method.prob_threshold > 0:
            labels[probs.max(dim=0).values < self.method.prob_threshold] = 0
        return labels
