"""ZegFormer from `model.zegformer`: the MESS fork's whole-image protocol, argmax over the semantic scores.

Registered as `zegformer-b` (the one published model). The default checkpoint is the official release
plus OpenAI's CLIP ViT-B/16 (`model.zegformer.weights`); `--checkpoint none` runs seeded random
weights (marked untrained).
"""

from __future__ import annotations

from typing import Any

from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters.whole_image import MaskFormerSegmenter
from model.zegformer.config import ZEGFORMER_B
import model.zegformer.weights  # noqa: F401  (registers the ZegFormer weights tags)


class ZegFormerSegmenter(MaskFormerSegmenter):
    """ZegFormer (CVPR 2022): MaskFormer segments classified by CLIP on masked box crops, short side 640."""

    model_package = "model.zegformer"
    create_function = "create_zegformer"  # net.class_embeddings: segment and crop templates, (2, T, C)

    def __init__(self, variant: str, *, clip_fp16: bool = False, clip_weights: str | None = None,
                 checkpoint: str | None = None, device: Any = "cpu", precision: str = "fp32", seed: int = 0):
        """clip_fp16: run the CLIP in float16 as the official code (and so MESS's published numbers)
        does: OpenAI's loader keeps its float16 weights; the MaskFormer stays in float32.
        clip_weights: a local copy of OpenAI's ViT-B-16.pt for an official checkpoint (default: the
        published file, downloaded once and sha256-checked)."""
        from model.common.files import user_path
        from model.zegformer.conversion import OPENAI  # loads torch: not at import (bench --help)

        self.clip_fp16 = clip_fp16
        self.clip_weights = OPENAI if clip_weights is None else user_path(clip_weights)
        super().__init__(variant, checkpoint=checkpoint, device=device, precision=precision, seed=seed)

    def create_net(self, variant: str, checkpoint: str | None, device: Any):
        return self._package().create_zegformer(variant, checkpoint=checkpoint, device=device,
                                                    clip_weights=self.clip_weights, clip_fp16=self.clip_fp16)

    def settings(self) -> dict[str, Any]:
        from model.training_free.templates import templates_sha256

        config = self.net.config
        return {
            **self._maskformer_settings(),
            "clip_pixel_mean": list(config.clip_pixel_mean),
            "clip_pixel_std": list(config.clip_pixel_std),
            "mask_threshold": config.mask_threshold,
            "crop": "masked (zero outside), RoIAlign at the mask's box",
            "crop_size": config.crop_size,
            "class_logits": "CLIP crop logits + the segment's background logit (no ensembling)",
            "query_templates_sha256": templates_sha256(config.query_templates),
            "clip_templates_sha256": templates_sha256(config.clip_templates),
            "clip_fp16": config.clip_fp16,
            "class_queries": "each class name as given; ', ' splits it into variants averaged with the templates",
            **self._common_settings(),
        }


register_segmenter(ZEGFORMER_B.name, description=ZEGFORMER_B.description, variant=ZEGFORMER_B.name)(ZegFormerSegmenter)
