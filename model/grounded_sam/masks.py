"""SAM mask logits for boxes, on transformers' `SamModel`, with segment_anything's `SamPredictor` steps.

`set_image` is `SamPredictor.set_image` (ResizeLongestSide to 1024 with PIL, (x - mean) / std on the
0-255 scale, zero padding to 1024 x 1024); `mask_logits` is `predict_torch(boxes=...,
multimask_output=False, return_logits=True)` (fork:98-109): boxes scaled into the resized image,
one mask per box, low-resolution logits resized to the padded input, cropped, resized to the image.
Boxes go through the decoder in chunks (each box is independent), so memory stays bounded.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from model.grounded_sam.configs import SAM_PIXEL_MEAN, SAM_PIXEL_STD

BOX_CHUNK = 16  # boxes per mask-decoder call


def longest_side_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """segment_anything `ResizeLongestSide.get_preprocess_shape`."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


class MaskPredictor:
    def __init__(self, model, chunk: int = BOX_CHUNK):
        self.model = model
        self.chunk = chunk
        self.image_size = int(model.config.vision_config.image_size)
        self.embeddings: Tensor | None = None
        self.original_size = self.input_size = (0, 0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def pixels(self, image: np.ndarray) -> Tensor:
        """(1, 3, S, S) float32: the resized, normalised, zero-padded RGB uint8 image."""
        height, width = longest_side_shape(*image.shape[:2], self.image_size)
        resized = image if (height, width) == image.shape[:2] else np.asarray(
            Image.fromarray(image).resize((width, height), Image.BILINEAR))
        x = torch.from_numpy(np.array(resized)).permute(2, 0, 1)[None].to(self.device)
        mean = torch.tensor(SAM_PIXEL_MEAN, device=self.device).view(-1, 1, 1)
        std = torch.tensor(SAM_PIXEL_STD, device=self.device).view(-1, 1, 1)
        x = (x - mean) / std
        return F.pad(x, (0, self.image_size - width, 0, self.image_size - height))

    def set_image(self, image: np.ndarray) -> None:
        self.original_size = image.shape[:2]
        self.input_size = longest_side_shape(*image.shape[:2], self.image_size)
        with torch.no_grad():
            self.embeddings = self.model.get_image_embeddings(self.pixels(image))

    def mask_logits(self, boxes: Tensor) -> Iterator[tuple[slice, Tensor]]:
        """(slice of boxes, their mask logits (n, H, W) at the image's size) per chunk of boxes in
        image pixels (x1, y1, x2, y2)."""
        assert self.embeddings is not None, "set_image() comes first"
        (old_h, old_w), (new_h, new_w) = self.original_size, self.input_size
        scaled = boxes.reshape(-1, 2, 2).to(torch.float).clone()
        scaled[..., 0] = scaled[..., 0] * (new_w / old_w)
        scaled[..., 1] = scaled[..., 1] * (new_h / old_h)
        scaled = scaled.reshape(-1, 4)
        for first in range(0, scaled.shape[0], self.chunk):
            part = scaled[first : first + self.chunk].to(self.device)
            with torch.no_grad():
                out = self.model(image_embeddings=self.embeddings, input_boxes=part[None], multimask_output=False)
            low = out.pred_masks[0, :, 0:1].float()  # (n, 1, 256, 256)
            masks = F.interpolate(low, (self.image_size, self.image_size), mode="bilinear", align_corners=False)
            masks = masks[..., :new_h, :new_w]
            masks = F.interpolate(masks, self.original_size, mode="bilinear", align_corners=False)
            yield slice(first, first + part.shape[0]), masks[:, 0]
