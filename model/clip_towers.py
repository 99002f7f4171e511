"""CLIP towers built from open_clip, plus CAT-Seg's dense image path.

The towers are plain open_clip `CLIP` modules built offline (no pretrained tag, so no download)
with QuickGELU, the activation the OpenAI weights were trained with. Their parameter names are the
OpenAI ones, so an official CAT-Seg checkpoint maps onto them after merging q/k/v (see
`model.checkpoint`).

open_clip has no dense path, so `encode_image_dense` runs the visual tower itself:

* the position table keeps the size it was trained at (197 rows for ViT-B/16) and is resized
  bicubically to the run-time patch grid on every forward, as the official code does;
* the outputs of the guidance-tap blocks are returned raw (before `ln_post`, no projection);
* the last block runs CAT-Seg's dense variant (`dense_last_block`), and `ln_post` and the
  projection are applied to every token, giving one C-d embedding per patch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
import open_clip
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from torch import Tensor, nn

from model.configs import CATSegConfig
from model.text import tokenize

if TYPE_CHECKING:
    from model.san.config import SANConfig


def build_clip(config: CATSegConfig | SANConfig, cast_dtype: torch.dtype | None = None) -> CLIP:
    """A randomly initialised open_clip CLIP with the variant's towers (QuickGELU, OpenAI names);
    any config with `embed_dim`, `vision` and `text` of `model.configs`' tower configs.
    `cast_dtype` float16 gives LayerNorms that compute in float32 and cast back (OpenAI's own), for
    a tower whose weights are then cast to float16 (`half_clip_weights`)."""
    vision = CLIPVisionCfg(
        layers=config.vision.layers,
        width=config.vision.width,
        head_width=config.vision.head_width,
        patch_size=config.vision.patch_size,
        image_size=config.vision.pos_embed_image_size,
    )
    text = CLIPTextCfg(
        context_length=config.text.context_length,
        vocab_size=config.text.vocab_size,
        width=config.text.width,
        heads=config.text.heads,
        layers=config.text.layers,
    )
    return CLIP(embed_dim=config.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True, cast_dtype=cast_dtype)


def half_clip_weights(clip: CLIP) -> None:
    """Cast to float16 exactly what OpenAI's `clip.load(jit=False)` keeps in float16 (its
    `convert_weights`): every linear, convolution and attention weight and bias and the two
    projections; the embeddings, position tables, LayerNorms and the logit scale stay as they are."""
    for module in clip.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            params = [module.weight, module.bias]
        elif isinstance(module, nn.MultiheadAttention):
            params = [getattr(module, name) for name in
                      ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias", "bias_k", "bias_v")]
        else:
            params = [getattr(module, name, None) for name in ("text_projection", "proj")]
        for param in params:
            if isinstance(param, torch.Tensor):
                param.data = param.data.half()


def causal_text_mask(context_length: int) -> Tensor:
    """The text tower's additive causal mask (what open_clip registers as `attn_mask`)."""
    return torch.full((context_length, context_length), float("-inf")).triu_(1)


def resized_position_table(table: Tensor, grid: tuple[int, int]) -> Tensor:
    """The (1 + gh*gw, D) position table for a gh x gw patch grid.

    The class position is kept; the square patch part is resized with bicubic interpolation
    (align_corners=False, no antialias). A table that already fits is returned as is.
    """
    gh, gw = grid
    if table.shape[0] == 1 + gh * gw:
        return table
    side = int(round((table.shape[0] - 1) ** 0.5))
    cls_pos, patch_pos = table[:1], table[1:]
    patch_pos = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos, size=(gh, gw), mode="bicubic", align_corners=False)
    patch_pos = patch_pos.reshape(table.shape[1], gh * gw).T
    return torch.cat([cls_pos, patch_pos], dim=0)


def dense_last_block(block: nn.Module, x: Tensor) -> Tensor:
    """CAT-Seg's replacement for the last visual block: every token becomes its own value vector.

    There is no attention mixing: token i becomes out_proj(v_i) plus the block's *input class
    token* (not x_i), then the usual MLP residual. x is (B, N, D), batch first.
    """
    width = x.shape[-1]
    attn = block.attn
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :])
    v = attn.out_proj(v) + x[:, :1]
    return v + block.mlp(block.ln_2(v))


def encode_image_dense(clip: CLIP, images: Tensor, taps: tuple[int, ...],
                       images_per_chunk: int | None = None) -> tuple[Tensor, list[Tensor]]:
    """Dense CLIP features of normalised images (B, 3, S, S).

    Returns the projected, `ln_post`-normalised tokens (B, 1 + g*g, C) (token 0 is the class
    token) and the raw outputs (B, 1 + g*g, D) of the blocks listed in `taps`. With
    `images_per_chunk` the tower runs on that many images at a time (see `model.chunks`).
    """
    if images_per_chunk is not None and images.shape[0] > images_per_chunk:
        parts = [encode_image_dense(clip, chunk, taps) for chunk in images.split(images_per_chunk)]
        return torch.cat([tokens for tokens, _ in parts]), [torch.cat(tap) for tap in zip(*(t for _, t in parts))]
    visual = clip.visual
    x = visual.conv1(images)
    batch, width, gh, gw = x.shape
    x = x.reshape(batch, width, gh * gw).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(batch, 1, width)
    x = torch.cat([cls, x], dim=1)
    x = x + resized_position_table(visual.positional_embedding, (gh, gw)).to(x.dtype)
    x = visual.ln_pre(x)
    blocks = visual.transformer.resblocks
    tapped = []
    for index, block in enumerate(blocks[:-1]):
        x = block(x)
        if index in taps:
            tapped.append(x)
    x = dense_last_block(blocks[-1], x)
    x = visual.ln_post(x) @ visual.proj
    return x, tapped


def encode_prompts(clip: nn.Module, tokens: Tensor) -> Tensor:
    """open_clip `encode_text`, run only up to the longest prompt's end-of-text token when exact.

    With a causal text mask and argmax (end-of-text) pooling no position sees a later one, so the
    padding after the longest prompt cannot change any pooled feature; cutting it saves most of
    the text tower's work (prompts are ~10-20 of 77 tokens). Other towers run unchanged.
    """
    if not (isinstance(clip, open_clip.CLIP) and clip.text_pool_type == "argmax" and clip.attn_mask is not None):
        return clip.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:length, :length]))
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    return clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection


def template_class_embeddings(clip: nn.Module, class_names: list[str], templates: tuple[str, ...],
                              context_length: int) -> Tensor:
    """(T, C) class embeddings of a template set: each prompt's text embedding L2-normalised,
    averaged over the templates, normalised again (SAN's and ZSSeg's predefined-template prompts).
    Names are used verbatim but for surrounding whitespace (the official label sets strip it)."""
    prompts = [template.format(name.strip()) for template in templates for name in class_names]
    device = next(clip.parameters()).device
    embeds = F.normalize(encode_prompts(clip, tokenize(prompts, context_length).to(device)), dim=-1)
    return F.normalize(embeds.reshape(len(templates), len(class_names), -1).mean(dim=0), dim=-1)
