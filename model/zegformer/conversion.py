"""Official ZegFormer checkpoints -> our state dict, and building a ZegFormer with weights
(`create_zegformer`).

The official `MaskFormer` (ZegFormer head) keeps the backbone under `backbone.` and the head under
`sem_seg_head.` (`pixel_decoder.`, `predictor.`); the predictor's segment projection is
`projection_layer` (our shared predictor's `class_embed`), its learned background embedding
`bg_feature` and its frozen logit scale `logit_scale`. The training loss's class weights
(`criterion.empty_weight`, a constant) are checked and dropped. The CLIP is not in the released
checkpoint (see `model.zegformer.weights`): it comes from OpenAI's ViT-B/16 file (OpenAI names =
open_clip's, under our `clip.`), or from `sem_seg_head.predictor.clip_model.` where a checkpoint
saved from the test-time model holds it. Every key must map onto one of ours with its shape
(`model.checkpoint.check_keys`).
"""

from __future__ import annotations

import dataclasses

from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from model import checkpoint
from model.checkpoint import CheckpointError, OfficialFormat, download_url
from model.common import prefix_conversion
from model.maskformer.config import with_published_preprocessing
from model.zegformer import weights as zegformer_weights  # registers the ZegFormer weights tags
from model.zegformer.config import ZEGFORMER_CONFIGS, ZegFormerConfig
from model.zegformer.modeling import ZegFormer

OPENAI = "openai"  # clip_weights: OpenAI's ViT-B/16 file from its published URL (sha256-checked)
PREFIXES = (  # official -> ours; the first match wins
    ("backbone.", "maskformer.backbone."),
    ("sem_seg_head.pixel_decoder.", "maskformer.pixel_decoder."),
    ("sem_seg_head.predictor.clip_model.", "clip."),
    ("sem_seg_head.predictor.projection_layer.", "maskformer.predictor.class_embed."),
    ("sem_seg_head.predictor.bg_feature", "bg_feature"),
    ("sem_seg_head.predictor.logit_scale", "logit_scale"),
    ("sem_seg_head.predictor.", "maskformer.predictor."),
)
LOSS_WEIGHTS = "criterion.empty_weight"
NO_OBJECT_WEIGHT = 0.1  # MASK_FORMER.NO_OBJECT_WEIGHT: the last entry of the loss's class weights
# Entries of the OpenAI file that are hyper-parameters, not weights (its `build_model` drops them).
OPENAI_NON_WEIGHTS = ("input_resolution", "context_length", "vocab_size")


def is_official(state: dict[str, Tensor]) -> bool:
    return any(k.startswith("sem_seg_head.") for k in state)


def official_to_ours(key: str) -> str:
    """One official key -> ours (an unknown key comes back unchanged, to be reported)."""
    return prefix_conversion.official_to_ours(key, PREFIXES)


def ours_to_official(key: str) -> str:
    return prefix_conversion.ours_to_official(key, PREFIXES)


def _check_loss_weights(key: str, value: Tensor, origin: str) -> bool:
    """Whether `key` is the loss's class weights (checked: a different value raises)."""
    if key != LOSS_WEIGHTS:
        return False
    expected = torch.ones(value.shape)
    expected[-1:] = NO_OBJECT_WEIGHT
    if value.ndim != 1 or not torch.equal(value.float(), expected):
        raise CheckpointError(f"checkpoint {origin}: {LOSS_WEIGHTS} is not the constant the official ZegFormer computes")
    return True


def read_openai_clip(source: str | Path, cache_dir: Path | None = None) -> tuple[dict[str, Tensor], str]:
    """(OpenAI CLIP state dict with its hyper-parameter entries dropped, origin) from "openai" (the
    published file, downloaded once and sha256-checked) or a local file (OpenAI's TorchScript
    archive, or a state dict with OpenAI / open_clip names)."""
    from model.training.clip_init import read_clip_file

    path = (download_url(zegformer_weights.OPENAI_VIT_B16_URL, cache_dir, zegformer_weights.OPENAI_VIT_B16_SHA256)
            if str(source) == OPENAI else Path(source))
    if not path.is_file():
        raise CheckpointError(f"CLIP weights {path} do not exist: pass OpenAI's ViT-B-16.pt or '{OPENAI}'")
    state = read_clip_file(path)
    return {k: v for k, v in state.items() if k not in OPENAI_NON_WEIGHTS}, str(path)


