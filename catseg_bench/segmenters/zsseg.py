"""ZSSeg from `model.zsseg`: the MESS fork's whole-image protocol, argmax over the semantic scores.

One registered name per architecture config that has published weights (`zsseg-b`). The default
checkpoint is the official release (`model.zsseg.weights`); `--checkpoint none` runs seeded random
weights (marked untrained).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.errors import BenchError
from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters import check_precision
from catseg_bench.segmenters.catseg import UNTRAINED
from model.zsseg.config import ZSSEG_B
import model.zsseg.weights  # noqa: F401  (registers the ZSSeg weights tags)
from model.weights import DEFAULT_TAG_ALIAS, tags_default_first, weights_licences

if TYPE_CHECKING:
    import numpy as np
    import torch


class ZSSegSegmenter:
    """ZSSeg (ECCV 2022): MaskFormer proposals classified by CLIP on masked crops, short side 512."""

    def __init__(self, variant: str, *, checkpoint: str | None = None, device: Any = "cpu", precision: str = "fp32",
                 seed: int = 0):
        import torch

        from model.checkpoint import CheckpointError

        check_precision(precision)
        source = DEFAULT_TAG_ALIAS if checkpoint is None else checkpoint
        self.untrained = source == UNTRAINED
        self.init_seed = seed if self.untrained else None  # random but seeded: same network in every process
        self.device = torch.device(device)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net = self._create(variant, checkpoint=None if self.untrained else source, device=self.device)
        except CheckpointError as err:
            raise BenchError(f"{variant}: {err}") from None
        self.model_id = variant
        self.checkpoint_sha256 = self.net.checkpoint_sha256
        self.precision = precision
        self.class_embeds: torch.Tensor | None = None

    @staticmethod
    def _create(variant: str, checkpoint: str | None, device: Any):
        """The network (OVSeg's segmenter, a subclass, builds an OVSeg; the inference is shared)."""
        from model.zsseg import create_zsseg

        return create_zsseg(variant, checkpoint=checkpoint, device=device)

    @staticmethod
    def weights_tags(variant: str) -> list[str]:
        """The variant's published weights tags, its default first (`model.zsseg.weights`)."""
        return tags_default_first(variant)

    @staticmethod
    def weights_licences(variant: str) -> dict[str, str]:
        """Tag -> licence of the variant's published weights (`model.zsseg.weights`)."""
        return weights_licences(variant)

    def settings(self) -> dict[str, Any]:
        from model.training_free.templates import templates_sha256

        config = self.net.config
        mf, clip = config.maskformer, config.mask_clip
        settings: dict[str, Any] = {
            "protocol": "whole image",
            "short_side": config.test_short_side,
            "max_side": config.test_max_side,
            "size_divisibility": mf.size_divisibility,
            "num_queries": mf.predictor.num_queries,
            "pixel_mean": list(mf.pixel_mean),
            "pixel_std": list(mf.pixel_std),
            "mask_threshold": clip.mask_threshold,
            "mask_fill": clip.fill,
            "crop_size": clip.crop_size,
            "ensemble_weight": clip.ensemble_weight,
            "templates_sha256": templates_sha256(config.templates),
            "class_queries": "each class name verbatim, averaged over the templates",
            "precision": self.precision,
        }
        if self.init_seed is not None:
            settings["random_init_seed"] = self.init_seed
        return settings

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        with self._precision():
            self.class_embeds = self.net.class_embeddings(list(class_names))

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        from model.zsseg import prepare_image

        return prepare_image(self.net, image)

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        from model.zsseg import predict_labels

        with self._precision():
            return [predict_labels(self.net, image, self.class_embeds, size).cpu()
                    for image, size in zip(images, original_sizes)]

    def predict_scores(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Per-class semantic scores (T, H, W) float32 (sums over the 100 proposals of the
        ensembled class probability x mask probability; not normalised over classes)."""
        from model.zsseg import predict_scores

        with self._precision():
            return [predict_scores(self.net, image, self.class_embeds, size).float().cpu()
                    for image, size in zip(images, original_sizes)]

    def _precision(self):
        from model.inference import precision_context

        return precision_context(self.device, self.precision)


register_segmenter(ZSSEG_B.name, description=ZSSEG_B.description, variant=ZSSEG_B.name)(ZSSegSegmenter)
