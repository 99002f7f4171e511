"""Architecture configs of the SAN variants (Side Adapter Network, CVPR 2023), one frozen dataclass each.

Every hyper-parameter of the model and of its test protocol lives here. Values follow the official
`san/config.py` defaults plus `configs/san_clip_vit_res4_coco.yaml` (B) and
`configs/san_clip_vit_large_res4_coco.yaml` (L) as the MESS fork (`blumenstiel/SAN-MESS`) runs them:
a frozen OpenAI CLIP whose first `fusion_clip_layers[-1]` blocks feed a small side-adapter ViT
(`vit_w240n6d8_patch16`), and whose remaining blocks recognise the adapter's 100 mask proposals
through attention biases.
"""

from __future__ import annotations

from dataclasses import dataclass

from model.configs import CLIP_PIXEL_MEAN, CLIP_PIXEL_STD, TextTowerConfig, VisionTowerConfig

# The "vild" template set (official `PREDEFINED_TEMPLATES["vild"]`, CLIP_TEMPLATE_SET default).
# Punctuation is part of the data: two templates have no final period.
VILD_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)


@dataclass(frozen=True)
class SideAdapterConfig:
    """The side-adapter ViT (timm `VisionTransformer` without class token and final norm) and its heads."""

    width: int = 240  # vit_w240n6d8_patch16
    depth: int = 8
    heads: int = 6
    patch_size: int = 16
    pos_embed_image_size: int = 640  # IMAGE_SIZE: the stored position table covers 40 x 40 patches
    num_queries: int = 100  # mask proposals
    mask_embed_dim: int = 256  # ATTN_BIAS.EMBED_CHANNELS
    mlp_dim: int = 256  # ATTN_BIAS.MLP_CHANNELS
    mlp_layers: int = 3  # ATTN_BIAS.MLP_NUM_LAYERS


@dataclass(frozen=True)
class SANConfig:
    name: str  # registry name, e.g. "san-b"
    description: str
    embed_dim: int  # CLIP joint embedding width
    vision: VisionTowerConfig
    text: TextTowerConfig
    # FUSION_MAP "a->b": the output of CLIP block a (0 = after ln_pre) is added to the adapter's
    # patch tokens before adapter block b. The last one is also where recognition starts
    # (FEATURE_LAST_LAYER_IDX): CLIP blocks after it run with the attention biases.
    fusion_clip_layers: tuple[int, ...]
    clip_scale: float  # CLIP_RESOLUTION: the padded image is resized by this factor for CLIP
    attn_bias_heads: int  # ATTN_BIAS.NUM_HEADS: one bias map per CLIP head and proposal
    side_adapter: SideAdapterConfig = SideAdapterConfig()
    size_divisibility: int = 32  # SIZE_DIVISIBILITY: zero padding (after normalisation) at the bottom/right
    test_short_side: int = 640  # INPUT.MIN_SIZE_TEST
    test_max_side: int = 2560  # INPUT.MAX_SIZE_TEST
    attn_bias_pool: str = "max"  # REC_DOWNSAMPLE_METHOD: adaptive max pooling to the CLIP grid
    masked_logit: float = -100.0  # the additive bias that keeps tokens out of the recognition attention
    # Input conventions for untrained use; a weights tag (`model.san.weights`) carries its own.
    pixel_mean: tuple[float, float, float] = CLIP_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = CLIP_PIXEL_STD
    templates: tuple[str, ...] = VILD_TEMPLATES

    @property
    def recognition_start(self) -> int:
        """Index of the first CLIP block that runs with attention biases (9 for B, 18 for L)."""
        return self.fusion_clip_layers[-1]


SAN_B = SANConfig(
    name="san-b",
    description="SAN (CVPR 2023) on OpenAI CLIP ViT-B/16, MESS protocol (CLIP input x0.5)",
    embed_dim=512,
    vision=VisionTowerConfig(width=768, layers=12, head_width=64, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=512, layers=12, heads=8),
    fusion_clip_layers=(0, 3, 6, 9),
    clip_scale=0.5,
    attn_bias_heads=12,
)

SAN_L = SANConfig(
    name="san-l",
    description="SAN (CVPR 2023) on OpenAI CLIP ViT-L/14@336, MESS protocol (CLIP input x0.7)",
    embed_dim=768,
    vision=VisionTowerConfig(width=1024, layers=24, head_width=64, patch_size=14, pos_embed_image_size=336),
    text=TextTowerConfig(width=768, layers=12, heads=12),
    fusion_clip_layers=(0, 6, 12, 18),
    clip_scale=0.7,
    attn_bias_heads=16,
)

SAN_TINY = SANConfig(
    name="san-tiny",
    description="SAN code path with tiny widths (random weights; tests and demo)",
    embed_dim=32,
    vision=VisionTowerConfig(width=64, layers=4, head_width=32, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=32, layers=2, heads=2),
    fusion_clip_layers=(0, 1, 2, 3),
    clip_scale=0.5,
    attn_bias_heads=2,
    side_adapter=SideAdapterConfig(width=32, depth=3, heads=2, num_queries=10, mask_embed_dim=16, mlp_dim=16),
)

SAN_CONFIGS: dict[str, SANConfig] = {c.name: c for c in (SAN_B, SAN_L, SAN_TINY)}
