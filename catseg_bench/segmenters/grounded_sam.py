"""Grounded-SAM (`grounded-sam-b`, `grounded-sam-l`): GroundingDINO boxes -> SAM masks -> a semantic map.

The MESS fork's glue (`model.grounded_sam.glue`, README "Grounded-SAM"): the image resized to a long
side of 1024, class names sent to GroundingDINO 50 at a time, each box's phrase matched back to a
class name, per class the maximum of SAM mask logit x box confidence, and pixels no box scores
positively set to the set's background class (`background_index` of its spec; a set without one
leaves them to the arg-max of the other scores, as MESS's background_class 255 did).
Needs the `grounded-sam` extra (transformers); importing this module loads neither torch nor it
(`model.grounded_sam.configs` is plain data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.errors import BenchError
from catseg_bench.registry import register_segmenter
from model.grounded_sam.configs import CONFIGS

if TYPE_CHECKING:
    import numpy as np
    import torch

    from catseg_bench.specs import EvalSet


class GroundedSAMSegmenter:
    """Grounded-SAM with the MESS fork's semantic-segmentation glue."""

    def __init__(self, variant: str, *, checkpoint: str | None = None, device: Any = "cpu", seed: int = 0):
        from model.grounded_sam.factory import UNTRAINED, WeightsError, load_grounded_sam
        from model.grounded_sam.requirements import MissingExtraError

        try:
            self.net = load_grounded_sam(variant, checkpoint, device, seed)
        except (MissingExtraError, WeightsError) as err:
            raise BenchError(f"{variant}: {err}") from None
        self.model_id = variant
        self.checkpoint_sha256 = self.net.weights_sha256
        self.untrained = self.net.untrained
        self.init_seed = seed if checkpoint == UNTRAINED else None
        self.class_names: tuple[str, ...] = ()
        self.background: int | None = None
        self.background_from_spec = False

    @staticmethod
    def weights_tags(variant: str) -> list[str]:
        from model.grounded_sam.weights import weights_tags

        return weights_tags(variant)

    @staticmethod
    def weights_licences(variant: str) -> dict[str, str]:
        from model.grounded_sam.weights import weights_licences

        return weights_licences(variant)

    def settings(self) -> dict[str, Any]:
        from model.grounded_sam import glue
        from model.grounded_sam.configs import DETECTOR_MAX_SIDE, DETECTOR_SHORT_SIDE, IMAGE_SIZE

        detector = self.net.detector
        settings: dict[str, Any] = {
            "weights": self.net.weights,
            "sam": self.net.config.sam,
            "image_long_side": IMAGE_SIZE,
            "detector_resize": f"short side {DETECTOR_SHORT_SIDE}, max {DETECTOR_MAX_SIDE}, channels reversed",
            "box_threshold": detector.box_threshold,
            "text_threshold": detector.text_threshold,
            "class_batch": detector.class_batch,
            "caption": "names joined by '. ', lower-cased, ending in '.'",
            "phrase_matching": "exact",
            "background": "the set's background_index; none: arg-max of the other scores",
            "precision": "fp32",
        }
        if self.init_seed is not None:
            settings["random_init_seed"] = self.init_seed
            settings["tokenizer"] = "stand-in character vocabulary"
        return settings

    def begin_eval_set(self, eval_set: EvalSet, names: list[str]) -> None:
        """The set's background class from its spec (None: the set has none)."""
        self.background = eval_set.spec.background_index
        self.background_from_spec = True

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        from model.grounded_sam.glue import fallback_background

        self.class_names = tuple(class_names)
        if not self.background_from_spec:  # no set (API use, `bench speed`): the fork's own rule
            self.background = fallback_background(self.class_names)

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        from model.grounded_sam.configs import IMAGE_SIZE
        from model.inference import resize_short_side

        return resize_short_side(image, IMAGE_SIZE, IMAGE_SIZE)

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        from model.grounded_sam.pipeline import class_scores, labels_at

        return [labels_at(class_scores(self.net, image, self.class_names, self.background), size).cpu()
                for image, size in zip(images, original_sizes)]


for _name, _config in CONFIGS.items():
    register_segmenter(_name, description=_config.description, variant=_name)(GroundedSAMSegmenter)
