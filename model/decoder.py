"""Upsampling decoder: cost embedding (B, E, T, h, w) -> per-class logits (B, T, 4h, 4w).

Each stage doubles the resolution with a transposed conv, concatenates projected CLIP guidance
from a shallower ViT block (the same for every class of an image), and refines with two 3x3 convs
with GroupNorm (mid_channels // 16 groups: 4 then 2 for the official widths). The decoder runs
once per class, so the guidance's share of the first conv is computed once per image instead
(see `UpStage`), and the ReLUs work in place.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from model.configs import CATSegConfig


class DoubleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        groups = out_channels // 16
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.GroupNorm(groups, out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.double_conv(x)


class UpStage(nn.Module):
    """x2 transposed conv to (in - guidance) channels, concatenate guidance, DoubleConv to out."""

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: Tensor, guidance: Tensor) -> Tensor:
        """x: (B*T, in, h, w); guidance: (B, g, 2h, 2w), shared by the T classes of an image.

        The first conv of `DoubleConv(cat([x, guidance]))` is split by input channels: its
        x part runs per class, its guidance part once per image and is broadcast over the classes
        (no repeated or concatenated copy of the guidance).
        """
        x = self.up(x)
        first, *rest = self.conv.double_conv
        width = x.shape[1]
        y = F.conv2d(x, first.weight[:, :width], padding=first.padding)
        shared = F.conv2d(guidance, first.weight[:, width:], padding=first.padding)
        y.unflatten(0, (guidance.shape[0], -1)).add_(shared.unsqueeze(1))
        for layer in rest:
            y = layer(y)
        return y


class Decoder(nn.Module):
    def __init__(self, config: CATSegConfig):
        super().__init__()
        c = config
        self.guidance_projection = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, proj, 3, padding=1), nn.ReLU())
            for dim, proj in zip(c.decoder_guidance_dims, c.decoder_guidance_proj_dims)
        )
        self.up1 = UpStage(c.hidden_dim, c.decoder_dims[0], c.decoder_guidance_proj_dims[0])
        self.up2 = UpStage(c.decoder_dims[0], c.decoder_dims[1], c.decoder_guidance_proj_dims[1])
        self.head = nn.Conv2d(c.decoder_dims[1], 1, 3, padding=1)

    def forward(self, x: Tensor, guidance: list[Tensor]) -> Tensor:
        """x: (B, E, T, h, w); guidance: [(B, 256, 2h, 2w), (B, 128, 4h, 4w)] -> logits (B, T, 4h, 4w)."""
        b, e, t, h, w = x.shape
        g1, g2 = (proj(g) for proj, g in zip(self.guidance_projection, guidance))
        x = x.transpose(1, 2).reshape(b * t, e, h, w)
        x = self.up2(self.up1(x, g1), g2)
        return self.head(x).reshape(b, t, 4 * h, 4 * w)
