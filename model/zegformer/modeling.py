"""ZegFormer (Ding et al., CVPR 2022, "Decoupling Zero-Shot Semantic Segmentation") in plain PyTorch
on `model.maskformer` and an open_clip CLIP, as the MESS fork evaluates it.

    image (resized, uint8) -> ImageNet-normalised, padded to 32 -> MaskFormer (R-101)
      -> segment embeddings (Q, 512) = class_embed(query states), L2-normalised
      -> segment logits (Q, T + 1) = 100 x segment . [class texts ("imagenet_select"); background]
         (the learned background embedding is not normalised)
      -> mask logits at 1/4 -> bilinear to the padded size
    crops: CLIP-normalised padded image x (sigmoid mask > 0.5), RoIAlign (aligned) at the binary
      mask's box (inclusive ends; a box of zero area -> the whole padded image) to 224 x 224
      -> CLIP ViT-B/16 -> unit embeddings -> exp(CLIP logit scale) x cos with the class texts
         ("imagenet_select_clip")
    class logits per query = [CLIP crop logits (T); segment background logit] -> softmax, background
      dropped; scores (T, H, W) = sum over queries of probs x sigmoid mask, cropped, bilinear to the
      original size.

The segment logits of the classes are computed (as the official head does) but only their
background column reaches the scores: the MESS config leaves `MASK_FORMER.ENSEMBLING` off.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.clip_towers import build_clip, causal_text_mask, encode_prompts, half_clip_weights
from model.maskformer.modeling import MaskFormer
from model.text import tokenize
from model.zegformer.config import ZegFormerConfig


def class_prompts(name: str, templates: tuple[str, ...]) -> list[str]:
    """Every prompt of one class: a name with ", " is several variants, each in every template
    (the official `zeroshot_classifier`); the name is used as given (no strip)."""
    variants = name.split(", ") if ", " in name else [name]
    return [template.format(variant) for template in templates for variant in variants]


class ZegFormer(nn.Module):
    def __init__(self, config: ZegFormerConfig):
        super().__init__()
        self.config = config
        self.maskformer = MaskFormer(config.maskformer)
        self.clip = build_clip(config, torch.float16 if config.clip_fp16 else None)
        self.bg_feature = nn.Parameter(torch.empty(1, config.embed_dim))
        nn.init.kaiming_uniform_(self.bg_feature, a=math.sqrt(5))
        # frozen ln(1 / temperature), stored in the checkpoint (float32, as the official parameter)
        self.logit_scale = nn.Parameter(torch.tensor([math.log(1 / config.temperature)], dtype=torch.float32),
                                        requires_grad=False)
        self.checkpoint_sha256: str | None = None  # set by `create_zegformer` when weights are loaded

    @property
    def device(self) -> torch.device:
        return self.bg_feature.device

    @property
    def dtype(self) -> torch.dtype:
        return self.bg_feature.dtype

    @property
    def clip_dtype(self) -> torch.dtype:
        """What CLIP's inputs are cast to: float16 with `config.clip_fp16`, else the model's dtype."""
        return self.clip.visual.conv1.weight.dtype

    def reset_buffers(self) -> None:
        """Recompute the non-persistent text mask and, with `config.clip_fp16`, cast the CLIP weights
        to float16 as OpenAI's loader does (both needed after building or loading weights)."""
        self.clip.attn_mask = causal_text_mask(self.config.text.context_length).to(self.device)
        if self.config.clip_fp16:
            half_clip_weights(self.clip)

    @torch.no_grad()
    def text_embeddings(self, class_names: list[str], templates: tuple[str, ...]) -> Tensor:
        """(T, C) per class: its prompts' unit text embeddings averaged, normalised again (in CLIP's
        dtype, as the official `zeroshot_classifier`), in the model's dtype."""
        prompts, owner = [], []
        for i, name in enumerate(class_names):
            texts = class_prompts(name, templates)
            prompts += texts
            owner += [i] * len(texts)
        tokens = tokenize(prompts, self.config.text.context_length).to(self.device)
        embeds = torch.cat([F.normalize(encode_prompts(self.clip, chunk), dim=-1)
                            for chunk in tokens.split(self.config.prompts_per_chunk)])
        owner = torch.tensor(owner, device=self.device)
        means = torch.stack([embeds[owner == i].mean(dim=0) for i in range(len(class_names))])
        return F.normalize(means, dim=-1).to(self.dtype)

    @torch.no_grad()
    def class_embeddings(self, class_names: list[str]) -> Tensor:
        """(2, T, C): the segment classifier's ("imagenet_select") and the crop classifier's
        ("imagenet_select_clip") unit class embeddings."""
        return torch.stack([self.text_embeddings(class_names, self.config.query_templates),
                            self.text_embeddings(class_names, self.config.clip_templates)])

    def forward(self, images: Tensor, query_text: Tensor) -> tuple[Tensor, Tensor]:
        """(segment logits (B, Q, T + 1), mask logits (B, Q, H/4, W/4)) for normalised, padded images."""
        embeds, masks = self.maskformer(images)
        scaled = self.logit_scale.exp() * F.normalize(embeds, dim=-1)
        logits = torch.cat([scaled @ query_text.to(scaled).T, scaled @ self.bg_feature.T], dim=-1)
        return logits, masks
