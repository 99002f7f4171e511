"""The official training augmentation (detectron2's `MaskFormerSemanticDatasetMapper`), without detectron2.

For one image (H, W, 3) uint8 RGB and its label (H, W) of train IDs, in this order:

1. `resize_shortest_edge`: short side to 384 (long side capped at 1333); the image with PIL
   bilinear, the label with torch nearest (detectron2 resizes non-uint8 arrays with
   `F.interpolate`, and the mapper reads labels as float64);
2. `random_crop`: a uniformly placed crop of at most 384x384 (`RandomCrop("absolute")`; the
   category-area constraint is off at `SINGLE_CATEGORY_MAX_AREA = 1.0`);
3. `color_aug_ssd`: detectron2's `ColorAugSSDTransform` (brightness ±32, then contrast,
   saturation [0.5, 1.5] and hue ±18 in one of two orders, each step applied with probability 1/2);
4. horizontal flip with probability 1/2;
5. `pad_to`: pad right/bottom to 384x384, image with 128, label with the ignore value 255.

All randomness comes from the `numpy.random.Generator` passed in, so a sample is a pure function of
its seed (which is what makes training resumable and independent of data-loader workers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model.inference import resized_shape  # detectron2's ResizeShortestEdge output size, shared with testing

IMAGE_PAD_VALUE = 128  # the mapper pads the 0-255 image with 128 before CLIP normalisation


@dataclass(frozen=True)
class AugmentConfig:
    """The official values (configs/config.yaml and detectron2 defaults)."""

    short_side: int = 384  # INPUT.MIN_SIZE_TRAIN (384,)
    max_long_side: int = 1333  # INPUT.MAX_SIZE_TRAIN, detectron2 default
    crop_size: int = 384  # INPUT.CROP.SIZE (absolute) = INPUT.SIZE_DIVISIBILITY
    brightness_delta: float = 32.0
    contrast_range: tuple[float, float] = (0.5, 1.5)
    saturation_range: tuple[float, float] = (0.5, 1.5)
    hue_delta: int = 18  # in OpenCV's 8-bit hue units (0-179, i.e. 2 degrees each)
    flip_probability: float = 0.5
    ignore_index: int = 255


def resize_shortest_edge(
    image: np.ndarray, label: np.ndarray, short_side: int, max_long_side: int
) -> tuple[np.ndarray, np.ndarray]:
    height, width = label.shape
    new_h, new_w = resized_shape(height, width, short_side, max_long_side)
    if (new_h, new_w) == (height, width):
        return image, label
    image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    label_t = torch.from_numpy(np.ascontiguousarray(label, dtype=np.float64))[None, None]
    label = F.interpolate(label_t, size=(new_h, new_w), mode="nearest")[0, 0].numpy().astype(np.int64)
    return image, label


def random_crop(
    image: np.ndarray, label: np.ndarray, crop_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    height, width = label.shape
    crop_h, crop_w = min(crop_size, height), min(crop_size, width)
    top = int(rng.integers(height - crop_h + 1))
    left = int(rng.integers(width - crop_w + 1))
    return image[top : top + crop_h, left : left + crop_w], label[top : top + crop_h, left : left + crop_w]


def _scale_shift(values: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """`ColorAugSSDTransform.convert`: float32 affine map, clip to [0, 255], truncate to uint8."""
    return np.clip(values.astype(np.float32) * np.float32(alpha) + np.float32(beta), 0, 255).astype(np.uint8)


# OpenCV's 8-bit RGB->HSV uses fixed-point reciprocal tables with a 12-bit shift.
_HSV_SHIFT = 12
_DIVISORS = np.arange(256, dtype=np.float64)
with np.errstate(divide="ignore"):
    _SAT_TABLE = np.where(_DIVISORS > 0, np.round((255 << _HSV_SHIFT) / _DIVISORS), 0).astype(np.int64)
    _HUE_TABLE = np.where(_DIVISORS > 0, np.round((180 << _HSV_SHIFT) / (6.0 * _DIVISORS)), 0).astype(np.int64)


def rgb_to_hsv8(image: np.ndarray) -> np.ndarray:
    """OpenCV's `COLOR_RGB2HSV` for uint8: H in [0, 180), S and V in [0, 255]."""
    rgb = image.astype(np.int64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = rgb.max(axis=-1)
    diff = value - rgb.min(axis=-1)
    half = 1 << (_HSV_SHIFT - 1)
    sat = (diff * _SAT_TABLE[value] + half) >> _HSV_SHIFT
    hue = np.where(value == r, g - b, np.where(value == g, b - r + 2 * diff, r - g + 4 * diff))
    hue = (hue * _HUE_TABLE[diff] + half) >> _HSV_SHIFT
    hue = np.where(hue < 0, hue + 180, hue)
    return np.stack([hue, sat, value], axis=-1).astype(np.uint8)


# Which of (v, p, q, t) is R, G and B in each of the six hue sectors (OpenCV's table, RGB order).
_SECTOR_RGB = np.array([[0, 3, 1], [2, 0, 1], [1, 0, 3], [1, 2, 0], [3, 1, 0], [0, 1, 2]])


def hsv8_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """OpenCV's `COLOR_HSV2RGB` for uint8 (float32 arithmetic, round to nearest)."""
    hue = hsv[..., 0].astype(np.float32) * np.float32(6.0 / 180.0)
    sat = hsv[..., 1].astype(np.float32) * np.float32(1.0 / 255.0)
    val = hsv[..., 2].astype(np.float32) * np.float32(1.0 / 255.0)
    hue = np.where(hue >= 6, hue - 6, hue)
    sector = np.floor(hue)
    frac = hue - sector
    sector = sector.astype(np.int64)
    table = np.stack([val, val * (1 - sat), val * (1 - sat * frac), val * (1 - sat * (1 - frac))], axis=-1)
    rgb = np.take_along_axis(table, _SECTOR_RGB[sector], axis=-1)
    rgb = np.where((sat == 0)[..., None], val[..., None], rgb)
    return np.clip(np.rint(rgb * np.float32(255.0)), 0, 255).astype(np.uint8)


def color_aug_ssd(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """detectron2's `ColorAugSSDTransform` on an RGB uint8 image."""

    def brightness(img):
        if rng.integers(2):
            return _scale_shift(img, beta=rng.uniform(-config.brightness_delta, config.brightness_delta))
        return img

    def contrast(img):
        if rng.integers(2):
            return _scale_shift(img, alpha=rng.uniform(*config.contrast_range))
        return img

    def saturation(img):
        if rng.integers(2):
            hsv = rgb_to_hsv8(img)
            hsv[..., 1] = _scale_shift(hsv[..., 1], alpha=rng.uniform(*config.saturation_range))
            return hsv8_to_rgb(hsv)
        return img

    def hue(img):
        if rng.integers(2):
            hsv = rgb_to_hsv8(img)
            shift = int(rng.integers(-config.hue_delta, config.hue_delta + 1))
            hsv[..., 0] = (hsv[..., 0].astype(np.int64) + shift) % 180
            return hsv8_to_rgb(hsv)
        return img

    image = brightness(image)
    steps = (contrast, saturation, hue) if rng.integers(2) else (saturation, hue, contrast)
    for step in steps:
        image = step(image)
    return image


def pad_to(
    image: np.ndarray, label: np.ndarray, size: int, ignore_index: int
) -> tuple[np.ndarray, np.ndarray]:
    height, width = label.shape
    if (height, width) == (size, size):
        return image, label
    padded_image = np.full((size, size, 3), IMAGE_PAD_VALUE, dtype=np.uint8)
    padded_label = np.full((size, size), ignore_index, dtype=label.dtype)
    padded_image[:height, :width] = image
    padded_label[:height, :width] = label
    return padded_image, padded_label


def augment(
    image: np.ndarray, label: np.ndarray, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The full training pipeline: (crop, crop) image uint8 RGB and int64 label."""
    if image.shape[:2] != label.shape:
        raise ValueError(f"image {image.shape[:2]} and label {label.shape} differ in size")
    image, label = resize_shortest_edge(image, label, config.short_side, config.max_long_side)
    image, label = random_crop(image, label, config.crop_size, rng)
    image = color_aug_ssd(image, config, rng)
    if rng.random() < config.flip_probability:
        image, label = image[:, ::-1], label[:, ::-1]
    image, label = pad_to(image, label.astype(np.int64), config.crop_size, config.ignore_index)
    return np.array(image, order="C"), np.array(label, order="C")  # contiguous, writable copies for torch
