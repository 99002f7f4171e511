"""CAT-Seg (CVPR 2024): CLIP dense features -> cosine cost volume -> aggregation -> upsampling decoder.

    images (B, 3, 384, 384), CLIP-normalised
      -> [resize to the CLIP resolution] -> CLIP image tower, dense last block
         -> patch embeddings (B, C, 24, 24)                    (cost volume + appearance guidance)
         -> raw outputs of two tap blocks -> ConvT x2 / x4     (decoder guidance, 48 and 96 px)
    class embeddings (T, C) from the CLIP text tower
      -> Aggregator: cosine cost (B, T, 24, 24) -> conv embed -> 2 x (Swin over space,
         linear attention over classes) -> Decoder -> logits (B, T, 96, 96)

With more than `pad_len` (256) classes each window keeps its 256 best-matching classes and the
others get logit -100. Patch inference over whole images lives in `model.inference`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from model.aggregator import Aggregator
from model.chunks import chunk_bytes, items_per_chunk
from model.clip_towers import build_clip, causal_text_mask, encode_image_dense
from model.configs import CATSegConfig
from model.decoder import Decoder
from model.text import class_prompts, tokenize
from model.training_free.segment import encode_prompts


class _StackedQKV(nn.Module):
    """Parametrization of `nn.MultiheadAttention.in_proj_weight` as three (D, D) tensors q, k, v.

    open_clip keeps q, k and v in one merged matrix; the official recipe trains q and v but not
    k. Splitting the matrix into three originals lets the optimizer see q and v as parameters of
    their own (so weight decay never touches k) while the module still reads one matrix.
    """

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return torch.cat([q, k, v], dim=0)

    def right_inverse(self, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = weight.chunk(3, dim=0)
        return q.clone(), k.clone(), v.clone()


_PARAMETRIZED_QKV = ".parametrizations.in_proj_weight.original"


class CATSeg(nn.Module):
    def __init__(self, config: CATSegConfig):
        super().__init__()
        self.config = config
        self.clip = build_clip(config)
        width = config.vision.width
        up1, up2 = config.decoder_guidance_dims
        self.upsample1 = nn.ConvTranspose2d(width, up1, kernel_size=2, stride=2)
        self.upsample2 = nn.ConvTranspose2d(width, up2, kernel_size=4, stride=4)
        self.aggregator = Aggregator(config)
        self.decoder = Decoder(config)
        self.checkpoint_sha256: str | None = None  # set by `model.create_model` when weights are loaded
        self.text_cache: dict[tuple[str, ...], Tensor] = {}  # see `encode_classes`

    @property
    def device(self) -> torch.device:
        return self.upsample1.weight.device

    def reset_buffers(self) -> None:
        """Recompute the non-persistent buffers (needed after building on the meta device)."""
        device = self.device
        self.clip.attn_mask = causal_text_mask(self.config.text.context_length).to(device)
        for layer in self.aggregator.layers:
            layer.swin_block.block_1.reset_buffers(device)
            layer.swin_block.block_2.reset_buffers(device)

    def train(self, mode: bool = True) -> CATSeg:
        if mode:
            self.text_cache.clear()
        return super().train(mode)

    # ----------------------------------------------------------------------------------- inputs
    def normalize(self, images: Tensor) -> Tensor:
        """RGB images on the 0-255 scale (B, 3, H, W) -> CLIP-normalised float."""
        mean = torch.tensor(self.config.pixel_mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.config.pixel_std, device=images.device).view(1, 3, 1, 1)
        return (images.float() - mean) / std

    def tokenize(self, class_names: list[str]) -> Tensor:
        """Token ids (T, context_length) of the class prompts, on the model's device."""
        prompts = class_prompts(class_names, self.config.prompt_template)
        return tokenize(prompts, self.config.text.context_length).to(self.device)

    def text_embeddings(self, class_names: list[str] | Tensor) -> Tensor:
        """L2-normalised prompt embeddings (T, C) of class names (or of their `tokenize` ids),
        under autograd: training fine-tunes q/v of the text tower. For evaluation use the cached
        `model.encode_classes`."""
        tokens = class_names if isinstance(class_names, Tensor) else self.tokenize(class_names)
        return F.normalize(encode_prompts(self.clip, tokens), dim=-1)  # cut after the longest prompt

    # ---------------------------------------------------------------------------------- forward
    def encode_image(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Normalised crops (B, 3, S, S) -> patch embeddings (B, C, g, g) and the two decoder
        guidance maps (B, 256, 2g, 2g), (B, 128, 4g, 4g) (official widths)."""
        size = self.config.clip_resolution
        if images.shape[-2:] != (size, size):
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        tokens_per_image = 1 + self.config.feature_size**2
        mlp_bytes = tokens_per_image * 4 * self.config.vision.width * images.element_size()
        per_chunk = items_per_chunk(chunk_bytes(images.device), mlp_bytes)
        tokens, taps = encode_image_dense(self.clip, images, self.config.guidance_taps, per_chunk)
        batch, g = images.shape[0], self.config.feature_size

        def to_grid(t: Tensor) -> Tensor:
            return t[:, 1:].transpose(1, 2).reshape(batch, -1, g, g)

        guidance = [self.upsample1(to_grid(taps[0])), self.upsample2(to_grid(taps[1]))]
        return to_grid(tokens), guidance

    def forward(self, images: Tensor, class_embeds: Tensor, pool_size: int | None = None) -> Tensor:
        """Per-class logits (B, T, 4g, 4g) (96 x 96 for both official variants).

        images: CLIP-normalised crops (B, 3, crop, crop); class_embeds: (T, C) embeddings shared
        by the batch, (B, T, C), or integer token ids (T, context_length) from `tokenize`, which
        are encoded here under autograd; pool_size: class-block pooling, by default the config's
        `train_pooling` (2) in training mode and `eval_pooling` (1) in eval mode.
        """
        if not class_embeds.is_floating_point():
            class_embeds = self.text_embeddings(class_embeds)
        if pool_size is None:
            pool_size = self.config.train_pooling if self.training else self.config.eval_pooling
        img_feats, guidance = self.encode_image(images)
        batch = images.shape[0]
        text = class_embeds if class_embeds.dim() == 3 else class_embeds.unsqueeze(0).expand(batch, -1, -1)
        text = text.to(img_feats.dtype)
        budget = chunk_bytes(images.device)
        cost, selected = self.aggregator(img_feats, text, pool_size, budget)
        logits = self.decoder(cost, guidance, budget)
        if selected is not None:
            full = logits.new_full((batch, text.shape[1], *logits.shape[-2:]), -100.0)
            logits = full.scatter(1, selected[:, :, None, None].expand_as(logits), logits)
        return logits

    # --------------------------------------------------------------------------------- training
    def freeze_for_finetuning(self) -> None:
        """Set `requires_grad` as the official recipe (CLIP_FINETUNE "attention") does.

        Trainable: the q and v projection weights of every block of both CLIP towers, and all of
        upsample1/2, the aggregator and the decoder. Frozen: everything else in CLIP (k, biases,
        out_proj, MLPs, norms, embeddings). The merged `in_proj_weight` of each block becomes a
        parametrization over q, k and v (see `_StackedQKV`); `canonical_state_dict` merges them
        back for saving. The official optimizer gives CLIP parameters (names starting "clip.")
        0.01 x the base learning rate.
        """
        for p in self.clip.parameters():
            p.requires_grad_(False)
        blocks = [*self.clip.visual.transformer.resblocks, *self.clip.transformer.resblocks]
        for block in blocks:
            attn = block.attn
            if not parametrize.is_parametrized(attn, "in_proj_weight"):
                parametrize.register_parametrization(attn, "in_proj_weight", _StackedQKV())
            qkv = attn.parametrizations.in_proj_weight
            qkv.original0.requires_grad_(True)  # q
            qkv.original1.requires_grad_(False)  # k
            qkv.original2.requires_grad_(True)  # v

    def canonical_state_dict(self) -> dict[str, Tensor]:
        """The state dict with merged `in_proj_weight`s, whatever `freeze_for_finetuning` did."""
        merged: dict[str, Tensor] = {}
        parts: dict[str, list[Tensor]] = {}
        for key, value in self.state_dict().items():
            if _PARAMETRIZED_QKV in key:
                prefix = key.split(_PARAMETRIZED_QKV)[0]
                parts.setdefault(prefix, []).append(value)
                if len(parts[prefix]) == 3:
                    merged[f"{prefix}.in_proj_weight"] = torch.cat(parts.pop(prefix), dim=0)
            else:
                merged[key] = value
        return merged


@torch.no_grad()
def encode_classes(model: CATSeg, class_names: list[str]) -> Tensor:
    """L2-normalised text embeddings (T, C) of a class list, computed once per model and list.

    The cache lives on the model instance, so it is specific to its variant and weights; it is
    emptied whenever the model enters training mode (its text encoder may change there).
    """
    key = tuple(class_names)
    cached = model.text_cache.get(key)
    if cached is None:
        cached = model.text_embeddings(list(class_names))
        model.text_cache[key] = cached
    return cached
