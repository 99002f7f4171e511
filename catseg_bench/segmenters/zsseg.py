"""ZSSeg from `model.zsseg`: the MESS fork's whole-image protocol, argmax over the semantic scores.

Registered as `zsseg-b` (the one published model). The default checkpoint is the official release
(`model.zsseg.weights`); `--checkpoint none` runs seeded random weights (marked untrained).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters.whole_image import WholeImageSegmenter
from model.zsseg.config import ZSSEG_B
import model.zsseg.weights  # noqa: F401  (registers the ZSSeg weights tags)

if TYPE_CHECKING:
    import torch


class ZSSegSegmenter(WholeImageSegmenter):
    """ZSSeg (ECCV 2022): MaskFormer proposals classified by CLIP on masked crops, short side 512."""

    model_package = "model.zsseg"

    def create_net(self, variant: str, checkpoint: str | None, device: torch.device):
        from model.zsseg import create_zsseg

        return create_zsseg(variant, checkpoint=checkpoint, device=device)

    def class_inputs(self, class_names: list[str]) -> torch.Tensor:
        """The class text embeddings (unit, averaged over the "vild" templates)."""
        return self.net.class_embeddings(class_names)

    def settings(self) -> dict[str, Any]:
        from model.training_free.templates import templates_sha256

        config = self.net.config
        maskformer, clip = config.maskformer, config.mask_clip
        return {
            "protocol": "whole image",
            "short_side": config.test_short_side,
            "max_side": config.test_max_side,
            "size_divisibility": maskformer.size_divisibility,
            "num_queries": maskformer.predictor.num_queries,
            "pixel_mean": list(maskformer.pixel_mean),
            "pixel_std": list(maskformer.pixel_std),
            "mask_threshold": clip.mask_threshold,
            "mask_fill": clip.fill,
            "mask_expand_ratio": clip.expand_ratio,
            "crop_size": clip.crop_size,
            "clip_temperature": clip.temperature,
            "ensemble_weight": clip.ensemble_weight,
            "templates_sha256": templates_sha256(config.templates),
            "class_queries": "each class name verbatim, averaged over the templates",
            **self._common_settings(),
        }


register_segmenter(ZSSEG_B.name, description=ZSSEG_B.description, variant=ZSSEG_B.name)(ZSSegSegmenter)
