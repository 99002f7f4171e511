"""Upsampling decoder: cost embedding (B, E, T, h, w) -> per-class logits (B, T, 4h, 4w).

Each stage doubles the resolution with a transposed conv, concatenates projected CLIP guidance
from a shallower ViT block (the same for every class of an image), and refines with two 3x3 convs
with GroupNorm (mid_channels // 16 groups: 4 then 2 for the official widths). The decoder runs
once per class, so the guidance's share of the first conv is computed once per image instead,
the transposed conv and the x part of the first conv are one composed transposed conv (see
`UpStage`), and the ReLUs work in place.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.chunks import items_per_chunk, run_chunked
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


def upsample_then_conv(up: nn.ConvTranspose2d, conv_weight: Tensor) -> Tensor:
    """The kernel (in, out, 4, 4) of one transposed conv (stride 2, padding 1, no bias) equal to
    `conv_weight` (a 3x3, padding 1, bias-free conv) applied after the x2 transposed conv `up`.

    Both are linear and the second reads a 3 x 3 neighbourhood of the upsampled map, i.e. a
    2 x 2 neighbourhood of the input for each output parity: the composed kernel has half the
    multiply-adds of the two convs (75 M instead of 155 M per class map in the first stage of
    CAT-Seg-B). The bias of `up` is not part of it: the conv's zero padding makes its share
    depend on the position (see `UpStage.forward`).
    """
    taps = torch.einsum("cmab,omyx->coabyx", up.weight, conv_weight)  # (in, out, 2, 2, 3, 3)
    kernel = taps.new_zeros(*taps.shape[:2], 4, 4)
    for a, b, y, x in itertools.product(range(2), range(2), range(3), range(3)):
        # input pixel i lands on upsampled row 2i + a, read by output row 2i + a + 1 - y,
        # i.e. transposed-conv tap 2 + a - y (output row = 2i - padding + tap)
        kernel[:, :, 2 + a - y, 2 + b - x] += taps[:, :, a, b, y, x]
    return kernel


class UpStage(nn.Module):
    """x2 transposed conv to (in - guidance) channels, concatenate guidance, DoubleConv to out."""

    def __init__(self, in_channels: int, out_channels: int, guidance_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels - guidance_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def shared_terms(self, guidance: Tensor) -> tuple[Tensor, Tensor]:
        """What every class map of an image shares, computed once per forward (not per chunk):
        (share (B, out, 2h, 2w), kernel) for `forward`, from guidance (B, g, 2h, 2w).

        The first conv of `DoubleConv(cat([up(x), guidance]))` is split by input channels. Its
        up(x) part is composed with `up` into one transposed conv of x: `kernel`
        (`upsample_then_conv`). Its guidance part, plus the share of `up`'s bias (the conv of a
        constant map, zero-padded), is `share`: no repeated or concatenated copy of the guidance,
        no upsampled copy of x.
        """
        first = self.conv.double_conv[0]
        width = self.up.out_channels
        x_weight, guidance_weight = first.weight[:, :width], first.weight[:, width:]
        up_bias = self.up.bias.view(1, -1, 1, 1).expand(1, -1, *guidance.shape[-2:])
        share = F.conv2d(guidance, guidance_weight, padding=1) + F.conv2d(up_bias, x_weight, padding=1)
        return share, upsample_then_conv(self.up, x_weight)

    def forward(self, x: Tensor, share: Tensor, kernel: Tensor) -> Tensor:
        """x: (n*T, in, h, w), the class maps of n images; share, kernel: `shared_terms` of those
        n images -> (n*T, out, 2h, 2w)."""
        first, *rest = self.conv.double_conv
        y = F.conv_transpose2d(x, kernel, stride=2, padding=1)
        y.unflatten(0, (share.shape[0], -1)).add_(share.unsqueeze(1))
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

    def forward(self, x: Tensor, guidance: list[Tensor], chunk_bytes: int | None = None) -> Tensor:
        """x: (B, E, T, h, w); guidance: [(B, 256, 2h, 2w), (B, 128, 4h, 4w)] -> logits (B, T, 4h, 4w).

        Every class map is decoded alone, so `chunk_bytes` (see `model.chunks`) sets how many maps
        of one image go through together, from the size of the last stage's output; None: all.
        """
        b, e, t, h, w = x.shape
        g1, g2 = (proj(g) for proj, g in zip(self.guidance_projection, guidance))
        (share1, kernel1), (share2, kernel2) = self.up1.shared_terms(g1), self.up2.shared_terms(g2)
        x = x.transpose(1, 2)
        map_bytes = self.up2.conv.double_conv[0].out_channels * 16 * h * w * x.element_size()

        def decode(images: slice, classes: slice) -> Tensor:
            maps = x[images, classes]
            y = self.up1(maps.reshape(-1, e, h, w), share1[images], kernel1)
            y = self.up2(y, share2[images], kernel2)
            return self.head(y).view(*maps.shape[:2], 4 * h, 4 * w)

        return run_chunked(decode, b, t, items_per_chunk(chunk_bytes, map_bytes))
