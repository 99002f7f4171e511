"""open_clip towers for the training-free methods: a model name, a pretrained tag, and where the
weights come from (the tag's own download, explicitly random weights, or a local state dict).

A tag trained with QuickGELU (e.g. `openai`) builds the tower with QuickGELU even when the model
name is the plain one (`ViT-B-16`), so `ViT-B-16` + `openai` is the OpenAI ViT-B/16.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from torch import nn

from model.common.files import sha256_file


class TowerWeightsError(Exception):
    """open_clip weights that cannot be found or loaded; the one-line message says how to get them."""


@dataclass
class LoadedTower:
    clip: nn.Module
    tokenizer: object
    weights_sha256: str | None
    untrained: bool


def _tag_config(name: str, pretrained: str) -> dict:
    if name not in open_clip.list_models():
        raise TowerWeightsError(f"clip={name}: not an open_clip model name (see open_clip.list_models())")
    config = open_clip.get_pretrained_cfg(name, pretrained)
    if not config:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise TowerWeightsError(f"pretrained={pretrained}: not an open_clip tag of {name}; its tags: {tags}")
    return config


def _download(name: str, pretrained: str, config: dict) -> Path:
    """The tag's weights file, from the open_clip / huggingface cache or downloaded into it.

    huggingface_hub's retry warnings are silenced for the attempt: offline, the one-line error
    below is the only message.
    """
    source = config.get("hf_hub") or config.get("url") or "?"
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        path = open_clip.download_pretrained(config)
    except Exception as err:  # noqa: BLE001 - any download failure gets the same one-line advice
        raise TowerWeightsError(
            f"open_clip weights {name}/{pretrained} are not in the open_clip / huggingface cache and the download "
            f"from {source.rstrip('/')} failed ({type(err).__name__}; offline?); fetch them once with network "
            f"access: python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{pretrained}')\", "
            f"or pass --checkpoint PATH (a local open_clip state dict) or --checkpoint none (random weights)"
        ) from None
    finally:
        hub_logger.setLevel(level)
    if not path:
        raise TowerWeightsError(f"open_clip has no download location for {name}/{pretrained}")
    return Path(path)


def load_tower(name: str = "ViT-B-16", pretrained: str = "openai", checkpoint: str | None = None,
               device: torch.device | str = "cpu", init_seed: int = 0) -> LoadedTower:
    """Build an open_clip CLIP in eval mode.

    checkpoint None: the tag's weights (downloaded into the open_clip / huggingface cache if
    missing). "none": random weights from `init_seed` (marked untrained). A path: a local open_clip
    state dict for this model name.
    """
    config = _tag_config(name, pretrained)
    quick_gelu = bool(config.get("quick_gelu", False))
    untrained = checkpoint is not None and checkpoint.lower() == "none"
    if untrained:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            clip = open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)
        sha = None
    else:
        path = Path(checkpoint) if checkpoint is not None else _download(name, pretrained, config)
        if not path.is_file():
            raise TowerWeightsError(f"--checkpoint {path}: no such file; pass an open_clip state dict for {name}")
        try:
            clip = open_clip.create_model(name, pretrained=str(path), force_quick_gelu=quick_gelu)
        except Exception as err:  # noqa: BLE001 - open_clip raises many kinds for a bad file
            raise TowerWeightsError(f"{path}: not an open_clip state dict for {name} ({err})".splitlines()[0]) from None
        sha = sha256_file(path)
    clip = clip.to(device).eval()
    return LoadedTower(clip=clip, tokenizer=open_clip.get_tokenizer(name), weights_sha256=sha, untrained=untrained)
