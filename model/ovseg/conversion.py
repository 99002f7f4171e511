"""Official OVSeg checkpoints -> our state dict, and building an OVSeg with weights (`create_ovseg`).

The official `OVSeg` keeps the MaskFormer under `backbone.` (Swin) and `sem_seg_head.`
(`pixel_decoder.`, `predictor.`), the mask-prompt-tuned OpenAI CLIP under `clip_adapter.clip_model.`
(OpenAI names, as open_clip's; the prompts at `visual.mask_embedding`) and the learned non-object
text embedding at `clip_adapter.non_object_embedding`; the conversion is a prefix table. Stored
buffers that are computed, not learned, are checked and dropped: the adapter's CLIP mean/std
(x 255), the training loss's class weights and every Swin block's relative position index. Every
other key must map onto one of ours with its shape (`model.checkpoint.check_keys`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from model import checkpoint
from model.checkpoint import CheckpointError, OfficialFormat
from model.common import prefix_conversion
from model.maskformer.swin import relative_position_index
from model.ovseg import weights as _weights  # noqa: F401 - registers the OVSeg weights tags
from model.ovseg.config import OVSEG_CONFIGS, OVSegConfig
from model.ovseg.modeling import OVSeg
from model.zsseg import conversion as zsseg_conversion

# ZSSeg's prefix table with the mask prompts first (they sit inside the CLIP prefix).
PREFIXES = (("clip_adapter.clip_model.visual.mask_embedding", "mask_embedding"),) + zsseg_conversion.PREFIXES
SWIN_INDEX = ".attn.relative_position_index"

is_official = zsseg_conversion.is_official


def official_to_ours(key: str) -> str:
    return prefix_conversion.official_to_ours(key, PREFIXES)


def ours_to_official(key: str) -> str:
    return prefix_conversion.ours_to_official(key, PREFIXES)


def _is_computed(key: str) -> bool:
    return key in zsseg_conversion.CONSTANTS or (key.startswith("backbone.") and key.endswith(SWIN_INDEX))


def _check_computed(key: str, value: Tensor, config: OVSegConfig, origin: str) -> bool:
    """Whether `key` is a computed buffer: ZSSeg's constants or a Swin block's relative position
    index (checked: a different value raises)."""
    if zsseg_conversion.check_constant(key, value, origin):
        return True
    if not _is_computed(key):
        return False
    expected = relative_position_index(config.maskformer.backbone.window_size)
    if value.shape != expected.shape or not torch.equal(value.to(expected.dtype), expected):
        raise CheckpointError(f"checkpoint {origin}: {key} is not the index the official Swin computes")
    return True


def convert_official(state: dict[str, Tensor], config: OVSegConfig, origin: str) -> dict[str, Tensor]:
    return prefix_conversion.convert_keys(state, official_to_ours, origin,
                                          lambda key, value: _check_computed(key, value, config, origin))


def to_official(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict in the official layout (without the computed buffers)."""
    return {ours_to_official(k): v for k, v in state.items()}


def guess_variant(state: dict[str, Tensor]) -> str | None:
    return checkpoint.guess_variant(state, OVSEG_CONFIGS)


FORMAT = OfficialFormat(is_official, convert_official, ours_to_official, guess_variant)


def get_ovseg_config(name: str) -> OVSegConfig:
    try:
        return OVSEG_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown OVSeg model {name!r}; known: {', '.join(OVSEG_CONFIGS)}") from None


zsseg_conversion.NETWORKS[OVSegConfig] = OVSeg
expected_shapes = zsseg_conversion.expected_shapes
ovseg_with_state = zsseg_conversion.zsseg_with_state  # builds an OVSeg for an OVSegConfig


def create_ovseg(name: str | OVSegConfig, checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
                 cache_dir: Path | None = None) -> OVSeg:
    """An OVSeg in eval mode on `device`; `checkpoint` as `create_zsseg`'s (None: random weights
    from torch's current seed; a weights tag of `model.ovseg.weights`, "hub" its default; a URL; a
    file: the official .pth, our .safetensors, or a state dict of ours). Every key and shape is
    asserted."""
    config = name if isinstance(name, OVSegConfig) else get_ovseg_config(name)
    return zsseg_conversion.create_zsseg(config, checkpoint, device, cache_dir, FORMAT)
