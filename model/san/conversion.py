"""Official SAN checkpoints -> our state dict, and building a SAN with weights (`create_san`).

The official model splits one OpenAI CLIP over three modules: `clip_visual_extractor` (stem and
the blocks before recognition), `clip_rec_head` (the remaining blocks, renumbered from 0, with
ln_post and proj) and `ov_classifier` (the text tower, plus the learned background embedding).
Ours keeps one open_clip CLIP, so the conversion is a prefix table plus the block renumbering.
Two stored buffers are computed, not learned: the text tower's causal mask and the training
loss's class weights; they are checked and dropped. Every other key must map onto one of ours
with its shape (`model.checkpoint.check_keys`), never loaded half-way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import Tensor

from model import checkpoint
from model.checkpoint import CheckpointError, OfficialFormat, load_state
from model.common import prefix_conversion
from model.chunks import reuse_freed_cpu_memory
from model.clip_towers import causal_text_mask
from model.san import weights as _weights  # noqa: F401 - registers the SAN weights tags
from model.san.config import SAN_CONFIGS, SANConfig
from model.san.modeling import SAN

VISUAL, REC_HEAD, TEXT, ADAPTER = "clip_visual_extractor.", "clip_rec_head.", "ov_classifier.", "side_adapter_network."
TEXT_MASK, LOSS_WEIGHTS = "ov_classifier.attn_mask", "criterion.empty_weight"
NO_OBJECT_WEIGHT = 0.1  # MODEL.SAN.NO_OBJECT_WEIGHT: the last entry of the loss's class weights


def is_official(state: dict[str, Tensor]) -> bool:
    return any(k.startswith((ADAPTER, REC_HEAD)) for k in state)


def _block(key: str, prefix: str, offset: int, ours: str) -> str:
    index, rest = key[len(prefix):].split(".", 1)
    return f"{ours}{int(index) + offset}.{rest}"


def official_to_ours(key: str, config: SANConfig) -> str:
    """One official key -> ours (an unknown key comes back unchanged, to be reported)."""
    start = config.recognition_start
    if key.startswith(VISUAL + "resblocks."):
        return _block(key, VISUAL + "resblocks.", 0, "clip.visual.transformer.resblocks.")
    if key.startswith(VISUAL):
        return "clip.visual." + key[len(VISUAL):]
    if key.startswith(REC_HEAD + "resblocks."):
        return _block(key, REC_HEAD + "resblocks.", start, "clip.visual.transformer.resblocks.")
    if key.startswith(REC_HEAD):
        return "clip.visual." + key[len(REC_HEAD):]
    if key == TEXT + "bg_embed":
        return "bg_embed"
    if key.startswith(TEXT):
        return "clip." + key[len(TEXT):]
    if key.startswith(ADAPTER):
        return "side_adapter." + key[len(ADAPTER):]
    return key


def ours_to_official(key: str, config: SANConfig) -> str:
    """The inverse of `official_to_ours` (used in messages and by `to_official`)."""
    start = config.recognition_start
    if key.startswith("clip.visual.transformer.resblocks."):
        index = int(key.split(".")[4])
        if index < start:
            return _block(key, "clip.visual.transformer.resblocks.", 0, VISUAL + "resblocks.")
        return _block(key, "clip.visual.transformer.resblocks.", -start, REC_HEAD + "resblocks.")
    if key.startswith("clip.visual."):
        rest = key[len("clip.visual."):]
        return (REC_HEAD if rest.split(".")[0] in ("ln_post", "proj") else VISUAL) + rest
    if key == "bg_embed":
        return TEXT + "bg_embed"
    if key.startswith("clip."):
        return TEXT + key[len("clip."):]
    if key.startswith("side_adapter."):
        return ADAPTER + key[len("side_adapter."):]
    return key


def _check_computed(key: str, value: Tensor, config: SANConfig, origin: str) -> bool:
    """Whether `key` is one of the two computed buffers (checked: a different value raises)."""
    if key not in (TEXT_MASK, LOSS_WEIGHTS):
        return False
    if key == TEXT_MASK:
        expected = causal_text_mask(config.text.context_length)
    else:  # the loss's class weights: 1 per class, NO_OBJECT_WEIGHT for "no object"
        expected = torch.ones(value.shape)
        expected[-1:] = NO_OBJECT_WEIGHT
    if value.shape != expected.shape or not torch.equal(value.float(), expected):
        raise CheckpointError(f"checkpoint {origin}: {key} is not the official buffer {config.name} computes")
    return True


def convert_official(state: dict[str, Tensor], config: SANConfig, origin: str) -> dict[str, Tensor]:
    return prefix_conversion.convert_keys(state, lambda key: official_to_ours(key, config), origin,
                                          lambda key, value: _check_computed(key, value, config, origin))


def to_official(state: dict[str, Tensor], config: SANConfig) -> dict[str, Tensor]:
    """Our state dict in the official layout (without the two computed buffers)."""
    return {ours_to_official(k, config): v for k, v in state.items()}


def guess_variant(state: dict[str, Tensor]) -> str | None:
    """The SAN variant whose CLIP image tower fits our state dict, if any."""
    return checkpoint.guess_variant(state, SAN_CONFIGS)


def _format(config: SANConfig) -> OfficialFormat:
    return OfficialFormat(is_official, convert_official, lambda key: ours_to_official(key, config), guess_variant)


def get_san_config(name: str) -> SANConfig:
    try:
        return SAN_CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown SAN model {name!r}; known: {', '.join(SAN_CONFIGS)}") from None


def expected_shapes(config: SANConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a variant's state dict."""
    return prefix_conversion.meta_shapes(SAN, config)


def create_san(name: str, checkpoint: str | Path | None = None, device: str | torch.device = "cpu",
               cache_dir: Path | None = None) -> SAN:
    """A SAN variant in eval mode on `device`.

    checkpoint: None (random initialisation from torch's current seed), a weights tag of
    `model.san.weights` ("official"; "hub" = the default tag, from the Hugging Face Hub cache), an
    http(s) URL, or a local file (the official .pth, our .safetensors from `bench convert`, or a
    state dict of ours). A published file brings its preprocessing and templates. Every key and
    shape is asserted (`CheckpointError` names what does not fit).
    """
    if torch.device(device).type == "cpu":
        reuse_freed_cpu_memory()
    config = get_san_config(name)
    if checkpoint is None:
        return SAN(config).to(device).eval()
    state, sha256, weights = load_state(checkpoint, config, expected_shapes(config), cache_dir, _format(config))
    if weights is not None:
        config = dataclasses.replace(config, pixel_mean=weights.pixel_mean, pixel_std=weights.pixel_std,
                                     templates=weights.prompt_templates or config.templates)
    model = san_with_state(config, {k: v.clone() for k, v in state.items()})
    model.checkpoint_sha256 = sha256
    return model.to(device).eval()


def san_with_state(config: SANConfig, state: dict[str, Tensor]) -> SAN:
    """A SAN holding `state` (our keys, every one; its tensors are used, not copied), in eval mode."""
    return prefix_conversion.with_state(SAN, config, state)
