"""MaskFormer's pixel decoders: `BasePixelDecoder` (an FPN) and `TransformerEncoderPixelDecoder`.

Module names are the official ones (`adapter_i` lateral 1x1 convs, `layer_i` output 3x3 convs,
i = 1 for res2 .. 4 for res5, `mask_features`), so `sem_seg_head.pixel_decoder.*` loads unchanged.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from model.maskformer.config import MaskFormerConfig
from model.maskformer.layers import Conv2d, get_norm
from model.maskformer.transformer import Encoder, sine_position_encoding


class BasePixelDecoder(nn.Module):
    def __init__(self, config: MaskFormerConfig, in_channels: dict[str, int]):
        super().__init__()
        cfg = config.pixel_decoder
        self.in_features = list(cfg.in_features)  # finest first (res2 .. res5)
        use_bias = cfg.norm == ""
        last = len(self.in_features) - 1
        for idx, name in enumerate(self.in_features):
            channels = in_channels[name]
            if idx < last:
                self.add_module(f"adapter_{idx + 1}", Conv2d(channels, cfg.conv_dim, kernel_size=1, bias=use_bias,
                                                             norm=get_norm(cfg.norm, cfg.conv_dim)))
                channels = cfg.conv_dim
            self.add_module(f"layer_{idx + 1}", self._output_conv(channels, cfg.conv_dim, cfg.norm))
        self.mask_features = Conv2d(cfg.conv_dim, cfg.mask_dim, kernel_size=3, stride=1, padding=1)

    @staticmethod
    def _output_conv(in_channels: int, conv_dim: int, norm: str) -> Conv2d:
        return Conv2d(in_channels, conv_dim, kernel_size=3, stride=1, padding=1, bias=norm == "",
                      norm=get_norm(norm, conv_dim), activation=F.relu)

    def coarsest(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The top of the FPN from the coarsest feature, and the transformer-encoder features (None)."""
        return getattr(self, f"layer_{len(self.in_features)}")(x), None

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """(mask features at the finest stride, transformer-encoder features or None)."""
        n = len(self.in_features)
        y, encoded = self.coarsest(features[self.in_features[-1]])
        for idx in range(n - 2, -1, -1):
            lateral = getattr(self, f"adapter_{idx + 1}")(features[self.in_features[idx]])
            y = lateral + F.interpolate(y, size=lateral.shape[-2:], mode="nearest")
            y = getattr(self, f"layer_{idx + 1}")(y)
        return self.mask_features(y), encoded


class TransformerEncoderPixelDecoder(BasePixelDecoder):
    """BasePixelDecoder whose coarsest level first runs a DETR encoder (1x1 `input_proj`, sine
    positions), whose output is also the predictor's input with in_feature "transformer_encoder"."""

    def __init__(self, config: MaskFormerConfig, in_channels: dict[str, int]):
        super().__init__(config, in_channels)
        cfg, pred = config.pixel_decoder, config.predictor
        self.input_proj = Conv2d(in_channels[self.in_features[-1]], cfg.conv_dim, kernel_size=1)
        self.transformer = nn.Module()
        self.transformer.encoder = Encoder(cfg.conv_dim, pred.nheads, pred.dim_feedforward,
                                           cfg.transformer_enc_layers, pred.pre_norm)
        self.add_module(f"layer_{len(self.in_features)}", self._output_conv(cfg.conv_dim, cfg.conv_dim, cfg.norm))

    def coarsest(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        src = self.input_proj(x)
        pos = sine_position_encoding(x, self.input_proj.out_channels // 2)
        b, c, h, w = src.shape
        memory = self.transformer.encoder(src.flatten(2).permute(2, 0, 1), pos.flatten(2).permute(2, 0, 1))
        encoded = memory.permute(1, 2, 0).view(b, c, h, w)
        return getattr(self, f"layer_{len(self.in_features)}")(encoded), encoded


def build_pixel_decoder(config: MaskFormerConfig, in_channels: dict[str, int]) -> BasePixelDecoder:
    if config.pixel_decoder.transformer_enc_layers > 0:
        return TransformerEncoderPixelDecoder(config, in_channels)
    return BasePixelDecoder(config, in_channels)
