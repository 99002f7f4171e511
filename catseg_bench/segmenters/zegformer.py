"""ZegFormer from `model.zegformer`: the MESS fork's whole-image protocol, argmax over the semantic scores.

Registered as `zegformer-b` (the one published model). The default checkpoint is the official release
plus OpenAI's CLIP ViT-B/16 (`model.zegformer.weights`); `--checkpoint none` runs seeded random
weights (marked untrained).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters.whole_image import WholeImageSegmenter
from model.zegformer.config import ZEGFORMER_B
import model.zegformer.weights  # noqa: F401  (registers the ZegFormer weights tags)

if TYPE_CHECKING:
    import torch


class ZegFormerSegmenter(WholeImageSegmenter):
    """ZegFormer (CVPR 2022): MaskFormer segments classified by CLIP on masked box crops, short side 640."""

    model_package = "model.zegformer"

    def create_net(self, variant: str, checkpoint: str | None, device: torch.device):
        from model.zegformer import create_zegformer

        return create_zegformer(variant, checkpoint=checkpoint, device=device)

    def class_inputs(self, class_names: list[str]) -> torch.Tensor:
        """The two sets of class text embeddings (segment and crop templates), (2, T, C)."""
        return self.net.class_embeddings(class_names)

    def settings(self) -> dict[str, Any]:
        from model.training_free.templates import templates_sha256

        config = self.net.config
        maskformer = config.maskformer
        return {
            "protocol": "whole image",
            "short_side": config.test_short_side,
            "max_side": config.test_max_side,
            "size_divisibility": maskformer.size_divisibility,
            "num_queries": maskformer.predictor.num_queries,
            "pixel_mean": list(maskformer.pixel_mean),
            "pixel_std": list(maskformer.pixel_std),
            "clip_pixel_mean": list(config.clip_pixel_mean),
            "clip_pixel_std": list(config.clip_pixel_std),
            "mask_threshold": config.mask_threshold,
            "crop": "masked (zero outside), RoIAlign at the mask's box",
            "crop_size": config.crop_size,
            "class_logits": "CLIP crop logits + the segment's background logit (no ensembling)",
            "query_templates_sha256": templates_sha256(config.query_templates),
            "clip_templates_sha256": templates_sha256(config.clip_templates),
            "class_queries": "each class name as given; ', ' splits it into variants averaged with the templates",
            **self._common_settings(),
        }


register_segmenter(ZEGFORMER_B.name, description=ZEGFORMER_B.description, variant=ZEGFORMER_B.name)(ZegFormerSegmenter)
