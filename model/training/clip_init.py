"""Initialise the CLIP towers of a CAT-Seg model from the OpenAI CLIP weights (the official start).

`source` is either the open_clip pretrained tag `"openai"` (downloaded and cached by open_clip
itself: its Hugging Face copy or OpenAI's URL), for the Table 4 variants their towers' own open_clip
tag (`merged2b_s6b_b61k` for EVA-02-CLIP-L, `webli` for SigLIP-L; `model.configs.OpenClipTowers`),
or a local file: an OpenAI TorchScript archive
(`ViT-B-16.pt`, `ViT-L-14-336px.pt`), or a state dict in `.pt`/`.pth`/`.bin`/`.safetensors` with
open_clip/OpenAI key names. Tensors are cast to fp32 (OpenAI archives are fp16); every key and
shape must match the model's towers (no position-table resizing: ViT-B keeps its 197-row table,
which the model interpolates at run time).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from model.checkpoint import CheckpointError
from model.common.files import sha256_file, user_path
from model.factory import get_config, list_models

OPENAI_TAG = "openai"
# Entries of OpenAI archives that are hyper-parameters, not weights (OpenAI's build_model drops them).
_NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def read_clip_file(path: Path) -> dict[str, Tensor]:
    """The CLIP state dict stored in a local file (TorchScript archive, torch or safetensors file)."""
    from open_clip.factory import load_state_dict

    try:
        if _is_torchscript(path):
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is how OpenAI ships CLIP
                warnings.simplefilter("ignore", FutureWarning)
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = load_state_dict(str(path), device="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"CLIP weights {path} are unreadable ({str(exc).splitlines()[0]}): download them again") from exc
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"CLIP weights {path} hold no state dict")
    return dict(state)


def _pretrained_towers(model_name: str, tag: str) -> tuple[str, str] | None:
    """(open_clip architecture, pretrained tag) that `tag` names for a variant: "openai" for the
    OpenAI-layout variants, the towers' own open_clip tag for the Table 4 ones; None otherwise."""
    config = get_config(model_name)
    if config.towers is not None:
        return (config.towers.architecture, tag) if tag == config.towers.clip_pretrained else None
    return (config.openai_clip, tag) if tag == OPENAI_TAG and config.openai_clip else None


def download_openai_clip(model_name: str, cache_dir: Path | None = None, tag: str = OPENAI_TAG) -> dict[str, Tensor]:
    """The pretrained CLIP state dict of a variant's towers (OpenAI CLIP; open_clip's EVA-02 or
    SigLIP weights for the Table 4 variants), through open_clip's own download and cache."""
    import open_clip

    pretrained = _pretrained_towers(model_name, tag)
    if pretrained is None:
        known = ", ".join(f"{name} ({start_tag(name)})" for name in list_models() if start_tag(name))
        raise CheckpointError(
            f"{model_name} has no open_clip weights '{tag}' to start from (known: {known}); pass a CLIP weights file instead"
        )
    arch, tag = pretrained
    try:
        clip = open_clip.create_model(arch, pretrained=tag, cache_dir=str(cache_dir) if cache_dir else None)
    except Exception as exc:  # open_clip raises many kinds (HTTP, hub, runtime) for an unavailable download
        raise CheckpointError(
            f"could not fetch the {'OpenAI ' if tag == OPENAI_TAG else ''}CLIP {arch} weights through open_clip ({str(exc).splitlines()[0]}); "
            f"download them where you can (open_clip tag '{tag}' of {arch}) and pass the file instead"
        ) from exc
    return clip.state_dict()


def start_tag(model_name: str) -> str | None:
    """The open_clip tag a variant's towers start training from ("openai" for OpenAI-layout ones)."""
    config = get_config(model_name)
    if config.towers is not None:
        return config.towers.clip_pretrained
    return OPENAI_TAG if config.openai_clip else None


def load_clip_weights(model: nn.Module, model_name: str, source: str | Path, cache_dir: Path | None = None) -> str:
    """Copy CLIP weights into `model.clip` (before any fine-tuning parametrization); returns their origin.

    The origin names the source and, for a file, its sha256, for the training log.
    """
    if str(source) == OPENAI_TAG or str(source) == start_tag(model_name):
        arch = (_pretrained_towers(model_name, str(source)) or (get_config(model_name).openai_clip,))[0]
        state, origin = download_openai_clip(model_name, cache_dir, str(source)), f"open_clip {arch} '{source}'"
    else:
        path = user_path(source)
        if not path.is_file():
            raise CheckpointError(f"CLIP weights {path} do not exist: pass a file or '{OPENAI_TAG}'")
        state, origin = read_clip_file(path), f"{path} (sha256 {sha256_file(path)})"
    state = {k: v for k, v in state.items() if k not in _NON_WEIGHT_KEYS}
    expected = model.clip.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in expected if k in state and state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = "; ".join(
            f"{what}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        )
        raise CheckpointError(f"CLIP weights from {origin} do not fit {model_name}'s towers ({details})")
    dtype = next(iter(expected.values())).dtype
    model.clip.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True)
    return origin

