"""CAT-Seg on open_clip towers whose image side is a timm model: EVA-02-CLIP and SigLIP (seed Table 4).

The seed (supplementary C.2) reports CAT-Seg on EVA-02-CLIP-L/14 and SigLIP-ViT-L/16 without
code or weights, so what CAT-Seg takes from such a tower is our reading of the CLIP recipe
(`model.clip_towers`), not a reproduction of unpublished code:

* the towers are open_clip's `CustomTextCLIP` built from an open_clip architecture config
  (`EVA02-L-14-336`, `ViT-L-16-SigLIP-384`; both see 24 x 24 patches at their native resolution,
  so no position table is resized), parameter names as open_clip's, so its pretrained files load;
* decoder guidance: the raw outputs of two blocks (before the final norm), as for CLIP;
* dense embeddings, "last_block_values" (EVA-02, which has a class token): the last block keeps
  only its value path, each token's own value through the attention's output layers plus the
  block's input class token, then the MLP residual (CAT-Seg's CLIP rule); then the final norm and
  the projection head on every token;
* dense embeddings, "pool_values" (SigLIP, no class token: its embedding is an attention-pooling
  "MAP" head): every block runs as usual, then each token goes through the pooling head's value
  path (its own value, output projection, the head's MLP residual), the MAP analogue of the same rule.

The value path of an attention layer is taken by calling the layer itself with a mask that lets
every token attend only to itself (softmax over one entry is 1), so norms, gates and rotary
embeddings inside the layer are handled as the layer handles them.

Tiny variants of the same timm classes (`catseg_tiny_*`, registered in timm here) let tests and
the demo build these towers in-process, without weights.
"""

from __future__ import annotations

import json

import torch
from torch import Tensor, nn

from model.configs import OpenClipTowers

TINY_EVA02 = dict(embed_dim=64, depth=4, num_heads=2)
TINY_SIGLIP = dict(embed_dim=64, depth=4, num_heads=2)


def _register_tiny_timm_models() -> None:
    """timm names for the tiny towers: the large EVA-02-CLIP / SigLIP definitions at tiny widths."""
    from timm.models import register_model
    from timm.models._registry import is_model
    from timm.models.eva import eva02_large_patch14_clip_336
    from timm.models.vision_transformer import vit_large_patch16_siglip_384

    if is_model("catseg_tiny_eva02_patch14_clip_336"):
        return

    def catseg_tiny_eva02_patch14_clip_336(pretrained: bool = False, **kwargs):
        return eva02_large_patch14_clip_336(pretrained=False, **{**TINY_EVA02, **kwargs})

    def catseg_tiny_siglip_patch16_384(pretrained: bool = False, **kwargs):
        return vit_large_patch16_siglip_384(pretrained=False, **{**TINY_SIGLIP, **kwargs})

    register_model(catseg_tiny_eva02_patch14_clip_336)
    register_model(catseg_tiny_siglip_patch16_384)


def open_clip_model_config(towers: OpenClipTowers) -> dict:
    """The open_clip architecture config of the towers (explicit for tiny variants)."""
    import open_clip

    if towers.model_cfg_json is not None:
        return json.loads(towers.model_cfg_json)
    cfg = open_clip.get_model_config(towers.architecture)
    if cfg is None:
        raise ValueError(f"open_clip has no architecture {towers.architecture!r}; upgrade open_clip_torch")
    return cfg


def build_open_clip_towers(towers: OpenClipTowers) -> nn.Module:
    """A randomly initialised open_clip `CustomTextCLIP` (no pretrained weights, no download)."""
    from open_clip.model import CustomTextCLIP

    _register_tiny_timm_models()
    cfg = dict(open_clip_model_config(towers))
    cfg.pop("custom_text", None)
    return CustomTextCLIP(**cfg)


def _self_only_mask(tokens: int, like: Tensor) -> Tensor:
    """Additive (N, N) attention mask: 0 on the diagonal, -inf elsewhere."""
    mask = torch.full((tokens, tokens), float("-inf"), dtype=like.dtype, device=like.device)
    return mask.fill_diagonal_(0.0)


def _eva_dense(trunk: nn.Module, images: Tensor, taps: tuple[int, ...]) -> tuple[Tensor, list[Tensor]]:
    x = trunk.patch_embed(images)
    x, rope = trunk._pos_embed(x)
    x = trunk.norm_pre(x)
    tapped = []
    for index, block in enumerate(trunk.blocks[:-1]):
        x = block(x, rope=rope)
        if index in taps:
            tapped.append(x[:, trunk.num_prefix_tokens :])
    block = trunk.blocks[-1]
    values = block.attn(block.norm1(x), rope=rope, attn_mask=_self_only_mask(x.shape[1], x))
    if block.gamma_1 is not None:
        values = block.gamma_1 * values
    x = values + x[:, :1]  # CAT-Seg's rule: the block's input class token, not x_i
    mlp = block.mlp(block.norm2(x))
    x = x + (block.gamma_2 * mlp if block.gamma_2 is not None else mlp)
    x = trunk.fc_norm(trunk.norm(x))
    return trunk.head(x)[:, trunk.num_prefix_tokens :], tapped


def _siglip_dense(trunk: nn.Module, images: Tensor, taps: tuple[int, ...]) -> tuple[Tensor, list[Tensor]]:
    x = trunk.norm_pre(trunk.patch_drop(trunk._pos_embed(trunk.patch_embed(images))))
    tapped = []
    for index, block in enumerate(trunk.blocks):
        x = block(x)
        if index in taps:
            tapped.append(x[:, trunk.num_prefix_tokens :])
    x = trunk.norm(x)[:, trunk.num_prefix_tokens :]
    pool = trunk.attn_pool
    if pool.pos_embed is not None:
        x = x + pool.pos_embed.unsqueeze(0).to(x.dtype)
    batch, tokens, width = x.shape
    values = pool.kv(x).reshape(batch, tokens, 2, width)[:, :, 1]  # the value half of k|v
    x = pool.proj(values)
    if pool.mlp is not None:
        x = x + pool.mlp(pool.norm(x))
    return trunk.head(trunk.fc_norm(x)), tapped


DENSE_PATHS = {"last_block_values": _eva_dense, "pool_values": _siglip_dense}


def encode_image_dense_timm(clip: nn.Module, towers: OpenClipTowers, images: Tensor,
                            taps: tuple[int, ...]) -> tuple[Tensor, list[Tensor]]:
    """Dense embeddings (B, g*g, C) of normalised images at the tower's resolution, and the raw
    outputs (B, g*g, D) of the `taps` blocks, patch tokens only."""
    visual = clip.visual
    tokens, tapped = DENSE_PATHS[towers.dense](visual.trunk, images, taps)
    return visual.head(tokens), tapped


def reset_timm_buffers(clip: nn.Module, device: torch.device) -> None:
    """Recompute the towers' non-persistent buffers (rotary tables, text masks) after a build on
    the meta device."""
    for module in clip.modules():
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and buffer.is_meta:
                module._buffers[name] = torch.empty_like(buffer, device=device)
        init = getattr(module, "init_non_persistent_buffers", None)
        if callable(init) and module is not clip:
            init()
    text = clip.text
    if getattr(text, "attn_mask", None) is not None:
        text.attn_mask = text.build_causal_mask().to(device)
