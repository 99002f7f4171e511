"""ZSSeg (Xu et al., ECCV 2022, "A Simple Baseline for Open-Vocabulary Semantic Segmentation with
Pre-trained Vision-language Model") in plain PyTorch on `model.maskformer` and an open_clip CLIP.

    image (resized, uint8) -> ImageNet-normalised, padded to 32 -> MaskFormer (R-101c)
      -> query embeddings (Q, 512) -> 100 x cos(query, [class texts; non-object]) -> softmax,
         "no object" dropped: MaskFormer probabilities (Q, T)
      -> mask logits at 1/4 -> bilinear to the padded size, cropped to the image -> sigmoid (Q, H, W)
    masked crops of the proposals (> 0.5 somewhere) -> CLIP ViT-B/16 -> 100 x cos(crop, class texts)
      -> softmax: CLIP probabilities; probs = maskformer^0.5 x clip^0.5 (invalid proposals: clip = 1)
    scores (T, H, W) = sum over queries of probs x sigmoid mask, then bilinear to the original size.

The official ensemble swaps the two exponents for classes a dataset marks as seen in training
(`MetadataCatalog.trainable_flag`); MESS's datasets mark none, and at weight 0.5 both forms agree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.clip_towers import build_clip, causal_text_mask, template_class_embeddings
from model.maskformer.modeling import MaskFormer
from model.zsseg.config import ZSSegConfig


class ZSSeg(nn.Module):
    def __init__(self, config: ZSSegConfig):
        super().__init__()
        self.config = config
        self.maskformer = MaskFormer(config.maskformer)
        self.clip = build_clip(config)
        self.non_object_embedding = nn.Parameter(torch.empty(1, config.embed_dim))
        nn.init.normal_(self.non_object_embedding, std=config.text.width**-0.5)
        self.checkpoint_sha256: str | None = None  # set by `create_zsseg` when weights are loaded

    @property
    def device(self) -> torch.device:
        return self.non_object_embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.non_object_embedding.dtype

    def reset_buffers(self) -> None:
        """Recompute the non-persistent text mask (needed after building on the meta device)."""
        self.clip.attn_mask = causal_text_mask(self.config.text.context_length).to(self.device)

    @torch.no_grad()
    def class_embeddings(self, class_names: list[str]) -> Tensor:
        """(T, C) unit text embeddings averaged over the "vild" templates (`PredefinedPromptExtractor`)."""
        return template_class_embeddings(self.clip, class_names, self.config.templates, self.config.text.context_length)

    def classifier(self, class_embeds: Tensor) -> Tensor:
        """(T + 1, C): the class embeddings and the unit non-object embedding (MaskFormer's classes)."""
        non_object = F.normalize(self.non_object_embedding, dim=-1)
        return torch.cat([class_embeds.to(non_object), non_object])

    def forward(self, images: Tensor, classifier: Tensor) -> tuple[Tensor, Tensor]:
        """(class logits (B, Q, T + 1), mask logits (B, Q, H/4, W/4)) for normalised, padded images."""
        embeds, masks = self.maskformer(images)
        logits = self.config.mask_clip.temperature * F.normalize(embeds, dim=-1) @ classifier.T
        return logits, masks
