"""Export a model's weights in the official CAT-Seg (detectron2) key layout.

The inverse of `model.checkpoint.convert_official`: our prefixes back to the official ones (the
same table, read right to left, the longest of our prefixes first), every CLIP `in_proj_weight`
split into `q_proj_weight`, `k_proj_weight`, `v_proj_weight`, and the Swin shift masks the
official model stores as buffers added back. The result loads into the official code with
`DetectionCheckpointer` and back into ours with `create_model(name, checkpoint=path)`.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from model.aggregator import shifted_window_mask
from model.checkpoint import OFFICIAL_TO_OURS
from model.configs import CATSegConfig
from model.training.state import atomic_torch_save

_OURS_TO_OFFICIAL = sorted(((ours, official) for official, ours in OFFICIAL_TO_OURS), key=lambda p: -len(p[0]))
_IN_PROJ = ".attn.in_proj_weight"


def to_official_state_dict(state: dict[str, Tensor], config: CATSegConfig) -> dict[str, Tensor]:
    """Our canonical state dict (merged q/k/v) -> the official CVPR key layout."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        for ours, official in _OURS_TO_OFFICIAL:
            if key.startswith(ours):
                new_key = official + key[len(ours) :]
                break
        else:
            raise ValueError(f"state dict key {key!r} has no official counterpart")
        if key.startswith("clip.") and key.endswith(_IN_PROJ):
            stem = new_key[: -len("in_proj_weight")]
            for part, chunk in zip(("q", "k", "v"), value.chunk(3, dim=0)):
                out[f"{stem}{part}_proj_weight"] = chunk.clone()
        else:
            out[new_key] = value
    mask = shifted_window_mask(config.feature_size, config.window_size, config.window_size // 2)
    prefix = next(official for ours, official in _OURS_TO_OFFICIAL if ours == "aggregator.")
    for layer in range(config.num_layers):
        out[f"{prefix}layers.{layer}.swin_block.block_2.attn_mask"] = mask.clone()
    return out


def save_official(state: dict[str, Tensor], config: CATSegConfig, path: Path) -> None:
    """Write `{"model": official state dict}` atomically (what detectron2's checkpointer reads)."""
    official = {k: v.detach().to("cpu").contiguous() for k, v in to_official_state_dict(state, config).items()}
    atomic_torch_save({"model": official}, path)
