"""The model registry: names -> configs -> built (and optionally loaded) `CATSeg` modules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from model.catseg import CATSeg
from model.checkpoint import load_state
from model.chunks import reuse_freed_cpu_memory
from model.configs import CONFIGS, CATSegConfig


def list_models() -> list[str]:
    return sorted(CONFIGS)


def get_config(name: str) -> CATSegConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def expected_shapes(config: CATSegConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a variant's canonical state dict (built on the meta device, no memory)."""
    with torch.device("meta"):
        model = CATSeg(config)
    return {k: tuple(v.shape) for k, v in model.canonical_state_dict().items()}


def create_model(
    name: str,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    cache_dir: Path | None = None,
) -> CATSeg:
    """A CAT-Seg variant in eval mode on `device`.

    checkpoint: None (random initialisation), a weights tag of `model.weights` ("cvpr2024"; "hub"
    is the default tag: downloaded from the Hugging Face Hub and cached by huggingface_hub), an
    http(s) URL (downloaded with resume into `cache_dir`), or a local file (official detectron2
    .pth, our .safetensors, or a state dict of ours). A published file's preprocessing comes with
    its tag. Loading asserts every key and shape and raises `CheckpointError` naming what does
    not fit. `model.checkpoint_sha256` is the sha256 of the loaded file (None for random weights).
    On the CPU it also lets malloc reuse the chunks' freed buffers (`model.chunks.reuse_freed_cpu_memory`).
    """
    if torch.device(device).type == "cpu":
        reuse_freed_cpu_memory()
    config = get_config(name)
    if checkpoint is None:
        model = CATSeg(config)
    else:
        state, sha256, weights = load_state(checkpoint, config, expected_shapes(config), cache_dir)
        if weights is not None:
            config = dataclasses.replace(config, pixel_mean=weights.pixel_mean, pixel_std=weights.pixel_std,
                                         prompt_template=weights.prompt_template)
        with torch.device("meta"):
            model = CATSeg(config)
        model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True, assign=True)
        model.reset_buffers()
        model.checkpoint_sha256 = sha256
    return model.to(device).eval()
