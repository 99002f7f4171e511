"""Architecture configs of the CAT-Seg variants (CVPR 2024 version), one frozen dataclass each.

Every hyper-parameter of the model lives here and nowhere else. Values of `catseg-b` / `catseg-l`
follow the official `configs/vitb_384.yaml` / `configs/vitl_336.yaml` plus the constants hard-coded
in the official model (CLIP resolution, guidance taps, `pad_len`, upsampling widths);
`catseg-tiny` runs the same code path with small widths, for tests and the demo.

`catseg-eva02-l` and `catseg-siglip-l` are the seed's Table 4 variants: CAT-Seg's head on
open_clip towers with a timm image tower (`OpenClipTowers`, built by `model.timm_towers`). No
CAT-Seg weights of them are released; their CLIP towers' open_clip weights are real and named
here (with their licence), as the start of `bench train`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# OpenAI CLIP normalisation on the 0-255 scale (the official CLIP_PIXEL_MEAN / CLIP_PIXEL_STD).
CLIP_PIXEL_MEAN = (122.7709383, 116.7460125, 104.09373615)
CLIP_PIXEL_STD = (68.5005327, 66.6321579, 70.3231630)

# The single prompt template of the CVPR configs (PROMPT_ENSEMBLE_TYPE "single"); no final period.
PROMPT_TEMPLATE = "A photo of a {} in the scene"
# SigLIP's normalisation (mean = std = 0.5) on the 0-255 scale.
SIGLIP_PIXEL_MEAN = (127.5, 127.5, 127.5)
SIGLIP_PIXEL_STD = (127.5, 127.5, 127.5)


@dataclass(frozen=True)
class OpenClipTowers:
    """CLIP towers that open_clip builds from one of its architecture configs (timm image tower)."""

    architecture: str  # open_clip model name; its config builds the towers
    dense: str  # how patch embeddings are taken: "last_block_values" or "pool_values" (model.timm_towers)
    clip_pretrained: str | None  # open_clip pretrained tag of these towers' CLIP weights (training start)
    clip_licence: str  # of those CLIP weights
    tokenizer: str = "openai"  # "openai" (OpenAI BPE, in open_clip's wheel) or "open_clip" (open_clip's
    # tokenizer of `architecture`: SigLIP's sentencepiece model, fetched from the Hugging Face Hub)
    model_cfg_json: str | None = None  # an explicit open_clip config (tiny variants) instead of the registry's


@dataclass(frozen=True)
class VisionTowerConfig:
    """A CLIP ViT image tower (open_clip `CLIPVisionCfg` subset)."""

    width: int  # transformer width D (also the width of the guidance taps)
    layers: int  # number of residual attention blocks; the last one runs the dense path
    head_width: int  # D / heads (open_clip builds heads = width // head_width)
    patch_size: int  # conv1 kernel = stride
    pos_embed_image_size: int  # image size whose patch grid the stored position table covers
    # (224 for ViT-B/16: a 14x14 table, interpolated to the run-time grid on every forward)


@dataclass(frozen=True)
class TextTowerConfig:
    """A CLIP causal text transformer (open_clip `CLIPTextCfg` subset)."""

    width: int
    layers: int
    heads: int
    context_length: int = 77  # tokens per prompt, OpenAI BPE
    vocab_size: int = 49408  # OpenAI BPE vocabulary


@dataclass(frozen=True)
class CATSegConfig:
    name: str  # registry name, e.g. "catseg-b"
    description: str
    embed_dim: int  # CLIP joint embedding width C: the cost volume compares C-d vectors
    vision: VisionTowerConfig
    text: TextTowerConfig
    clip_resolution: int  # CLIP input side; a crop is bilinearly resized to it (384 B, 336 L)
    guidance_taps: tuple[int, int]  # visual blocks whose raw outputs guide the decoder;
    # the shallower one feeds the 48x48 stage, the deeper one the 96x96 stage
    crop_size: int = 384  # side of one window / training crop, in pixels
    hidden_dim: int = 128  # aggregator width (HIDDEN_DIMS)
    appearance_guidance_proj_dim: int = 128  # image guidance in the spatial blocks
    text_guidance_proj_dim: int = 128  # text guidance in the class blocks
    num_layers: int = 2  # aggregator layers (spatial block + class block each)
    num_heads: int = 4  # heads of both the Swin and the linear class attention
    window_size: int = 12  # Swin window; the second spatial block shifts by half of it
    pad_len: int = 256  # class axis padded to (or top-k selected down to) this many classes
    cost_embed_kernel: int = 7  # conv over each class's cosine map (conv1)
    decoder_dims: tuple[int, int] = (64, 32)  # output widths of the two upsampling stages
    decoder_guidance_dims: tuple[int, int] = (256, 128)  # widths of the tap upsamplers
    decoder_guidance_proj_dims: tuple[int, int] = (32, 16)  # guidance concatenated per stage
    train_pooling: int = 2  # class-block average pooling in training (24 -> 12 tokens a side)
    eval_pooling: int = 1  # ... and at evaluation (the eval.sh override [1,1])
    # Input conventions of the CLIP backbone for untrained use; loading a weights tag
    # (`model.weights`) applies the preprocessing stored with those weights.
    pixel_mean: tuple[float, float, float] = CLIP_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = CLIP_PIXEL_STD
    prompt_template: str = PROMPT_TEMPLATE
    openai_clip: str | None = None  # open_clip architecture whose 'openai' weights start training
    towers: OpenClipTowers | None = None  # None: OpenAI-layout CLIP towers from `vision` / `text`

    @property
    def feature_size(self) -> int:
        """Side of the CLIP patch grid = side of the cost volume (24 for B and L)."""
        return self.clip_resolution // self.vision.patch_size

    @property
    def logit_size(self) -> int:
        """Side of the output logits: a quarter of the crop (two x2 upsampling stages)."""
        return self.feature_size * 4


CATSEG_B = CATSegConfig(
    name="catseg-b",
    description="CAT-Seg (CVPR 2024) on OpenAI CLIP ViT-B/16 at 384",
    embed_dim=512,
    vision=VisionTowerConfig(width=768, layers=12, head_width=64, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=512, layers=12, heads=8),
    clip_resolution=384,
    guidance_taps=(3, 7),
    openai_clip="ViT-B-16",  # configs/vitb_384.yaml CLIP_PRETRAINED "ViT-B/16"
)

CATSEG_L = CATSegConfig(
    name="catseg-l",
    description="CAT-Seg (CVPR 2024) on OpenAI CLIP ViT-L/14@336",
    embed_dim=768,
    vision=VisionTowerConfig(width=1024, layers=24, head_width=64, patch_size=14, pos_embed_image_size=336),
    text=TextTowerConfig(width=768, layers=12, heads=12),
    clip_resolution=336,
    guidance_taps=(7, 15),
    openai_clip="ViT-L-14-336",  # configs/vitl_336.yaml CLIP_PRETRAINED "ViT-L/14@336px"
)

CATSEG_TINY = CATSegConfig(
    name="catseg-tiny",
    description="CAT-Seg code path with tiny widths (random weights; tests and demo)",
    embed_dim=32,
    vision=VisionTowerConfig(width=64, layers=4, head_width=32, patch_size=16, pos_embed_image_size=224),
    text=TextTowerConfig(width=32, layers=2, heads=2),
    clip_resolution=384,
    guidance_taps=(1, 2),
    hidden_dim=16,
    appearance_guidance_proj_dim=16,
    text_guidance_proj_dim=16,
    pad_len=32,  # more than 32 classes takes the top-k path, as B/L do above 256
    decoder_dims=(16, 16),  # GroupNorm takes width // 16 groups
    decoder_guidance_dims=(16, 8),
    decoder_guidance_proj_dims=(4, 4),
)

NO_RELEASED_WEIGHTS = "no released CAT-Seg weights: evaluate with --checkpoint none or weights you trained"

# Seed Table 4. Both towers see 24 x 24 patches at their native resolution (336 / 14, 384 / 16),
# the grid of the official variants; guidance taps at a third and two thirds of the depth, as L's
# 7 and 15 of 24 blocks; the joint width feeds the cost volume and the text guidance.
CATSEG_EVA02_L = CATSegConfig(
    name="catseg-eva02-l",
    description="CAT-Seg on EVA-02-CLIP-L/14@336 (open_clip EVA02-L-14-336; seed Table 4); " + NO_RELEASED_WEIGHTS,
    embed_dim=768,
    vision=VisionTowerConfig(width=1024, layers=24, head_width=64, patch_size=14, pos_embed_image_size=336),
    text=TextTowerConfig(width=768, layers=12, heads=12),
    clip_resolution=336,
    guidance_taps=(7, 15),
    towers=OpenClipTowers("EVA02-L-14-336", "last_block_values", clip_pretrained="merged2b_s6b_b61k",
                          clip_licence="MIT (EVA-CLIP, BAAI)"),
)

CATSEG_SIGLIP_L = CATSegConfig(
    name="catseg-siglip-l",
    description="CAT-Seg on SigLIP-ViT-L/16@384 (open_clip ViT-L-16-SigLIP-384; seed Table 4); " + NO_RELEASED_WEIGHTS,
    embed_dim=1024,
    vision=VisionTowerConfig(width=1024, layers=24, head_width=64, patch_size=16, pos_embed_image_size=384),
    text=TextTowerConfig(width=1024, layers=24, heads=16, context_length=64, vocab_size=32000),
    clip_resolution=384,
    guidance_taps=(7, 15),
    pixel_mean=SIGLIP_PIXEL_MEAN,
    pixel_std=SIGLIP_PIXEL_STD,
    towers=OpenClipTowers("ViT-L-16-SigLIP-384", "pool_values", clip_pretrained="webli",
                          clip_licence="Apache-2.0 (big_vision, Google)", tokenizer="open_clip"),
)


def _tiny_timm_variant(name: str, base: CATSegConfig, timm_model: str, pool: str, proj: str | None,
                       embed_dim: int, text: dict) -> CATSegConfig:
    """`base`'s code path on the tiny timm tower `timm_model` (`model.timm_towers`, 64 wide, 4
    blocks): tests and the demo."""
    vision = {"image_size": base.clip_resolution, "timm_model_name": timm_model, "timm_model_pretrained": False,
              "timm_pool": pool, "timm_proj": proj}
    cfg = {"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": {"layers": 2, **text}}
    return CATSegConfig(
        name=name,
        description=f"{base.name} code path with tiny widths (random weights; tests and demo)",
        embed_dim=embed_dim,
        vision=VisionTowerConfig(width=64, layers=4, head_width=32, patch_size=base.vision.patch_size,
                                 pos_embed_image_size=base.clip_resolution),
        text=TextTowerConfig(width=32, layers=2, heads=2, context_length=text["context_length"],
                             vocab_size=text["vocab_size"]),
        clip_resolution=base.clip_resolution,
        guidance_taps=(1, 2),
        hidden_dim=16,
        appearance_guidance_proj_dim=16,
        text_guidance_proj_dim=16,
        pad_len=32,
        decoder_dims=(16, 16),
        decoder_guidance_dims=(16, 8),
        decoder_guidance_proj_dims=(4, 4),
        pixel_mean=base.pixel_mean,
        pixel_std=base.pixel_std,
        towers=OpenClipTowers(base.towers.architecture, base.towers.dense, clip_pretrained=None,
                              clip_licence="-", model_cfg_json=json.dumps(cfg)),
    )


CATSEG_EVA02_TINY = _tiny_timm_variant(
    "catseg-eva02-tiny", CATSEG_EVA02_L, "catseg_tiny_eva02_patch14_clip_336", "token", None, 32,
    {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2})
CATSEG_SIGLIP_TINY = _tiny_timm_variant(
    "catseg-siglip-tiny", CATSEG_SIGLIP_L, "catseg_tiny_siglip_patch16_384", "map", "none", 64,
    # SigLIP's text tower (no causal mask, last-token pooling) with the OpenAI BPE tokenizer:
    # its own sentencepiece model is a download
    {"context_length": 64, "vocab_size": 49408, "width": 32, "heads": 2, "no_causal_mask": True,
     "proj_bias": True, "pool_type": "last", "norm_kwargs": {"eps": 1e-6}})

CONFIGS: dict[str, CATSegConfig] = {
    c.name: c for c in (CATSEG_B, CATSEG_L, CATSEG_TINY, CATSEG_EVA02_L, CATSEG_SIGLIP_L, CATSEG_EVA02_TINY,
                        CATSEG_SIGLIP_TINY)
}
