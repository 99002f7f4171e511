"""Dense patch embeddings from an open_clip ViT with a training-free last block.

All four methods keep CLIP's first L-1 visual blocks and change only the last one, then apply
`ln_post` and the projection to every patch token (the class token is dropped):

* maskclip: each token becomes its own *value*: out_proj(v) plus the block input, then the MLP
  residual (no attention mixing).
* sclip: correlative self-attention, softmax(q q^T s) + softmax(k k^T s), keeping the residual
  and the MLP.
* clearclip: self-self attention softmax(q q^T s), with neither the residual nor the MLP.
* naclip: softmax(k k^T s + G), G a Gaussian over the patch grid (0 for the class token), with
  neither the residual nor the MLP.

s = head_dim ** -0.5. The towers are open_clip `VisionTransformer`s; weights are never changed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.clip_towers import resized_position_table
from model.training_free.methods import MethodConfig


def check_tower(visual: nn.Module) -> None:
    """Raise if `visual` is not an open_clip ViT with a class token and a token-level projection."""
    needed = ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post", "proj")
    missing = [name for name in needed if getattr(visual, name, None) is None]
    if missing:
        raise ValueError(f"the open_clip visual tower {type(visual).__name__} lacks {', '.join(missing)}: "
                         "training-free methods need a plain open_clip ViT (class token, ln_post, proj)")
    if getattr(visual, "attn_pool", None) is not None:
        raise ValueError("open_clip towers with attentional pooling are not supported by the training-free methods")
    if not getattr(visual.transformer, "batch_first", True):
        raise ValueError("the open_clip visual transformer must be batch_first (open_clip >= 2.23)")


def _norm(module: nn.Module, x: Tensor, eps: float | None) -> Tensor:
    if eps is None or not isinstance(module, nn.LayerNorm):
        return module(x)
    return F.layer_norm(x, module.normalized_shape, module.weight, module.bias, eps)


def _mlp(mlp: nn.Module, x: Tensor, activation: str | None) -> Tensor:
    if activation is None:
        return mlp(x)
    if activation != "gelu":
        raise ValueError(f"mlp_activation must be None or 'gelu', got {activation!r}")
    return mlp.c_proj(F.gelu(mlp.c_fc(x)))


def _trunk_block(block: nn.Module, x: Tensor, method: MethodConfig) -> Tensor:
    if method.mlp_activation is None and method.layer_norm_eps is None:
        return block(x)
    y = _norm(block.ln_1, x, method.layer_norm_eps)
    x = x + block.ls_1(block.attn(y, y, y, need_weights=False)[0])
    return x + block.ls_2(_mlp(block.mlp, _norm(block.ln_2, x, method.layer_norm_eps), method.mlp_activation))


def _split_heads(attn: nn.MultiheadAttention, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, N, D) -> q, k, v of shape (B, heads, N, head_dim)."""
    batch, tokens, width = y.shape
    q, k, v = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    shape = (batch, tokens, attn.num_heads, width // attn.num_heads)
    return tuple(t.reshape(shape).transpose(1, 2) for t in (q, k, v))


def _merge_heads(attn: nn.MultiheadAttention, weights: Tensor, v: Tensor) -> Tensor:
    out = (weights @ v).transpose(1, 2)
    return attn.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


def gaussian_bias(grid: tuple[int, int], std: float) -> Tensor:
    """NACLIP's (1 + gh*gw)^2 attention bias: exp(-d^2 / (2 std^2)) between patches, 0 on the class token."""
    gh, gw = grid
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    rows, cols = rows.flatten().float(), cols.flatten().float()
    dist2 = (rows[:, None] - rows[None, :]) ** 2 + (cols[:, None] - cols[None, :]) ** 2
    bias = torch.zeros(1 + gh * gw, 1 + gh * gw)
    bias[1:, 1:] = torch.exp(-dist2 / (2 * std**2))
    return bias


def _last_block(block: nn.Module, x: Tensor, method: MethodConfig, grid: tuple[int, int]) -> Tensor:
    attn = block.attn
    y = _norm(block.ln_1, x, method.layer_norm_eps)
    if method.last_block == "maskclip":
        width = x.shape[-1]
        v = F.linear(y, attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :])
        v = attn.out_proj(v) + x
        return v + _mlp(block.mlp, _norm(block.ln_2, v, method.layer_norm_eps), method.mlp_activation)
    q, k, v = _split_heads(attn, y)
    scale = q.shape[-1] ** -0.5
    if method.last_block == "sclip":
        weights = ((q @ q.transpose(-2, -1)) * scale).softmax(-1) + ((k @ k.transpose(-2, -1)) * scale).softmax(-1)
        x = x + _merge_heads(attn, weights, v)
        return x + _mlp(block.mlp, _norm(block.ln_2, x, method.layer_norm_eps), method.mlp_activation)
    if method.last_block == "clearclip":
        return _merge_heads(attn, ((q @ q.transpose(-2, -1)) * scale).softmax(-1), v)
    bias = gaussian_bias(grid, method.gaussian_std).to(device=x.device, dtype=q.dtype)
    return _merge_heads(attn, ((k @ k.transpose(-2, -1)) * scale + bias).softmax(-1), v)


def _position_table(table: Tensor, grid: tuple[int, int], mode: str) -> Tensor:
    if mode == "size":
        return resized_position_table(table, grid)
    if table.shape[0] == 1 + grid[0] * grid[1]:
        return table
    side = math.sqrt(table.shape[0] - 1)
    patch = table[1:].reshape(1, int(side), int(side), -1).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, scale_factor=((grid[0] + 0.1) / side, (grid[1] + 0.1) / side), mode="bicubic",
                          align_corners=False, recompute_scale_factor=False)
    return torch.cat([table[:1], patch.flatten(2)[0].T], dim=0)


def patch_embeddings(visual: nn.Module, images: Tensor, method: MethodConfig) -> Tensor:
    """(B, 3, H, W) normalised images -> (B, C, H // p, W // p) patch embeddings (not normalised)."""
    x = visual.conv1(images.to(visual.conv1.weight.dtype))
    batch, width, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(batch, 1, width)
    x = torch.cat([cls, x], dim=1)
    x = x + _position_table(visual.positional_embedding, (gh, gw), method.position_resize).to(x.dtype)
    x = _norm(visual.ln_pre, x, method.layer_norm_eps)
    blocks = visual.transformer.resblocks
    for block in blocks[:-1]:
        x = _trunk_block(block, x, method)
    x = _last_block(blocks[-1], x, method, (gh, gw))
    x = _norm(visual.ln_post, x, method.layer_norm_eps) @ visual.proj
    return x[:, 1:].transpose(1, 2).reshape(batch, -1, gh, gw)
