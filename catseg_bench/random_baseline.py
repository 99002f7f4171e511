"""The Random lower bound of the MESS table, computed from the ground truth.

MESS defines Random as "the expected mIoU from predictions with uniform class distribution".
With p_c the dataset-level fraction of labelled pixels of class c (ignore pixels excluded) and K
classes, a uniform prediction gives per class

    IoU_c = p_c / (1 + (K - 1) · p_c)

and every class is predicted somewhere, so a class absent from the ground truth counts with IoU 0.

Rather than sampling predictions, the result file holds the *expected* confusion matrix of uniform
predictions scaled by K, which is integral: ``C[p, g] = n_g`` for every predicted class p (and the
ignore pixels in column K likewise). All MESS metrics are ratios, so the scale does not change them,
and scoring this matrix with :func:`catseg_bench.metrics.compute_scores` yields exactly the closed
form above (and the matching CoI-mIoU, mACC = pACC = 100/K, ...).
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from catseg_bench.metrics import ConfusionMatrix


class LabelSource(Protocol):
    """What the random baseline needs of an evaluation set (catseg_bench.data datasets fit)."""

    def __len__(self) -> int: ...

    def read_label(self, index: int) -> np.ndarray: ...

    def label_location(self, index: int) -> str:
        """How errors name the label (its file, or its row of an export)."""


def label_pixels_per_image(
    dataset: LabelSource, num_classes: int, ignore_index: int, count: int | None = None,
    each_label: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Per label of the set's first `count` (all by default): its pixel count per class, plus the
    ignore count last ((N, K+1)). ``each_label(index, label)`` sees every decoded label on the way
    (the runner digests them), so the labels are read once.

    Labels are checked as in scoring: a value outside the classes and ignore names the file.
    """
    rows = []
    for index in range(len(dataset) if count is None else min(count, len(dataset))):
        label = dataset.read_label(index)
        if each_label is not None:
            each_label(index, label)
        counter = ConfusionMatrix(num_classes, ignore_index)
        counter.update(np.zeros(label.shape, dtype=np.uint8), label, image=dataset.label_location(index))
        rows.append(counter.numpy().sum(axis=0))
    return np.stack(rows) if rows else np.zeros((0, num_classes + 1), dtype=np.int64)


def count_label_pixels(
    dataset: LabelSource, num_classes: int, ignore_index: int, count: int | None = None
) -> np.ndarray:
    """Pixel count per class over the set's first `count` labels (all by default), plus the ignore
    count last (length K+1): the sum of :func:`label_pixels_per_image`."""
    return label_pixels_per_image(dataset, num_classes, ignore_index, count).sum(axis=0)


def random_iou(class_counts: np.ndarray) -> np.ndarray:
    """The closed form p_c / (1 + (K-1) p_c) per class, from per-class pixel counts (no ignore)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    k = counts.size
    p = counts / counts.sum()
    return p / (1.0 + (k - 1) * p)


def uniform_prediction_confusion(pixel_counts: np.ndarray) -> np.ndarray:
    """K × the expected (K+1)×(K+1) ``[pred, gt]`` matrix of uniform predictions.

    ``pixel_counts`` has K+1 entries: the per-class counts, then the ignore count.
    """
    counts = np.asarray(pixel_counts, dtype=np.int64)
    k = counts.size - 1
    confusion = np.zeros((k + 1, k + 1), dtype=np.int64)
    confusion[:k, :] = counts[np.newaxis, :]
    return confusion
