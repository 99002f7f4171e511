"""The pieces the checkpoint conversions of ZSSeg, OVSeg, ZegFormer and SAN share: renaming keys by
an (official, ours) prefix table (not SAN's), the convert loop that drops checked computed buffers
and refuses two keys landing on one, building a
network on the meta device from a state dict of ours, and `create` (random or loaded weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import torch
from torch import Tensor, nn

from model.checkpoint import CheckpointError, OfficialFormat, load_state
from model.weights import Weights

Prefixes = tuple[tuple[str, str], ...]  # (official, ours); the first match wins
Net = TypeVar("Net", bound=nn.Module)


def official_to_ours(key: str, prefixes: Prefixes) -> str:
    """One official key -> ours (an unknown key comes back unchanged, to be reported)."""
    for official, ours in prefixes:
        if key.startswith(official):
            return ours + key[len(official):]
    return key


def ours_to_official(key: str, prefixes: Prefixes) -> str:
    for official, ours in prefixes:
        if key.startswith(ours):
            return official + key[len(ours):]
    return key


def convert_keys(state: dict[str, Tensor], rename: Callable[[str], str], origin: str,
                 computed: Callable[[str, Tensor], bool]) -> dict[str, Tensor]:
    """Our state dict of an official one. `computed(key, value)` is True for a buffer the official
    code computes (it checks the value and raises `CheckpointError` when it differs): such keys
    are dropped; every other key is renamed by `rename` (official -> ours), and two keys that land
    on one are refused."""
    out = {}
    for key, value in state.items():
        if computed(key, value):
            continue
        ours = rename(key)
        if ours in out:
            raise CheckpointError(f"checkpoint {origin}: {key} maps onto {ours} twice")
        out[ours] = value
    return out


def meta_shapes(network: Callable[..., nn.Module], config: object) -> dict[str, tuple[int, ...]]:
    """Key -> shape of `network(config)`'s state dict (built on the meta device, no memory)."""
    with torch.device("meta"):
        model = network(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def with_state(network: Callable[..., Net], config: object, state: dict[str, Tensor]) -> Net:
    """`network(config)` holding `state` (our keys, every one; its tensors are used, not copied),
    its computed buffers reset, in eval mode."""
    with torch.device("meta"):
        model = network(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.reset_buffers()
    return model.eval()


def create(network: Callable[..., Net], config: object, checkpoint: str | Path | None, device: str | torch.device,
           cache_dir: Path | None, official_format: OfficialFormat, published: Callable[[object, Weights], object],
           holding: Callable[[object, dict[str, Tensor]], Net]) -> Net:
    """`network(config)` in eval mode on `device`: random weights from torch's current seed when
    `checkpoint` is None, else the checkpoint's (`model.checkpoint.load_state`: a weights tag, URL
    or file; every key and shape asserted) built by `holding(config, state)`, the config first
    given a published file's preprocessing by `published(config, weights)`."""
    if checkpoint is None:
        model = network(config).to(device).eval()
        model.reset_buffers()
        return model
    state, sha256, weights = load_state(checkpoint, config, meta_shapes(network, config), cache_dir, official_format)
    if weights is not None:
        config = published(config, weights)
    model = holding(config, {k: v.clone() for k, v in state.items()})
    model.checkpoint_sha256 = sha256
    return model.to(device).eval()
