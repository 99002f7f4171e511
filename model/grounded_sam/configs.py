"""Grounded-SAM architectures: GroundingDINO Swin-B (the checkpoint MESS used) with SAM ViT-B or ViT-L.

Plain data; `transformers_configs` turns a config into the `transformers` configs of the two models
(imported only then). The numbers are those of the official configs: GroundingDINO@856dde2
`groundingdino/config/GroundingDINO_SwinB_cfg.py` (Swin-B 384 window 12, BERT-base, 900 queries,
6+6 layers, 256 text tokens) and segment_anything `build_sam.py` (`build_sam_vit_b` / `_vit_l`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IMAGE_SIZE = 1024  # fork default_config.yaml: INPUT.MIN_SIZE_TEST = MAX_SIZE_TEST = 1024
DETECTOR_SHORT_SIDE = 800  # gdino util/inference.py `preprocess_image`: RandomResize([800], max_size=1333)
DETECTOR_MAX_SIDE = 1333
DETECTOR_PIXEL_MEAN = (0.485, 0.456, 0.406)  # on the 0-1 scale
DETECTOR_PIXEL_STD = (0.229, 0.224, 0.225)
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)  # segment_anything Sam.pixel_mean, on the 0-255 scale
SAM_PIXEL_STD = (58.395, 57.12, 57.375)

_SWIN_B_384 = dict(image_size=384, embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32], window_size=12,
                   out_indices=[2, 3, 4])
_BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
_SAM_VIT = {
    "vit_b": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, global_attn_indexes=[2, 5, 8, 11]),
    "vit_l": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, global_attn_indexes=[5, 11, 17, 23]),
}


@dataclass(frozen=True)
class GroundedSAMConfig:
    name: str
    description: str
    sam: str  # "vit_b" / "vit_l": the segment_anything registry name
    backbone: dict[str, Any] = field(default_factory=lambda: dict(_SWIN_B_384))
    text: dict[str, Any] = field(default_factory=lambda: dict(_BERT_BASE))
    detector: dict[str, Any] = field(default_factory=dict)  # GroundingDinoConfig fields besides the defaults
    sam_vision: dict[str, Any] = field(default_factory=dict)
    sam_prompt: dict[str, Any] = field(default_factory=dict)
    sam_decoder: dict[str, Any] = field(default_factory=dict)

    @property
    def sam_image_size(self) -> int:
        return int(self.sam_vision.get("image_size", 1024))


CONFIGS: dict[str, GroundedSAMConfig] = {
    c.name: c
    for c in (
        GroundedSAMConfig("grounded-sam-b", "Grounded-SAM: GroundingDINO Swin-B boxes, SAM ViT-B masks (the MESS fork's glue)",
                          "vit_b", sam_vision=dict(_SAM_VIT["vit_b"])),
        GroundedSAMConfig("grounded-sam-l", "Grounded-SAM: GroundingDINO Swin-B boxes, SAM ViT-L masks (the MESS fork's glue)",
                          "vit_l", sam_vision=dict(_SAM_VIT["vit_l"])),
    )
}


def transformers_configs(config: GroundedSAMConfig):
    """(GroundingDinoConfig, SamConfig) for `config` (lazy import of transformers)."""
    from model.grounded_sam.requirements import require_transformers

    transformers = require_transformers()
    detector = transformers.GroundingDinoConfig(
        backbone_config=transformers.SwinConfig(**config.backbone),
        text_config=transformers.BertConfig(**config.text),
        **config.detector,
    )
    sam = transformers.SamConfig(
        vision_config=transformers.SamVisionConfig(**config.sam_vision),
        prompt_encoder_config=transformers.SamPromptEncoderConfig(**config.sam_prompt),
        mask_decoder_config=transformers.SamMaskDecoderConfig(**config.sam_decoder),
    )
    return detector, sam
