"""The Swin Transformer backbone of the MaskFormer-family configs (OVSeg's Swin-B), in plain PyTorch.

This is the detection/segmentation Swin (`D2SwinTransformer` of MaskFormer, copied by ZSSeg and
OVSeg), whose numerics differ from timm's Swin on feature maps that are not a multiple of the
window, so timm is not used:

* each block **pads** its (normed) map to a multiple of the window with zeros **before** the
  cyclic shift (timm shifts first, then pads), and the shifted-window mask is built on the padded
  size;
* the shift is applied even when the map is smaller than the window (timm clamps the window);
* the stage outputs res2..res5 each pass their own LayerNorm (`norm0`..`norm3`).

Window partition, the shifted-window mask and the MLP are the CAT-Seg aggregator's (`model.aggregator`,
the same Swin code). Module and parameter names are the official ones (`patch_embed.*`, `layers.{i}.blocks.{j}.*`,
`layers.{i}.downsample.*` at the end of stage i, `norm{i}`), so a checkpoint's `backbone.*` keys
load as they are. `relative_position_index` is computed here, not loaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.aggregator import Mlp, shifted_window_mask, window_partition
from model.maskformer.config import SwinConfig

FEATURE_NAMES = ("res2", "res3", "res4", "res5")


def relative_position_index(window: int) -> Tensor:
    """(window², window²) index into the (2·window − 1)² relative position bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """(B·nW, window·window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, qkv_bias: bool):
        super().__init__()
        self.heads, self.window = heads, window
        self.scale = (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def reset_buffers(self) -> None:
        """Recompute the non-persistent index (needed after building on the meta device)."""
        device = self.relative_position_bias_table.device
        self.relative_position_index = relative_position_index(self.window).to(device)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.heads, n, n) + mask[None, :, None]).view(-1, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float, qkv_bias: bool):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor) -> Tensor:
        """x (B, h·w, C); `mask` the stage's shifted-window mask (used by shifted blocks only)."""
        b, _, c = x.shape
        y = self.norm1(x).view(b, h, w, c)
        y = F.pad(y, (0, 0, 0, -w % self.window, 0, -h % self.window))  # pad first, then shift
        hp, wp = y.shape[1:3]
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), mask if self.shift else None)
        y = window_reverse(y, self.window, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y[:, :h, :w, :].reshape(b, h * w, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, config: SwinConfig, downsample: bool):
        super().__init__()
        self.window = config.window_size
        self.blocks = nn.ModuleList(
            SwinBlock(dim, heads, config.window_size, 0 if i % 2 == 0 else config.window_size // 2,
                      config.mlp_ratio, config.qkv_bias)
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        hp, wp = -(-h // self.window) * self.window, -(-w // self.window) * self.window
        mask = shifted_window_mask((hp, wp), self.window, self.window // 2).to(x.device)
        for block in self.blocks:
            x = block(x, h, w, mask)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int, norm: bool):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self.patch, 0, -h % self.patch))
        x = self.proj(x)
        if self.norm is not None:
            b, c, gh, gw = x.shape
            x = self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).view(b, c, gh, gw)
        return x


class SwinTransformer(nn.Module):
    """Swin backbone: (B, 3, H, W) -> {"res2": stride 4, .., "res5": stride 32}, each (B, C_i, h_i, w_i)."""

    def __init__(self, config: SwinConfig):
        super().__init__()
        self.config = config
        dims = [config.embed_dim * 2**i for i in range(len(config.depths))]
        self.patch_embed = PatchEmbed(config.patch_size, config.embed_dim, config.patch_norm)
        self.layers = nn.ModuleList(
            SwinStage(dims[i], depth, config.num_heads[i], config, downsample=i < len(dims) - 1)
            for i, depth in enumerate(config.depths)
        )
        for i, dim in enumerate(dims):
            self.add_module(f"norm{i}", nn.LayerNorm(dim))
        self.out_channels = {FEATURE_NAMES[i]: dim for i, dim in enumerate(dims)}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = self.patch_embed(images)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        features = {}
        for i, stage in enumerate(self.layers):
            x = stage(x, h, w)
            out = getattr(self, f"norm{i}")(x)
            features[FEATURE_NAMES[i]] = out.view(-1, h, w, out.shape[-1]).permute(0, 3, 1, 2).contiguous()
            if stage.downsample is not None:
                x = stage.downsample(x, h, w)
                h, w = (h + 1) // 2, (w + 1) // 2
        return {name: features[name] for name in self.config.out_features}
