"""OVSeg (Liang et al., CVPR 2023, "Open-Vocabulary Semantic Segmentation with Mask-adapted CLIP") in
plain PyTorch. Its official code is a modified copy of ZSSeg's, and so is this: a `ZSSeg` with

* a Swin-B MaskFormer backbone and 768-d query embeddings (the config);
* the mask-prompt-tuned CLIP ViT-L/14 classifying the masked crops: the patches outside the
  proposal carry learned prompt embeddings (`mask_embedding`, `model.ovseg.mask_prompts`);
* mask threshold 0.4, ensemble maskformer^0.3 x clip^0.7, short side 640 (the config).

The inference (`model.zsseg.inference`) is ZSSeg's; it calls `clip_mask_logits`, overridden here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.maskformer.clip_classifier import masked_crops
from model.ovseg.config import OVSegConfig
from model.ovseg.mask_prompts import crop_masks, encode_with_mask_prompts
from model.zsseg.modeling import ZSSeg


class OVSeg(ZSSeg):
    def __init__(self, config: OVSegConfig):
        super().__init__(config)
        # zeros: an untrained model's prompts are blank tokens, as the official initialisation
        self.mask_embedding = nn.Parameter(torch.zeros(config.mask_prompt_depth, config.clip_grid**2,
                                                       config.vision.width))

    def reset_buffers(self) -> None:
        """Also recompute the Swin blocks' non-persistent position index (after a meta-device build)."""
        super().reset_buffers()
        for module in self.maskformer.backbone.modules():
            if module is not self.maskformer.backbone and hasattr(module, "reset_buffers"):
                module.reset_buffers()

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
