"""The training augmentation: detectron2's resize/crop/pad semantics, OpenCV's 8-bit HSV, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.training.augment import (
    AugmentConfig,
    _scale_shift,
    augment,
    color_aug_ssd,
    hsv8_to_rgb,
    pad_to,
    random_crop,
    resize_shortest_edge,
    rgb_to_hsv8,
)
from model.inference import resized_shape

OPENCV_FIXTURE = Path(__file__).parent / "data" / "train" / "opencv_hsv.npz"
NO_PHOTOMETRIC = AugmentConfig(brightness_delta=0.0, contrast_range=(1.0, 1.0), saturation_range=(1.0, 1.0), hue_delta=0)


def test_training_resize_size_follows_detectron2_rounding_and_cap():
    assert resized_shape(480, 640, 384, 1333) == (384, 512)
    assert resized_shape(640, 427, 384, 1333) == (576, 384)  # 640 * 384 / 427 = 575.55 -> 576
    # long side capped: 2000 * 384/100 = 7680 > 1333 -> scale 1333/7680; short side 66.65 -> 67
    assert resized_shape(100, 2000, 384, 1333) == (67, 1333)
    image, label = resize_shortest_edge(np.zeros((100, 2000, 3), np.uint8), np.zeros((100, 2000)), 384, 1333)
    assert image.shape == (67, 1333, 3) and label.shape == (67, 1333)


def test_label_resize_is_torch_nearest_and_image_resize_keeps_size():
    label = np.array([[0, 1, 2], [3, 4, 5]])
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    out_image, out_label = resize_shortest_edge(image, label, 4, 1333)
    assert out_image.shape == (4, 6, 3)
    np.testing.assert_array_equal(out_label, np.repeat(np.repeat(label, 2, axis=0), 2, axis=1))
    # (4, 2) -> (2, 1): torch nearest takes source index floor(i * scale): rows 0, 2 and column 0
    # (PIL's nearest would sample pixel centres: rows 1, 3 and column 1, giving [[3], [7]])
    tall = np.arange(8).reshape(4, 2)
    _, small = resize_shortest_edge(np.zeros((4, 2, 3), np.uint8), tall, 1, 1333)
    np.testing.assert_array_equal(small, [[0], [4]])


def test_random_crop_cuts_the_same_window_from_image_and_label():
    rng = np.random.default_rng(0)
    label = np.arange(50 * 60).reshape(50, 60)
    image = np.stack([label % 256, label // 256, np.zeros_like(label)], axis=-1).astype(np.uint8)
    for _ in range(5):
        crop_image, crop_label = random_crop(image, label, 32, rng)
        assert crop_label.shape == (32, 32)
        top, left = divmod(int(crop_label[0, 0]), 60)
        np.testing.assert_array_equal(crop_label, label[top : top + 32, left : left + 32])
        np.testing.assert_array_equal(crop_image, image[top : top + 32, left : left + 32])
    small_image, small_label = random_crop(image[:20], label[:20], 32, rng)
    assert small_label.shape == (20, 32)  # a side shorter than the crop is kept whole


def test_pad_to_puts_content_top_left_and_pads_with_128_and_ignore():
    image = np.full((2, 3, 3), 7, dtype=np.uint8)
    label = np.ones((2, 3), dtype=np.int64)
    padded_image, padded_label = pad_to(image, label, 4, 255)
    assert padded_image.shape == (4, 4, 3) and padded_label.shape == (4, 4)
    assert (padded_image[:2, :3] == 7).all() and (padded_label[:2, :3] == 1).all()
    assert (padded_image[2:] == 128).all() and (padded_image[:, 3:] == 128).all()
    assert (padded_label[2:] == 255).all() and (padded_label[:, 3:] == 255).all()


def test_rgb_to_hsv_matches_opencv_exactly():
    data = np.load(OPENCV_FIXTURE)
    np.testing.assert_array_equal(rgb_to_hsv8(data["rgb"][None])[0], data["rgb_to_hsv"])


def test_hsv_to_rgb_matches_opencv_within_one_level():
    data = np.load(OPENCV_FIXTURE)
    ours = hsv8_to_rgb(data["hsv"][None])[0].astype(int)
    diff = np.abs(ours - data["hsv_to_rgb"].astype(int))
    assert diff.max() <= 1  # float rounding in OpenCV's vectorised path differs on a few colours
    assert (diff == 0).all(axis=-1).mean() > 0.999


def test_convert_truncates_like_astype_uint8():
    values = np.array([[100, 250, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(_scale_shift(values, alpha=1.1), [[110, 255, 3]])
    np.testing.assert_array_equal(_scale_shift(values, alpha=0.5), [[50, 125, 1]])  # 1.5 -> 1
    np.testing.assert_array_equal(_scale_shift(values, beta=-10.7), [[89, 239, 0]])


def test_brightness_only_shifts_every_pixel_by_one_offset():
    config = AugmentConfig(contrast_range=(1.0, 1.0), saturation_range=(1.0, 1.0), hue_delta=0)
    grey = np.repeat(np.linspace(60, 190, 100).astype(np.uint8)[:, None, None], 3, axis=2)  # s = 0: HSV round trip exact
    shifts = set()
    for seed in range(12):
        out = color_aug_ssd(grey, config, np.random.default_rng(seed)).astype(int) - grey.astype(int)
        assert len(np.unique(out)) == 1 and abs(out.flat[0]) <= 32
        shifts.add(int(out.flat[0]))
    assert 0 in shifts and len(shifts) > 2  # applied with probability 1/2, with varying offsets


def test_augment_is_deterministic_per_seed_and_flips_image_and_label_together():
    label = np.random.default_rng(1).integers(0, 5, size=(384, 384))
    image = np.stack([label * 40, label * 20, np.full_like(label, 9)], axis=-1).astype(np.uint8)
    flipped = 0
    for seed in range(8):
        out_image, out_label = augment(image, label, NO_PHOTOMETRIC, np.random.default_rng(seed))
        again_image, again_label = augment(image, label, NO_PHOTOMETRIC, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_image, again_image)
        np.testing.assert_array_equal(out_label, again_label)
        assert out_image.shape == (384, 384, 3) and out_label.dtype == np.int64
        np.testing.assert_array_equal(out_image[..., 0], out_label * 40)
        flipped += int(np.array_equal(out_label, label[:, ::-1]))
        assert np.array_equal(out_label, label) or np.array_equal(out_label, label[:, ::-1])
    assert 0 < flipped < 8


def test_augment_pads_short_images_with_ignore():
    # 200 x 2000: the long-side cap gives 133 x 1333, so the 384 crop is 133 rows and is padded
    label = np.zeros((200, 2000), dtype=np.int64)
    out_image, out_label = augment(np.zeros((200, 2000, 3), np.uint8), label, NO_PHOTOMETRIC, np.random.default_rng(0))
    assert (out_label[:133] == 0).all() and (out_label[133:] == 255).all()
    assert (out_image[133:] == 128).all()


def test_augment_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="differ in size"):
        augment(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11)), AugmentConfig(), np.random.default_rng(0))
