"""What the runner evaluates: the Segmenter protocol, and the built-in segmenters.

A segmenter turns a batch of images into class-index maps. Anything with these members can be
evaluated (see README, "Evaluate your own model"); register it with
``@catseg_bench.registry.register_segmenter("name")``, an entry point in the group
``catseg_bench.segmenters``, or pass ``--model module:Class``.

Two optional capabilities replace `predict` for segmenters that do not run on images:

- ``read_prediction(name) -> ndarray`` and ``prediction_location(name) -> str``: the prediction of
  the image with this key is read from somewhere (a folder of PNGs), and messages name where; the
  runner never decodes the images (`predictions`).
- ``expected_confusion(label_pixel_counts) -> ndarray``: the set's confusion matrix follows from
  its ground-truth pixel counts alone (the Random lower bound, `random`).

A segmenter with per-class scores may define ``predict_scores(images, original_sizes) -> list of
(T, H, W) float tensors`` (same inputs as `predict`; the labels are their argmax): `bench predict
--probs` writes them (CAT-Seg: sigmoid probabilities; SAN: mask-weighted class scores). A class may give
a static ``weights_licences(**fixed_args) -> dict[str, str]`` (tag -> licence of the weights' release)
that `bench models list` shows beside its weights tags.

Any segmenter may also define ``begin_eval_set(eval_set, names)``: called before a set's first image
with the keys of the images to score (a prediction reader checks they are all there); and its class a
static ``weights_tags(**fixed_args) -> list[str]`` (default first) that `bench models list` shows.
This package imports no model code: each built-in imports torch only when it is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch

PROTOCOL_MEMBERS = ("model_id", "checkpoint_sha256", "settings", "set_classes", "prepare_image", "predict")


class Segmenter(Protocol):
    model_id: str  # the results folder and the row label
    checkpoint_sha256: str | None  # of the weights file; None when there is none

    def settings(self) -> dict[str, Any]:
        """Everything about inference that changes the numbers (part of a result's identity)."""

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        """Prepare for one evaluation set's vocabulary (e.g. embed the class names once)."""

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        """Per-image CPU work (e.g. the test-time resize); runs in the DataLoader workers."""

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Class indices (H, W) int64 for each prepared image, at its original size."""


def check_precision(precision: str) -> None:
    """A BenchError naming the choices unless `precision` is one `bench run --precision` takes."""
    from catseg_bench.errors import BenchError
    from model.common.device import PRECISIONS

    if precision not in PRECISIONS:
        raise BenchError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")


def missing_members(segmenter: Any) -> list[str]:
    """The protocol members `segmenter` lacks (a prediction reader or an analytic baseline needs no
    image members)."""
    required = list(PROTOCOL_MEMBERS)
    if is_prediction_reader(segmenter) or is_analytic(segmenter):
        required = ["model_id", "checkpoint_sha256", "settings"]
    return [name for name in required if not hasattr(segmenter, name)]


def is_prediction_reader(segmenter: Any) -> bool:
    return callable(getattr(segmenter, "read_prediction", None)) and callable(getattr(segmenter, "prediction_location", None))


def is_analytic(segmenter: Any) -> bool:
    return callable(getattr(segmenter, "expected_confusion", None))


def has_scores(segmenter: Any) -> bool:
    """True when a segmenter (or its class) gives per-class scores (`predict_scores`)."""
    return callable(getattr(segmenter, "predict_scores", None))


def is_untrained(segmenter: Any) -> bool:
    """True when the segmenter says it runs untrained (random) weights: such rows are labelled so."""
    return bool(getattr(segmenter, "untrained", False))
