"""GroundingDINO boxes for a list of class names, on transformers' `GroundingDinoForObjectDetection`.

The image and text handling are the official `groundingdino.util.inference.Model.predict_with_classes`
(31aa788, what the MESS fork ran), written out here: the transformers processor is not used, since
its resize and tokenizer call differ in small ways from the official ones (README, "Grounded-SAM").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from model.grounded_sam import glue
from model.grounded_sam.configs import DETECTOR_MAX_SIDE, DETECTOR_PIXEL_MEAN, DETECTOR_PIXEL_STD, DETECTOR_SHORT_SIDE


@dataclass
class Detections:
    """Boxes of one image in its pixels (x1, y1, x2, y2), their confidences and classes (None: the
    phrase named no class)."""

    boxes: Tensor  # (n, 4) float32
    confidences: Tensor  # (n,) float32
    class_ids: list[int | None]
    phrases: list[str]

    @staticmethod
    def concat(parts: Sequence["Detections"]) -> "Detections":
        return Detections(
            torch.cat([p.boxes for p in parts]) if parts else torch.zeros(0, 4),
            torch.cat([p.confidences for p in parts]) if parts else torch.zeros(0),
            [c for p in parts for c in p.class_ids],
            [t for p in parts for t in p.phrases],
        )


def detector_input_size(height: int, width: int, size: int = DETECTOR_SHORT_SIDE,
                        max_size: int = DETECTOR_MAX_SIDE) -> tuple[int, int]:
    """(h, w) of `RandomResize([800], max_size=1333)` (gdino datasets/transforms.py:90-108)."""
    low, high = float(min(width, height)), float(max(width, height))
    if high / low * size > max_size:
        size = int(round(max_size * low / high))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def detector_pixels(image: np.ndarray) -> Tensor:
    """(1, 3, h, w) float32 input of an RGB uint8 image, as `Model.preprocess_image` made it from what
    the fork passed: the fork hands its RGB array to a method that expects BGR and converts it
    with cv2.COLOR_BGR2RGB (fork:124, gdino util/inference.py:220), so the detector sees the
    channels reversed. Then the PIL bilinear resize, /255 and the ImageNet mean and std."""
    swapped = np.ascontiguousarray(image[:, :, ::-1])
    height, width = detector_input_size(*image.shape[:2])
    pil = Image.fromarray(swapped)
    resized = np.asarray(pil.resize((width, height), Image.BILINEAR))
    x = torch.from_numpy(resized.copy()).permute(2, 0, 1).to(torch.float32).div(255)
    mean = torch.tensor(DETECTOR_PIXEL_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(DETECTOR_PIXEL_STD, dtype=torch.float32)[:, None, None]
    return ((x - mean) / std)[None]


class Detector:
    """A GroundingDINO model and its BERT tokenizer, run per caption batch as the fork does."""

    def __init__(self, model, tokenizer, box_threshold: float = glue.BOX_THRESHOLD,
                 text_threshold: float = glue.TEXT_THRESHOLD, class_batch: int = glue.CLASS_BATCH):
        self.model = model
        self.tokenizer = tokenizer
        self.box_threshold = box_threshold
        self.text_threshold = text_threshold
        self.class_batch = class_batch

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def raw_outputs(self, pixels: Tensor, text: str) -> tuple[Tensor, Tensor, list[str]]:
        """Sigmoid token probabilities (nq, max_text_len), boxes (nq, 4) cxcywh in 0-1, and the caption's
        tokens. The model tokenizes `[caption]` with padding="longest" and no truncation
        (gdino models/GroundingDINO/groundingdino.py:234); positions past 256 are cut by the model."""
        encoded = self.tokenizer([text], padding="longest", return_tensors="pt")
        tokens = self.tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist())
        inputs = {k: v.to(self.device) for k, v in encoded.items()}
        with torch.no_grad():
            out = self.model(pixel_values=pixels.to(self.device), **inputs)
        return out.logits[0].float().cpu().sigmoid(), out.pred_boxes[0].float().cpu(), tokens

    def detect(self, image: np.ndarray, class_names: Sequence[str]) -> Detections:
        """Every box above the box threshold for these names, in the image's pixels (fork:111-130)."""
        pixels = detector_pixels(image)
        height, width = image.shape[:2]
        parts = []
        for batch_index, names in enumerate(glue.class_batches(class_names, self.class_batch)):
            probs, boxes, tokens = self.raw_outputs(pixels, glue.caption(names))
            keep = glue.select_boxes(probs, self.box_threshold)
            probs, boxes = probs[keep], boxes[keep]
            phrases = [glue.phrase(p, tokens, self.text_threshold) for p in probs]
            offset = batch_index * self.class_batch  # fork:121
            ids = [None if (c := glue.phrase_class(t, names)) is None else c + offset for t in phrases]
            parts.append(Detections(glue.boxes_to_pixels(boxes, height, width), probs.max(dim=1).values, ids, phrases))
        return Detections.concat(parts)
