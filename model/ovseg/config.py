"""OVSeg-L's architecture and test protocol as one frozen dataclass.

Values: `configs/ovseg_swinB_vitL_bs32_120k.yaml` of blumenstiel/ov-seg-MESS@82176d4 (= facebookresearch/
ov-seg@36f49d4) with `open_vocab_seg/config.py` defaults, as `mess/eval.sh` runs it: MaskFormer on a
Swin-B (window 12), FPN pixel decoder with GroupNorm, 100 queries whose 768-d embeddings (2-layer MLP)
are classified against CLIP ViT-L/14 text embeddings of the 14 "vild" templates; the mask-prompt-tuned
CLIP ViT-L/14 classifies masked crops (mask threshold 0.4, prompt depth 3); ensemble weight 0.7;
whole image at short side 640 (max 2560).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.configs import TextTowerConfig, VisionTowerConfig
from model.maskformer.config import MaskClipConfig, MaskFormerConfig, PixelDecoderConfig, PredictorConfig, SwinConfig
from model.zsseg.config import ZSSegConfig

SWIN_B_W12 = SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=12)


@dataclass(frozen=True)
class OVSegConfig(ZSSegConfig):
    """ZSSeg's fields (OVSeg's code is a modified copy of ZSSeg's) with OVSeg's values, plus the mask
    prompts."""

    mask_clip: MaskClipConfig = MaskClipConfig(mask_threshold=0.4, ensemble_weight=0.7)  # MASK_THR, ENSEMBLE_WEIGHT
    test_short_side: int = 640  # INPUT.MIN_SIZE_TEST
    test_max_side: int = 2560  # INPUT.MAX_SIZE_TEST
    # MASK_PROMPT_DEPTH: learned embeddings replace the tokens of patches outside the proposal
    # before CLIP block 1 and after blocks 1 .. depth-1 (`model.ovseg.mask_prompts`)
    mask_prompt_depth: int = 3

    @property
    def clip_grid(self) -> int:
        """Patches per side of a crop (16 for 224 / 14): the mask embeddings hold grid² rows."""
        return self.mask_clip.crop_size // self.vision.patch_size


OVSEG_L = OVSegConfig(
    name="ovseg-l",
    description="OVSeg (CVPR 2023): MaskFormer Swin-B + mask-prompt-tuned CLIP ViT-L/14 masked crops, MESS protocol",
    maskformer=MaskFormerConfig(backbone=SWIN_B_W12, predictor=PredictorConfig(class_head="mlp", class_out=768)),
    embed_dim=768,
    vision=VisionTowerConfig(width=1024, layers=24, head_width=64, patch_size=14, pos_embed_image_size=224),
    text=TextTowerConfig(width=768, layers=12, heads=12),
)

OVSEG_TINY = OVSegConfig(
    name="ovseg-tiny",
    description="OVSeg code path with tiny widths (random weights; tests)",
    maskformer=MaskFormerConfig(
        backbone=SwinConfig(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=7),
        pixel_decoder=PixelDecoderConfig(conv_dim=32, mask_dim=32),
        predictor=PredictorConfig(hidden_dim=32, num_queries=8, nheads=2, dim_feedforward=64, dec_layers=2,
                                  class_head="mlp", class_out=32, class_hidden_dim=64)),
    embed_dim=32,
    vision=VisionTowerConfig(width=64, layers=4, head_width=32, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=32, layers=2, heads=2),
)

OVSEG_CONFIGS: dict[str, OVSegConfig] = {c.name: c for c in (OVSEG_L, OVSEG_TINY)}
