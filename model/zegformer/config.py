"""ZegFormer-B's architecture and test protocol as one frozen dataclass.

Values: `configs/coco-stuff/zegformer_R101_bs32_60k_vit16_coco-stuff_gzss_eval_847_classes.yaml` of
blumenstiel/ZegFormer-MESS@52ac49c (= dingjiansw101/ZegFormer@8cb9e8f plus the MESS glue), on its
bases and `mask_former/config.py` defaults, as `mess/eval.sh` runs it: MaskFormer on a detectron2
ResNet-101 (basic stem, stride in the 3x3), FPN pixel decoder with GroupNorm, 100 queries; each
query's 512-d segment embedding (one linear layer, L2-normalised) is classified against CLIP
ViT-B/16 text embeddings of the 8 "imagenet_select" templates and a learned background embedding
(x 100); CLIP ViT-B/16 classifies each proposal's masked, box-cropped image (224 x 224, RoIAlign)
against the 32 "imagenet_select_clip" templates. `ENSEMBLING` is off in that file, so a query's
class logits are the CLIP crop logits and the segment's background logit. Whole image at short side
640 (max 2560), no sliding window.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.configs import TextTowerConfig, VisionTowerConfig
from model.maskformer.config import MaskFormerConfig, PixelDecoderConfig, PredictorConfig, ResNetConfig

# mask_former/third_party/imagenet_templates.py: IMAGENET_TEMPLATES_SELECT (the last assignment, the
# one in effect) for the segment classifier, IMAGENET_TEMPLATES_SELECT_CLIP for the crops.
QUERY_TEMPLATES = (
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.", "a {} in a video game.",
    "art of the {}.", "a photo of the small {}.", "A photo of a {} in the scene",
)
CLIP_TEMPLATES = (
    "a bad photo of the {}.", "a photo of the large {}.", "a photo of the small {}.", "a cropped photo of a {}.",
    "This is a photo of a {}", "This is a photo of a small {}", "This is a photo of a medium {}",
    "This is a photo of a large {}", "This is a masked photo of a {}", "This is a masked photo of a small {}",
    "This is a masked photo of a medium {}", "This is a masked photo of a large {}", "This is a cropped photo of a {}",
    "This is a cropped photo of a small {}", "This is a cropped photo of a medium {}",
    "This is a cropped photo of a large {}", "A photo of a {} in the scene", "a bad photo of the {} in the scene",
    "a photo of the large {} in the scene", "a photo of the small {} in the scene",
    "a cropped photo of a {} in the scene", "a photo of a masked {} in the scene", "There is a {} in the scene",
    "There is the {} in the scene", "This is a {} in the scene", "This is the {} in the scene",
    "This is one {} in the scene", "There is a masked {} in the scene", "There is the masked {} in the scene",
    "This is a masked {} in the scene", "This is the masked {} in the scene", "This is one masked {} in the scene",
)
# MODEL.CLIP_PIXEL_MEAN / STD (0-255, RGB): the crops' normalisation, before zero padding
ZEGFORMER_CLIP_PIXEL_MEAN = (122.7709383, 116.7460125, 104.09373615)
ZEGFORMER_CLIP_PIXEL_STD = (68.5005327, 66.6321579, 70.3231630)


@dataclass(frozen=True)
class ZegFormerConfig:
    name: str
    description: str
    maskformer: MaskFormerConfig
    embed_dim: int  # CLIP joint embedding width (= the segment embedding width)
    vision: VisionTowerConfig
    text: TextTowerConfig
    temperature: float = 0.01  # SEM_SEG_HEAD.TEMPERATURE: segment logits x exp(ln(1 / 0.01))
    mask_threshold: float = 0.5  # sigmoid > 0.5: the binary mask that is cropped
    crop_size: int = 224  # RoIAlign output side (CLIP ViT-B/16's input)
    test_short_side: int = 640  # INPUT.MIN_SIZE_TEST
    test_max_side: int = 2560  # INPUT.MAX_SIZE_TEST
    query_templates: tuple[str, ...] = QUERY_TEMPLATES  # PROMPT_ENSEMBLE_TYPE "imagenet_select"
    clip_templates: tuple[str, ...] = CLIP_TEMPLATES
    clip_pixel_mean: tuple[float, float, float] = ZEGFORMER_CLIP_PIXEL_MEAN
    clip_pixel_std: tuple[float, float, float] = ZEGFORMER_CLIP_PIXEL_STD
    # the official `clip.load(jit=False)` keeps OpenAI's float16 weights: text and crop embeddings in
    # float16 (LayerNorms in float32), crop logits a float16 product; the MaskFormer runs in the model dtype
    clip_fp16: bool = False
    images_per_chunk: int = 16  # proposals cropped and embedded at once (memory only)
    prompts_per_chunk: int = 256  # prompts embedded at once (memory only)


ZEGFORMER_B = ZegFormerConfig(
    name="zegformer-b",
    description="ZegFormer (CVPR 2022): MaskFormer R-101 segments + CLIP ViT-B/16 crop classification, MESS protocol",
    maskformer=MaskFormerConfig(backbone=ResNetConfig(depth=101),
                                predictor=PredictorConfig(class_head="linear", class_out=512)),
    embed_dim=512,
    vision=VisionTowerConfig(width=768, layers=12, head_width=64, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=512, layers=12, heads=8),
)

ZEGFORMER_TINY = ZegFormerConfig(
    name="zegformer-tiny",
    description="ZegFormer code path with tiny widths (random weights; tests)",
    maskformer=MaskFormerConfig(
        backbone=ResNetConfig(depth=50, stem_out_channels=32, res2_out_channels=64, width_per_group=16),
        pixel_decoder=PixelDecoderConfig(conv_dim=32, mask_dim=32),
        predictor=PredictorConfig(hidden_dim=32, num_queries=8, nheads=2, dim_feedforward=64, dec_layers=2,
                                  class_head="linear", class_out=32)),
    embed_dim=32,
    vision=VisionTowerConfig(width=64, layers=2, head_width=32, patch_size=16, pos_embed_image_size=64),
    text=TextTowerConfig(width=32, layers=2, heads=2),
    crop_size=64,
)

ZEGFORMER_CONFIGS: dict[str, ZegFormerConfig] = {c.name: c for c in (ZEGFORMER_B, ZEGFORMER_TINY)}
