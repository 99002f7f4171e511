"""The four training-free methods as data: what each changes in CLIP and how it runs inference.

Every default below was read from the method's official repository at the commit in `source`;
the README section "Training-free CLIP baselines" lists them with the files they come from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

# CLIP statistics as SCLIP / ClearCLIP / NACLIP write them (0-255 scale, three decimals).
CLIP_MEAN = (122.771, 116.746, 104.094)
CLIP_STD = (68.501, 66.632, 70.323)
# MaskCLIP's mmseg dataset configs normalise with the ImageNet statistics.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

LAST_BLOCKS = ("maskclip", "sclip", "clearclip", "naclip")
WINDOW_PADDINGS = ("none", "center", "corner")
POSITION_RESIZES = ("scale_factor", "size")


@dataclass(frozen=True)
class MethodConfig:
    """One training-free method. Fields that change the numbers all end up in result settings.

    last_block: which dense variant replaces CLIP's last visual block (see `model.training_free.dense`).
    templates: template set id (`model.training_free.templates`).
    logit_scale: cosine similarities are multiplied by this before the softmax over classes.
    short_side, long_side: mmcv `Resize(scale=(long_side, short_side), keep_ratio=True)`: the
        image is scaled by min(long_side / long, short_side / short).
    crop, stride: sliding windows (mmseg `slide_inference`); crop 0 segments the whole image.
    window_padding: how a window whose size is not a multiple of the patch size is fed to the ViT:
        "none" (the patch convolution drops the remainder), "center" (ClearCLIP: zero padding
        split evenly, the padded logits cut away) or "corner" (mmseg `PatchEmbed`: zeros at the
        bottom and right, logits of the padded grid resized onto the unpadded window).
    position_resize: how the position table is resized to another patch grid: "scale_factor"
        (SCLIP family: bicubic with scale (grid + 0.1) / side) or "size" (mmseg: bicubic to the
        grid size).
    mlp_activation, layer_norm_eps: None keeps the open_clip tower's own; MaskCLIP's mmseg
        backbone runs every block with exact GELU and LayerNorm eps 1e-6.
    gaussian_std: NACLIP's neighbourhood Gaussian (patches).
    pamr_steps, pamr_dilations: optional PAMR refinement of the logits at the original size
        (`model.training_free.pamr`); 0 steps is off.
    prob_threshold: pixels whose top probability is below it get class 0 (0 disables it).
    """

    name: str
    last_block: str
    templates: str
    logit_scale: float
    short_side: int
    crop: int
    stride: int
    long_side: int = 2048
    pixel_mean: tuple[float, float, float] = CLIP_MEAN
    pixel_std: tuple[float, float, float] = CLIP_STD
    window_padding: str = "none"
    position_resize: str = "scale_factor"
    mlp_activation: str | None = None
    layer_norm_eps: float | None = None
    gaussian_std: float = 5.0
    pamr_steps: int = 0
    pamr_dilations: tuple[int, ...] = (8, 16)
    prob_threshold: float = 0.0
    source: str = ""

    def __post_init__(self):
        if self.last_block not in LAST_BLOCKS:
            raise ValueError(f"last_block must be one of {LAST_BLOCKS}, got {self.last_block!r}")
        if self.window_padding not in WINDOW_PADDINGS:
            raise ValueError(f"window_padding must be one of {WINDOW_PADDINGS}, got {self.window_padding!r}")
        if self.position_resize not in POSITION_RESIZES:
            raise ValueError(f"position_resize must be one of {POSITION_RESIZES}, got {self.position_resize!r}")
        if self.crop < 0 or (self.crop > 0 and self.stride <= 0):
            raise ValueError(f"crop must be >= 0 and stride > 0 with a crop, got crop={self.crop}, stride={self.stride}")
        if self.short_side <= 0 or self.long_side <= 0:
            raise ValueError(f"short_side and long_side must be positive, got {self.short_side}, {self.long_side}")
        if not 0.0 <= self.prob_threshold <= 1.0:
            raise ValueError(f"prob_threshold must be in [0, 1], got {self.prob_threshold}")
        if self.pamr_steps < 0 or not self.pamr_dilations or min(self.pamr_dilations) < 1:
            raise ValueError(f"pamr_steps must be >= 0 and pamr_dilations positive, got {self.pamr_steps}, "
                             f"{self.pamr_dilations}")
        if self.gaussian_std <= 0:
            raise ValueError(f"gaussian_std must be positive, got {self.gaussian_std}")

    def with_knobs(self, **knobs: Any) -> MethodConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **knobs)

    def as_settings(self) -> dict[str, Any]:
        settings = asdict(self)
        settings["pixel_mean"] = list(self.pixel_mean)
        settings["pixel_std"] = list(self.pixel_std)
        settings["pamr_dilations"] = list(self.pamr_dilations)
        if self.last_block != "naclip":
            del settings["gaussian_std"]
        if self.pamr_steps == 0:
            del settings["pamr_dilations"]
        return settings


METHODS: dict[str, MethodConfig] = {
    "maskclip": MethodConfig(
        name="maskclip",
        last_block="maskclip",
        templates="maskclip",
        logit_scale=1.0,
        short_side=512,
        crop=0,
        stride=0,
        pixel_mean=IMAGENET_MEAN,
        pixel_std=IMAGENET_STD,
        window_padding="corner",
        position_resize="size",
        mlp_activation="gelu",
        layer_norm_eps=1e-6,
        source="chongzhou96/MaskCLIP@245d31f809be9c1938f8f30561b6bf9ed033d746",
    ),
    "sclip": MethodConfig(
        name="sclip",
        last_block="sclip",
        templates="openai_imagenet",
        logit_scale=40.0,
        short_side=336,
        crop=224,
        stride=112,
        source="wangf3014/SCLIP@b56bd3014b9e8a3ee3450bcfc53700a67d627b7a",
    ),
    "clearclip": MethodConfig(
        name="clearclip",
        last_block="clearclip",
        templates="openai_imagenet",
        logit_scale=50.0,
        short_side=448,
        crop=448,
        stride=224,
        window_padding="center",
        source="mc-lan/ClearCLIP@ad68a404d55d48d27330b93554eb64a234ff717f",
    ),
    "naclip": MethodConfig(
        name="naclip",
        last_block="naclip",
        templates="openai_imagenet",
        logit_scale=40.0,
        short_side=336,
        crop=224,
        stride=112,
        source="sinahmr/NACLIP@0cac3a651f753b11315ea799cfbfabf79da1bd76",
    ),
}


def method_config(name: str) -> MethodConfig:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown training-free method {name!r}; choose one of {', '.join(METHODS)}") from None
