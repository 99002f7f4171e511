"""ZSSeg-B's architecture and test protocol as one frozen dataclass.

Values: `configs/ade20k-150/cross_dataset_test_only.yaml` of blumenstiel/zsseg.baseline-MESS@24b44f3
(on `coco-stuff-164k-156/zero_shot_maskformer_R50_bs32_60k.yaml` and its bases, with
`mask_former/config.py` defaults) as `mess/eval.sh` runs it, i.e. with `MODEL.CLIP_ADAPTER.MASK_THR
0.5` on the command line: MaskFormer on ResNet-101c (deeplab stem, multi-grid 1-2-4), FPN pixel
decoder with GroupNorm, 100 queries whose 512-d embeddings (2-layer MLP) are classified against
CLIP ViT-B/16 text embeddings of the 14 "vild" templates; CLIP ViT-B/16 classifies masked crops;
ensemble weight 0.5; whole image at short side 512 (max 2048).
"""

from __future__ import annotations

from dataclasses import dataclass

from model.configs import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, TextTowerConfig, VisionTowerConfig
from model.maskformer.config import MaskClipConfig, MaskFormerConfig, PixelDecoderConfig, PredictorConfig, ResNetConfig
from model.san.config import VILD_TEMPLATES  # the same 14 templates (ZSSeg's CLIP.VILD_PROMPT)

R101C = ResNetConfig(depth=101, stem="deeplab", stem_out_channels=128, res5_multi_grid=(1, 2, 4))


@dataclass(frozen=True)
class ZSSegConfig:
    name: str
    description: str
    maskformer: MaskFormerConfig
    embed_dim: int  # CLIP joint embedding width (= the query embedding width)
    vision: VisionTowerConfig
    text: TextTowerConfig
    mask_clip: MaskClipConfig = MaskClipConfig()
    test_short_side: int = 512  # INPUT.MIN_SIZE_TEST
    test_max_side: int = 2048  # INPUT.MAX_SIZE_TEST
    templates: tuple[str, ...] = VILD_TEMPLATES  # PROMPT_LEARNER "vild"
    # the MaskFormer input is ImageNet-normalised (maskformer.pixel_mean/std); CLIP's crops use
    # CLIP's mean/std (`model.maskformer.clip_classifier`)
    clip_pixel_mean: tuple[float, float, float] = CLIP_PIXEL_MEAN
    clip_pixel_std: tuple[float, float, float] = CLIP_PIXEL_STD
    images_per_chunk: int = 16  # CLIP crops embedded at once (memory only)


ZSSEG_B = ZSSegConfig(
    name="zsseg-b",
    description="ZSSeg (ECCV 2022) baseline: MaskFormer R-101c + CLIP ViT-B/16 masked crops, MESS protocol",
    maskformer=MaskFormerConfig(backbone=R101C, predictor=PredictorConfig(class_head="mlp", class_out=512)),
    embed_dim=512,
    vision=VisionTowerConfig(width=768, layers=12, head_width=64, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=512, layers=12, heads=8),
)

ZSSEG_TINY = ZSSegConfig(
    name="zsseg-tiny",
    description="ZSSeg code path with tiny widths (random weights; tests)",
    maskformer=MaskFormerConfig(
        backbone=ResNetConfig(depth=50, stem="deeplab", stem_out_channels=32, res2_out_channels=64, width_per_group=16,
                              res5_multi_grid=(1, 2, 4)),
        pixel_decoder=PixelDecoderConfig(conv_dim=32, mask_dim=32),
        predictor=PredictorConfig(hidden_dim=32, num_queries=8, nheads=2, dim_feedforward=64, dec_layers=2,
                                  class_head="mlp", class_out=32, class_hidden_dim=64)),
    embed_dim=32,
    vision=VisionTowerConfig(width=64, layers=2, head_width=32, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=32, layers=2, heads=2),
)

ZSSEG_CONFIGS: dict[str, ZSSegConfig] = {c.name: c for c in (ZSSEG_B, ZSSEG_TINY)}
