"""SAN's test protocol (as the MESS fork evaluates it): one whole image per forward.

1. the uint8 image is resized so its short side is 640 (long side at most 2560) with PIL bilinear
   (detectron2's `ResizeShortestEdge`, `model.inference.resize_short_side`);
2. it is normalised with the CLIP mean/std (0-255 scale) and zero-padded at the bottom and right
   to a multiple of 32 (`ImageList.from_tensors`, one image per batch);
3. the model gives mask logits at 1/16 of the padded size and class logits per mask;
4. mask logits are resized (bilinear, align_corners=False) to the padded size, cropped to the
   resized image, resized to the original size (`sem_seg_postprocess`), and only then passed
   through a sigmoid (SEM_SEG_POSTPROCESS_BEFORE_INFERENCE); scores (T, H, W) = sum over masks
   of softmax(class logits)[:T] x sigmoid(mask).

Step 4 is linear per axis up to the sigmoid, so both resizes are folded into one (H, h) and one
(W, w) matrix built from `F.interpolate` itself; the scores are then composed a band of rows at a
time, so the (100, H, W) mask logits at the original size are never held at once.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from model.inference import resize_short_side
from model.san.modeling import SAN

BAND_BYTES = 256 * 2**20  # mask logits + scores of one band of output rows


def prepare_image(model: SAN, image: np.ndarray) -> np.ndarray:
    """Step 1 (cheap; runs in DataLoader workers)."""
    return resize_short_side(image, model.config.test_short_side, model.config.test_max_side)


def resize_matrix(src: int, dst: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """(dst, src): the weights of a 1-D bilinear resize (align_corners=False) from src to dst."""
    eye = torch.eye(src, dtype=dtype, device=device)[None]
    return F.interpolate(eye, size=dst, mode="linear", align_corners=False)[0].T


def postprocess_matrix(low: int, padded: int, resized: int, original: int, dtype: torch.dtype,
                       device: torch.device) -> Tensor:
    """(original, low): resize low -> padded, crop to `resized`, resize -> original, along one axis."""
    up = resize_matrix(low, padded, dtype, device)[:resized]
    return resize_matrix(resized, original, dtype, device) @ up


def normalized_padded(model: SAN, image: np.ndarray) -> Tensor:
    """Step 2: a resized uint8 image (H, W, 3) -> (1, 3, H', W') normalised, zero-padded input."""
    config = model.config
    pixels = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(model.device)
    # float32 values whatever the model's dtype: the official model holds them as float32 buffers
    mean = torch.tensor(config.pixel_mean, dtype=torch.float32).to(model.device, model.dtype).view(3, 1, 1)
    std = torch.tensor(config.pixel_std, dtype=torch.float32).to(model.device, model.dtype).view(3, 1, 1)
    x = (pixels.to(model.dtype) - mean) / std
    div = config.size_divisibility
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % div, 0, -h % div))[None]


@torch.no_grad()
def mask_predictions(model: SAN, image: np.ndarray, classifier: Tensor) -> tuple[Tensor, Tensor]:
    """Steps 2-3 for one resized image: class probabilities (Q, T) (background dropped after the
    softmax) and mask logits (Q, h, w) at 1/16 of the padded size."""
    logits, masks = model(normalized_padded(model, image), classifier)
    return F.softmax(logits[0], dim=-1)[:, :-1], masks[0]


def _bands(model: SAN, image: np.ndarray, classifier: Tensor, original_size: tuple[int, int]):
    """Yield (row slice, scores (T, rows, W)) covering the original size top to bottom."""
    probs, masks = mask_predictions(model, image, classifier)
    queries, low_h, low_w = masks.shape
    div = model.config.size_divisibility
    resized_h, resized_w = image.shape[:2]
    height, width = original_size
    rows_h = postprocess_matrix(low_h, resized_h + -resized_h % div, resized_h, height, masks.dtype, masks.device)
    cols_w = postprocess_matrix(low_w, resized_w + -resized_w % div, resized_w, width, masks.dtype, masks.device)
    wide = torch.einsum("qhw,xw->qhx", masks, cols_w)  # (Q, h, W)
    per_row = (queries + probs.shape[1]) * width * masks.element_size()
    band = max(1, BAND_BYTES // per_row)
    for start in range(0, height, band):
        rows = slice(start, min(height, start + band))
        mask_logits = torch.einsum("yh,qhx->qyx", rows_h[rows], wide)
        yield rows, torch.einsum("qc,qyx->cyx", probs, mask_logits.sigmoid())


def predict_scores(model: SAN, image: np.ndarray, classifier: Tensor, original_size: tuple[int, int]) -> Tensor:
    """Semantic scores (T, H, W) at the original size for one image prepared by `prepare_image`."""
    height, width = original_size
    out = torch.empty(classifier.shape[0] - 1, height, width, dtype=model.dtype, device=model.device)
    for rows, scores in _bands(model, image, classifier, original_size):
        out[:, rows] = scores
    return out


def predict_labels(model: SAN, image: np.ndarray, classifier: Tensor, original_size: tuple[int, int]) -> Tensor:
    """Class indices (H, W) int64: the argmax of `predict_scores`, computed band by band."""
    height, width = original_size
    labels = torch.empty(height, width, dtype=torch.int64, device=model.device)
    for rows, scores in _bands(model, image, classifier, original_size):
        labels[rows] = scores.argmax(dim=0)
    return labels
