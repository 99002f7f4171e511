"""MaskFormer inference in plain PyTorch: backbone -> pixel decoder -> transformer predictor.

    images (B, 3, H, W): normalised, zero-padded to a multiple of `size_divisibility`
      -> backbone features {res2 .. res5}
      -> pixel decoder: mask features (B, mask_dim, H/4, W/4) (and encoder features)
      -> predictor on `predictor.in_feature`: class output (B, Q, class_out) or None,
         mask logits (B, Q, H/4, W/4)

Backbones are looked up by their config's type (`register_backbone`); ResNet is built in, another
family (OVSeg's Swin) registers its config class and constructor. A backbone module returns a dict
of named features and has `out_channels` (name -> channels).
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor, nn

from model.maskformer.config import MaskFormerConfig, ResNetConfig
from model.maskformer.pixel_decoder import build_pixel_decoder
from model.maskformer.predictor import TransformerPredictor
from model.maskformer.resnet import ResNet

BACKBONES: dict[type, Callable[[Any], nn.Module]] = {ResNetConfig: ResNet}


def register_backbone(config_type: type, build: Callable[[Any], nn.Module]) -> None:
    """Make `MaskFormerConfig.backbone` accept `config_type`, built by `build(backbone_config)`."""
    BACKBONES[config_type] = build


def build_backbone(config: Any) -> nn.Module:
    build = BACKBONES.get(type(config))
    if build is None:
        known = ", ".join(t.__name__ for t in BACKBONES)
        raise TypeError(f"no MaskFormer backbone is registered for {type(config).__name__} (known: {known})")
    return build(config)


class MaskFormer(nn.Module):
    def __init__(self, config: MaskFormerConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        channels = self.backbone.out_channels
        self.pixel_decoder = build_pixel_decoder(config, channels)
        in_feature = config.predictor.in_feature
        predictor_in = config.pixel_decoder.conv_dim if in_feature == "transformer_encoder" else channels[in_feature]
        self.predictor = TransformerPredictor(config.predictor, predictor_in, config.pixel_decoder.mask_dim)

    def forward(self, images: Tensor) -> tuple[Tensor | None, Tensor]:
        """(class output (B, Q, class_out) or None, mask logits (B, Q, H/4, W/4))."""
        features = self.backbone(images)
        mask_features, encoded = self.pixel_decoder(features)
        in_feature = self.config.predictor.in_feature
        if in_feature == "transformer_encoder":
            if encoded is None:
                raise ValueError("predictor.in_feature 'transformer_encoder' needs pixel_decoder.transformer_enc_layers > 0")
            x = encoded
        else:
            x = features[in_feature]
        return self.predictor(x, mask_features)
