"""Architecture configs of a MaskFormer (backbone, pixel decoder, transformer predictor) and of the
CLIP mask classification that the two-stage open-vocabulary methods put on top, as frozen dataclasses.

Defaults are the official MaskFormer ones (`mask_former/config.py` of MaskFormer and its copies in
ZSSeg / OVSeg / ZegFormer, detectron2's `RESNETS` defaults); a method's config (e.g.
`model.zsseg.config`) sets only what its yaml files change.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# detectron2 `MODEL.PIXEL_MEAN` / `PIXEL_STD` of the MaskFormer configs (ImageNet, 0-255 scale, RGB)
IMAGENET_PIXEL_MEAN = (123.675, 116.28, 103.53)
IMAGENET_PIXEL_STD = (58.395, 57.12, 57.375)
RESNET_FEATURES = ("res2", "res3", "res4", "res5")


@dataclass(frozen=True)
class ResNetConfig:
    """detectron2's ResNet (`build_resnet_backbone`) and DeepLab's (`build_resnet_deeplab_backbone`).

    "ResNet-101c" is depth 101 with the `deeplab` stem (three 3x3 convs, 64-64-128 channels) and
    multi-grid dilations (1, 2, 4) in res5 (which keeps its stride 2 while `res5_dilation` is 1).
    """

    depth: int = 101
    stem: str = "basic"  # "basic": one 7x7 conv; "deeplab": three 3x3 convs
    stem_out_channels: int = 64  # STEM_OUT_CHANNELS (128 with the deeplab stem)
    res2_out_channels: int = 256
    num_groups: int = 1
    width_per_group: int = 64
    stride_in_1x1: bool = False
    res4_dilation: int = 1
    res5_dilation: int = 1
    # RES5_MULTI_GRID: res5's per-block dilation factors (DeepLab's builder; detectron2's plain
    # `build_resnet_backbone` has none, i.e. all 1)
    res5_multi_grid: tuple[int, ...] = (1, 1, 1)
    norm: str = "FrozenBN"
    out_features: tuple[str, ...] = RESNET_FEATURES


@dataclass(frozen=True)
class PixelDecoderConfig:
    """`BasePixelDecoder` (an FPN over res2..res5) or, with `transformer_enc_layers` > 0,
    `TransformerEncoderPixelDecoder` (a DETR encoder on res5 first)."""

    conv_dim: int = 256  # SEM_SEG_HEAD.CONVS_DIM
    mask_dim: int = 256  # SEM_SEG_HEAD.MASK_DIM
    norm: str = "GN"  # SEM_SEG_HEAD.NORM: GroupNorm(32, C)
    in_features: tuple[str, ...] = RESNET_FEATURES
    transformer_enc_layers: int = 0  # SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS


@dataclass(frozen=True)
class PredictorConfig:
    """The DETR-style transformer predictor (`TransformerPredictor`).

    The class head is data: "linear" (plain MaskFormer, `class_out` = classes + 1), "mlp"
    (ZSSeg's `ZeroShotTransformerPredictor`: an MLP to a `class_out`-d embedding compared with text
    embeddings) or "" (no head, masks only).
    """

    hidden_dim: int = 256
    num_queries: int = 100
    nheads: int = 8
    dim_feedforward: int = 2048
    enc_layers: int = 0
    dec_layers: int = 6
    pre_norm: bool = False
    enforce_input_proj: bool = False
    in_feature: str = "res5"  # TRANSFORMER_IN_FEATURE ("transformer_encoder": the pixel decoder's)
    mask_embed_layers: int = 3
    class_head: str = "linear"
    class_out: int = 172
    class_hidden_dim: int = 1024  # "mlp" head: EMBED_HIDDEN_DIM
    class_layers: int = 2  # "mlp" head: EMBED_LAYERS


@dataclass(frozen=True)
class SwinConfig:
    """The detection Swin of the MaskFormer configs (`MODEL.SWIN`; `model.maskformer.swin`).

    Defaults are MaskFormer's (Swin-T at 224); OVSeg's Swin-B sets `embed_dim` 128, depths
    (2, 2, 18, 2), heads (4, 8, 16, 32), window 12. No absolute position embedding (`APE False`
    in every config these methods ship)."""

    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    patch_norm: bool = True
    out_features: tuple[str, ...] = RESNET_FEATURES


@dataclass(frozen=True)
class MaskFormerConfig:
    backbone: ResNetConfig | SwinConfig = ResNetConfig()
    pixel_decoder: PixelDecoderConfig = PixelDecoderConfig()
    predictor: PredictorConfig = PredictorConfig()
    size_divisibility: int = 32  # MASK_FORMER.SIZE_DIVISIBILITY: zero padding after normalisation
    pixel_mean: tuple[float, float, float] = IMAGENET_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_PIXEL_STD


@dataclass(frozen=True)
class MaskClipConfig:
    """CLIP classification of mask proposals by masked crops (ZSSeg's `MaskFormerClipAdapter`).

    Each proposal whose sigmoid mask exceeds `mask_threshold` somewhere is cut out at its box, the
    pixels outside the binary mask set to `fill` (0-255), normalised with CLIP's mean/std, resized
    to `crop_size` (bicubic) and embedded by the CLIP image tower. Logits are `temperature` x cosine
    with the class text embeddings (and a learned non-object embedding, dropped before the softmax).
    """

    mask_threshold: float = 0.5  # MASK_THR
    fill: str = "mean"  # MASK_FILL: "mean" (CLIP's mean colour) or "zero"
    expand_ratio: float = 1.0  # MASK_EXPAND_RATIO
    crop_size: int = 224
    temperature: float = 100.0
    ensemble_weight: float = 0.5  # CLIP_ENSEMBLE_WEIGHT: scores = maskformer^(1-w) * clip^w



def with_published_preprocessing(config, weights, templates_field: str):
    """A method's config (holding a `maskformer` MaskFormerConfig) with a published weights file's
    pixel mean/std and prompt templates (`weights.prompt_templates`, into `templates_field`; the
    config's stay when the file names none)."""
    maskformer = dataclasses.replace(config.maskformer, pixel_mean=weights.pixel_mean, pixel_std=weights.pixel_std)
    return dataclasses.replace(config, maskformer=maskformer,
                               **{templates_field: weights.prompt_templates or getattr(config, templates_field)})
