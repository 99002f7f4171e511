"""OVSeg from `model.ovseg`: ZSSeg's segmenter (the same whole-image protocol and inference) on an
OVSeg network, whose config gives short side 640, mask threshold 0.4, ensemble weight 0.7 and the
mask prompts.

Registered as `ovseg-l` (the one published model). The default checkpoint is the official release
(`model.ovseg.weights`, CC BY-NC 4.0); `--checkpoint none` runs seeded random weights (marked
untrained).
"""

from __future__ import annotations

from typing import Any

from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters.zsseg import ZSSegSegmenter
from model.ovseg.config import OVSEG_L
import model.ovseg.weights  # noqa: F401  (registers the OVSeg weights tags)


class OVSegSegmenter(ZSSegSegmenter):
    """OVSeg (CVPR 2023): MaskFormer proposals classified by a mask-prompt-tuned CLIP, short side 640."""

    model_package = "model.ovseg"
    create_function = "create_ovseg"

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "mask_prompt_depth": self.net.config.mask_prompt_depth}


register_segmenter(OVSEG_L.name, description=OVSEG_L.description, variant=OVSEG_L.name)(OVSegSegmenter)
