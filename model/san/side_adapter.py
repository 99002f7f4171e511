"""SAN's side adapter: a small timm ViT that reads the image beside CLIP and proposes masks.

    image (B, 3, H, W), normalised and padded
      -> 16 x 16 patches + 100 learned query tokens (each with its own position embedding)
      -> 8 timm blocks; before block 0 and after blocks 1, 2, 3 the patch tokens get a CLIP
         feature map added (channel LayerNorm, 1x1 conv, bilinear resize); the position embeddings
         are added again after every block but the last
      -> mask decoder: query MLP . pixel MLP = mask logits (B, 100, H/16, W/16);
                       query MLP . bias MLP x learned scale + shift = attention biases
                       (B, heads, 100, H/16, W/16), one map per CLIP head and proposal

Module and parameter names follow the official `RegionwiseSideAdapterNetwork`, so its checkpoint
keys map by a prefix swap (`model.san.conversion`). Only the last block's outputs are decoded at
inference (the deep-supervision outputs of block 7 train the model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from model.san.config import SANConfig


class MLP(nn.Module):
    """Linear (or 1x1 conv) layers with ReLU between them; `layers.i` as the official MLP."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_layers: int, conv: bool = False):
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        make = (lambda i, o: nn.Conv2d(i, o, kernel_size=1)) if conv else nn.Linear
        self.layers = nn.ModuleList(make(i, o) for i, o in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map, eps 1e-6 (the official ConvNeXt-style one)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class AddFusion(nn.Module):
    """Adds a projected CLIP feature map to the adapter's patch tokens."""

    def __init__(self, clip_width: int, width: int):
        super().__init__()
        self.input_proj = nn.Sequential(ChannelLayerNorm(clip_width), nn.Conv2d(clip_width, width, kernel_size=1))

    def forward(self, patches: Tensor, clip_map: Tensor, grid: tuple[int, int]) -> Tensor:
        """patches (B, h*w, width) + resized projection of clip_map (B, D, gh, gw)."""
        y = F.interpolate(self.input_proj(clip_map), size=grid, mode="bilinear", align_corners=False)
        return patches + y.flatten(2).transpose(1, 2)


class MaskDecoder(nn.Module):
    """Mask logits and attention biases from the adapter's query and patch tokens."""

    def __init__(self, width: int, heads: int, embed: int, hidden: int, num_layers: int):
        super().__init__()
        self.heads = heads
        self.query_mlp = MLP(width, hidden, embed, num_layers)
        self.pix_mlp = MLP(width, hidden, embed, num_layers, conv=True)
        self.attn_mlp = MLP(width, hidden, embed * heads, num_layers, conv=True)
        self.bias_scaling = nn.Linear(1, 1)  # RESCALE_ATTN_BIAS: one learned scale and shift

    def forward(self, query: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """query (B, Q, width), x (B, width, h, w) -> masks (B, Q, h, w), biases (B, heads, Q, h, w)."""
        query = self.query_mlp(query)
        pix = self.pix_mlp(x)
        batch, channels, h, w = pix.shape
        masks = torch.einsum("bqc,bchw->bqhw", query, pix)
        attn = self.attn_mlp(x).reshape(batch, self.heads, channels, h, w)
        bias = torch.einsum("bqc,bnchw->bnqhw", query, attn)
        scale, shift = self.bias_scaling.weight[0, 0], self.bias_scaling.bias[0]
        return masks, bias * scale + shift


class SideAdapter(nn.Module):
    def __init__(self, config: SANConfig):
        super().__init__()
        side = config.side_adapter
        self.num_queries = side.num_queries
        self.vit_model = VisionTransformer(
            img_size=side.pos_embed_image_size, patch_size=side.patch_size, embed_dim=side.width, depth=side.depth,
            num_heads=side.heads, class_token=False, global_pool="", num_classes=0, fc_norm=False,
        )
        self.vit_model.norm = nn.Identity()  # the official adapter deletes the final norm
        self.query_embed = nn.Parameter(torch.zeros(1, side.num_queries, side.width))
        self.query_pos_embed = nn.Parameter(torch.zeros(1, side.num_queries, side.width))
        nn.init.normal_(self.query_embed, std=0.02)
        nn.init.normal_(self.query_pos_embed, std=0.02)
        # Adapter block index -> CLIP layer whose output it receives (FUSION_MAP "i->j": CLIP i, block j).
        self.fusion_map = dict(enumerate(config.fusion_clip_layers))
        self.fusion_layers = nn.ModuleDict(
            {f"layer_{block}": AddFusion(config.vision.width, side.width) for block in self.fusion_map}
        )
        self.mask_decoder = MaskDecoder(side.width, config.attn_bias_heads, side.mask_embed_dim, side.mlp_dim,
                                        side.mlp_layers)

    def _position_table(self, grid: tuple[int, int]) -> Tensor:
        table = self.vit_model.pos_embed
        stored = self.vit_model.patch_embed.grid_size
        if table.shape[1] == grid[0] * grid[1]:
            return table
        table = table.reshape(1, stored[0], stored[1], -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=grid, mode="bicubic", align_corners=False)
        return table.flatten(2).transpose(1, 2)

    def _fuse(self, block: int, x: Tensor, clip_maps: dict[int, Tensor], grid: tuple[int, int]) -> Tensor:
        if block not in self.fusion_map:
            return x
        q = self.num_queries
        fused = self.fusion_layers[f"layer_{block}"](x[:, q:], clip_maps[self.fusion_map[block]], grid)
        return torch.cat([x[:, :q], fused], dim=1)

    def forward(self, image: Tensor, clip_maps: dict[int, Tensor]) -> tuple[Tensor, Tensor]:
        """Normalised padded image (B, 3, H, W) and CLIP maps {layer: (B, D, gh, gw)} ->
        mask logits (B, Q, H/16, W/16) and attention biases (B, heads, Q, H/16, W/16)."""
        vit = self.vit_model
        x = vit.patch_embed.proj(image)
        batch, width, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        pos = torch.cat([self.query_pos_embed.expand(batch, -1, -1), self._position_table((h, w)).expand(batch, -1, -1)], 1)
        x = torch.cat([self.query_embed.expand(batch, -1, -1), x], dim=1) + pos
        x = vit.norm_pre(x)
        x = self._fuse(0, x, clip_maps, (h, w))
        for index, block in enumerate(vit.blocks, start=1):
            x = self._fuse(index, block(x), clip_maps, (h, w))
            if index < len(vit.blocks):
                x = x + pos
        q = self.num_queries
        patches = x[:, q:].transpose(1, 2).reshape(batch, width, h, w)
        return self.mask_decoder(x[:, :q], patches)
