"""OVSeg (Liang et al., CVPR 2023, "Open-Vocabulary Semantic Segmentation with Mask-adapted CLIP") in
plain PyTorch on `model.maskformer` and an open_clip CLIP. Its code is a modified copy of ZSSeg's:

    image (resized, uint8) -> ImageNet-normalised, padded to 32 -> MaskFormer (Swin-B)
      -> query embeddings (Q, 768) -> 100 x cos(query, [class texts; non-object]) -> softmax,
         "no object" dropped: MaskFormer probabilities (Q, T)
      -> mask logits at 1/4 -> bilinear to the padded size, cropped to the image -> sigmoid (Q, H, W)
    masked crops of the proposals (> 0.4 somewhere) -> mask-prompted CLIP ViT-L/14 (the patches
      outside the proposal carry learned prompt embeddings, `model.ovseg.mask_prompts`)
      -> 100 x cos(crop, class texts) -> softmax: CLIP probabilities;
      probs = maskformer^0.3 x clip^0.7 (invalid proposals: clip = 1)
    scores (T, H, W) = sum over queries of probs x sigmoid mask, then bilinear to the original size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.clip_towers import build_clip, causal_text_mask, template_class_embeddings
from model.maskformer.clip_classifier import masked_crops
from model.maskformer.modeling import MaskFormer
from model.ovseg.config import OVSegConfig
from model.ovseg.mask_prompts import crop_masks, encode_with_mask_prompts


class OVSeg(nn.Module):
    def __init__(self, config: OVSegConfig):
        super().__init__()
        self.config = config
        self.maskformer = MaskFormer(config.maskformer)
        self.clip = build_clip(config)
        self.non_object_embedding = nn.Parameter(torch.empty(1, config.embed_dim))
        nn.init.normal_(self.non_object_embedding, std=config.text.width**-0.5)
        # zeros: an untrained model's prompts are blank tokens, as the official initialisation
        self.mask_embedding = nn.Parameter(torch.zeros(config.mask_prompt_depth, config.clip_grid**2,
                                                       config.vision.width))
        self.checkpoint_sha256: str | None = None  # set by `create_ovseg` when weights are loaded

    @property
    def device(self) -> torch.device:
        return self.non_object_embedding.device

    @property
    def dtype(self) -> torch.dtype:
        return self.non_object_embedding.dtype

    def reset_buffers(self) -> None:
        """Recompute the non-persistent buffers (needed after building on the meta device)."""
        self.clip.attn_mask = causal_text_mask(self.config.text.context_length).to(self.device)
        for module in self.maskformer.backbone.modules():
            if hasattr(module, "reset_buffers"):
                module.reset_buffers()

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

    def clip_mask_logits(self, image: Tensor, mask_probs: Tensor, class_embeds: Tensor) -> tuple[Tensor, Tensor]:
        """(CLIP logits (V, T) of the valid proposals, valid flags (Q,)): masked crops of `image`
        (3, H, W; 0-255) through the mask-prompted CLIP tower. A proposal is valid when its sigmoid
        mask (Q, H, W) exceeds the threshold somewhere."""
        config = self.config.mask_clip
        binary = mask_probs > config.mask_threshold
        valid = binary.flatten(1).any(dim=1)
        if not bool(valid.any()):
            return class_embeds.new_zeros(0, class_embeds.shape[0]), valid
        crops = masked_crops(image, binary[valid], config)
        cut = crop_masks(binary[valid], config)
        chunk = self.config.images_per_chunk
        embeds = torch.cat([
            encode_with_mask_prompts(self.clip.visual, self.mask_embedding, c, m)
            for c, m in zip(crops.split(chunk), cut.split(chunk))
        ])
        return config.temperature * F.normalize(embeds, dim=-1) @ class_embeds.to(embeds).T, valid
