"""The Random lower bound of the MESS table as a segmenter (see `catseg_bench.random_baseline`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.registry import register_segmenter

if TYPE_CHECKING:
    import numpy as np


@register_segmenter("random")
class RandomSegmenter:
    """Random lower bound: the expected scores of uniform predictions, from ground-truth frequencies."""

    model_id = "random"
    checkpoint_sha256 = None

    def settings(self) -> dict[str, Any]:
        return {"predictions": "uniform over the classes (expected confusion matrix)"}

    def expected_confusion(self, label_pixel_counts: np.ndarray) -> np.ndarray:
        from catseg_bench.random_baseline import uniform_prediction_confusion

        return uniform_prediction_confusion(label_pixel_counts)