def convert_official(state: dict[str, Tensor], clip_state: dict[str, Tensor] | None, origin: str) -> dict[str, Tensor]:
    """Our state dict from an official checkpoint and, when it has no CLIP, the OpenAI CLIP's."""
    out = prefix_conversion.convert_keys(state, official_to_ours, origin,
                                         lambda key, value: _check_loss_weights(key, value, origin))
    has_clip = any(k.startswith("clip.") for k in out)
    if not has_clip and clip_state is not None:
        for key, value in clip_state.items():
            out["clip." + key] = value
    return out


def to_official(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(the official checkpoint's tensors without the loss weights, the OpenAI CLIP's) of our state dict."""
    ckpt = {ours_to_official(k): v for k, v in state.items() if not k.startswith("clip.")}
    return ckpt, {k[len("clip."):]: v for k, v in state.items() if k.startswith("clip.")}


def guess_variant(state: dict[str, Tensor]) -> str | None:
    return checkpoint.guess_variant(state, ZEGFORMER_CONFIGS)


def get_zegformer_config(name: str) -> ZegFormerConfig:
    try:
        return ZEGFORMER_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown ZegFormer model {name!r}; known: {', '.join(ZEGFORMER_CONFIGS)}") from None


def expected_shapes(config: ZegFormerConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a variant's state dict."""
    return prefix_conversion.meta_shapes(ZegFormer, config)


def official_format(clip_weights: str | Path | None, cache_dir: Path | None) -> OfficialFormat:
    """The official layout; its CLIP is read (or downloaded) only when a checkpoint needs it."""

    def convert(state: dict[str, Tensor], config: ZegFormerConfig, origin: str) -> dict[str, Tensor]:
        needs_clip = not any(k.startswith("sem_seg_head.predictor.clip_model.") for k in state)
        clip_state = None
        if needs_clip and clip_weights is not None:
            clip_state, clip_origin = read_openai_clip(clip_weights, cache_dir)
            origin = f"{origin} + {clip_origin}"
        return convert_official(state, clip_state, origin)

    return OfficialFormat(is_official, convert, ours_to_official, guess_variant)


def create_zegformer(name: str | ZegFormerConfig, checkpoint: str | Path | None = None,
                     device: str | torch.device = "cpu", cache_dir: Path | None = None,
                     clip_weights: str | Path | None = OPENAI, clip_fp16: bool | None = None) -> ZegFormer:
    """A ZegFormer in eval mode on `device`.

    checkpoint: None (random initialisation from torch's current seed), a weights tag of
    `model.zegformer.weights` ("official"; "hub" = the default tag), an http(s) URL, or a local file
    (the official .pth, our .safetensors from `bench convert`, or a state dict of ours). An official
    checkpoint takes its CLIP from `clip_weights` ("openai": OpenAI's published ViT-B/16 file, or a
    local file). A published file brings its preprocessing and templates. Every key and shape is
    asserted. `clip_fp16` (None: the config's) runs the CLIP in float16 as the official code does.
    """
    config = name if isinstance(name, ZegFormerConfig) else get_zegformer_config(name)
    if clip_fp16 is not None:
        config = dataclasses.replace(config, clip_fp16=clip_fp16)
    published = partial(with_published_preprocessing, templates_field="query_templates")
    return prefix_conversion.create(ZegFormer, config, checkpoint, device, cache_dir,
                                    official_format(clip_weights, cache_dir), published, zegformer_with_state)


def zegformer_with_state(config: ZegFormerConfig, state: dict[str, Tensor]) -> ZegFormer:
    """A ZegFormer holding `state` (our keys, every one; float16 CLIP tensors become float32), in eval mode."""
    state = {k: v.float() if v.dtype == torch.float16 else v for k, v in state.items()}
    return prefix_conversion.with_state(ZegFormer, config, state)
