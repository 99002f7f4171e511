"""ZSSeg from `model.zsseg`: the MESS fork's whole-image protocol, argmax over the semantic scores.

Registered as `zsseg-b` (the one published model). The default checkpoint is the official release
(`model.zsseg.weights`); `--checkpoint none` runs seeded random weights (marked untrained).
"""

from __future__ import annotations

from typing import Any

from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters.whole_image import MaskFormerSegmenter
from model.zsseg.config import ZSSEG_B
import model.zsseg.weights  # noqa: F401  (registers the ZSSeg weights tags)


class ZSSegSegmenter(MaskFormerSegmenter):
    """ZSSeg (ECCV 2022): MaskFormer proposals classified by CLIP on masked crops, short side 512."""

    model_package = "model.zsseg"
    create_function = "create_zsseg"

    def settings(self) -> dict[str, Any]:
        from model.training_free.templates import templates_sha256

        config = self.net.config
        clip = config.mask_clip
        return {
            **self._maskformer_settings(),
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
