"""Official ZSSeg checkpoints -> our state dict, and building a ZSSeg with weights (`create_zsseg`).

The official `ZeroShotMaskFormer` keeps the MaskFormer under `backbone.` and `sem_seg_head.`
(`pixel_decoder.`, `predictor.`), the OpenAI CLIP under `clip_adapter.clip_model.` (OpenAI names,
as open_clip's) and the learned non-object text embedding at `clip_adapter.non_object_embedding`;
the conversion is a prefix table. Three stored buffers are constants, not learned: the adapter's
CLIP mean/std (x 255) and the training loss's class weights; they are checked and dropped. Every
other key must map onto one of ours with its shape (`model.checkpoint.check_keys`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from model import checkpoint
from model.checkpoint import CheckpointError, OfficialFormat
from model.common import prefix_conversion
from model.maskformer.config import with_published_preprocessing
from model.maskformer.clip_classifier import CLIP_PIXEL_MEAN_UNIT, CLIP_PIXEL_STD_UNIT
from model.zsseg import weights as _weights  # noqa: F401 - registers the ZSSeg weights tags
from model.zsseg.config import ZSSEG_CONFIGS, ZSSegConfig
from model.zsseg.modeling import ZSSeg

PREFIXES = (  # official -> ours
    ("backbone.", "maskformer.backbone."),
    ("sem_seg_head.pixel_decoder.", "maskformer.pixel_decoder."),
    ("sem_seg_head.predictor.", "maskformer.predictor."),
    ("clip_adapter.clip_model.", "clip."),
    ("clip_adapter.non_object_embedding", "non_object_embedding"),
)
ADAPTER_MEAN, ADAPTER_STD, LOSS_WEIGHTS = "clip_adapter.pixel_mean", "clip_adapter.pixel_std", "criterion.empty_weight"
CONSTANTS = (ADAPTER_MEAN, ADAPTER_STD, LOSS_WEIGHTS)
NO_OBJECT_WEIGHT = 0.1  # MASK_FORMER.NO_OBJECT_WEIGHT: the last entry of the loss's class weights


def is_official(state: dict[str, Tensor]) -> bool:
    return any(k.startswith(("sem_seg_head.", "clip_adapter.")) for k in state)


def official_to_ours(key: str) -> str:
    """One official key -> ours (an unknown key comes back unchanged, to be reported)."""
    return prefix_conversion.official_to_ours(key, PREFIXES)


def ours_to_official(key: str) -> str:
    return prefix_conversion.ours_to_official(key, PREFIXES)


def check_constant(key: str, value: Tensor, origin: str) -> bool:
    """Whether `key` is one of the three constant buffers (checked: a different value raises)."""
    if key not in CONSTANTS:
        return False
    if key == LOSS_WEIGHTS:
        expected = torch.ones(value.shape)
        expected[-1:] = NO_OBJECT_WEIGHT
    else:
        unit = CLIP_PIXEL_MEAN_UNIT if key == ADAPTER_MEAN else CLIP_PIXEL_STD_UNIT
        expected = (torch.tensor(unit, dtype=torch.float32) * 255.0).reshape(1, 3, 1, 1)
    if value.shape != expected.shape or not torch.equal(value.float(), expected):
        raise CheckpointError(f"checkpoint {origin}: {key} is not the constant buffer the official ZSSeg computes")
    return True


def convert_official(state: dict[str, Tensor], config: ZSSegConfig, origin: str) -> dict[str, Tensor]:
    return prefix_conversion.convert_keys(state, official_to_ours, origin,
                                          lambda key, value: check_constant(key, value, origin))


def to_official(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict in the official layout (without the three constant buffers)."""
    return {ours_to_official(k): v for k, v in state.items()}


def guess_variant(state: dict[str, Tensor]) -> str | None:
    return checkpoint.guess_variant(state, ZSSEG_CONFIGS)


FORMAT = OfficialFormat(is_official, convert_official, ours_to_official, guess_variant)


def get_zsseg_config(name: str) -> ZSSegConfig:
    try:
        return ZSSEG_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown ZSSeg model {name!r}; known: {', '.join(ZSSEG_CONFIGS)}") from None


# Config type -> network class: ZSSeg's, and its modified copies' (OVSeg registers its own).
NETWORKS: dict[type, type] = {ZSSegConfig: ZSSeg}


def expected_shapes(config: ZSSegConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a variant's state dict."""
    return prefix_conversion.meta_shapes(NETWORKS[type(config)], config)


def create_zsseg(name: str | ZSSegConfig, checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                 cache_dir: Path | None = None, official_format: OfficialFormat = FORMAT) -> ZSSeg:
    """A ZSSeg (or, for a config of a registered copy such as OVSeg's, that network) in eval mode on
    `device`.

    checkpoint: None (random initialisation from torch's current seed), a weights tag of
    `model.zsseg.weights` ("official"; "hub" = the default tag), an http(s) URL, or a local file
    (the official .pth, our .safetensors from `bench convert`, or a state dict of ours). A
    published file brings its preprocessing and templates. Every key and shape is asserted.
    """
    config = name if isinstance(name, ZSSegConfig) else get_zsseg_config(name)
    published = partial(with_published_preprocessing, templates_field="templates")
    return prefix_conversion.create(NETWORKS[type(config)], config, checkpoint, device, cache_dir, official_format,
                                    published, zsseg_with_state)


def zsseg_with_state(config: ZSSegConfig, state: dict[str, Tensor]) -> ZSSeg:
    """A ZSSeg (or the registered copy of the config's type) holding `state` (our keys, every one),
    in eval mode."""
    return prefix_conversion.with_state(NETWORKS[type(config)], config, state)
