"""SAN from `model.san`: the MESS fork's whole-image protocol, argmax over the semantic scores.

One registered name per architecture config (`san-b`, `san-l`). The default checkpoint is the
official release (`model.san.weights`); `--checkpoint none` runs seeded random weights (marked
untrained).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters.whole_image import WholeImageSegmenter
from model.san.config import SAN_CONFIGS
import model.san.weights  # noqa: F401  (registers the SAN weights tags)

if TYPE_CHECKING:
    import torch


class SANSegmenter(WholeImageSegmenter):
    """SAN (CVPR 2023): frozen CLIP + side adapter, whole image at short side 640."""

    model_package = "model.san"

    def create_net(self, variant: str, checkpoint: str | None, device: torch.device):
        from model.san import create_san

        return create_san(variant, checkpoint=checkpoint, device=device)

    def class_inputs(self, class_names: list[str]) -> torch.Tensor:
        """The classifier: class text embeddings + background, times the CLIP logit scale."""
        return self.net.classifier(self.net.class_embeddings(class_names))

    def settings(self) -> dict[str, Any]:
        from model.training_free.templates import templates_sha256

        config = self.net.config
        return {
            "protocol": "whole image",
            "short_side": config.test_short_side,
            "max_side": config.test_max_side,
            "size_divisibility": config.size_divisibility,
            "clip_scale": config.clip_scale,
            "templates_sha256": templates_sha256(config.templates),
            "class_queries": "each class name verbatim, averaged over the templates",
            **self._common_settings(),
        }


for _name, _config in SAN_CONFIGS.items():
    register_segmenter(_name, description=_config.description, variant=_name)(SANSegmenter)
