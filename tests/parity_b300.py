"""The b300 parity setup (tests/data/parity_b300): our config, the formula checkpoint, the inputs.

Shared by `test_model_parity_b300.py` and the fixture's generator
(`tests/data/parity_b300/official_runs/make_fixture.py`), so both sides build the same weights.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

import model
from model.catseg import CATSeg
from model.configs import CATSegConfig, TextTowerConfig, VisionTowerConfig
from model.training.export import to_official_state_dict

from formula_weights import fill, make_image

B300_DIR = Path(__file__).resolve().parent / "data" / "parity_b300"
SWIN_MASK = "swin_block.block_2.attn_mask"


def setup() -> dict:
    return json.loads((B300_DIR / "setup.json").read_text())


def class_names() -> list[str]:
    return json.loads((B300_DIR / "classes.json").read_text())


def image(spec: dict) -> np.ndarray:
    return make_image(*spec["image_size"], seed=spec["seed"])


def reduced_config(spec: dict) -> CATSegConfig:
    """`catseg-b` with the fixture's reduced widths (its `ours` entry)."""
    ours = dict(spec["ours"])
    base = model.get_config(ours.pop("base"))
    ours["vision"] = VisionTowerConfig(**ours["vision"])
    ours["text"] = TextTowerConfig(**ours["text"])
    for key in ("decoder_dims", "decoder_guidance_proj_dims"):
        ours[key] = tuple(ours[key])
    return dataclasses.replace(base, name="catseg-b300-reduced", **ours)


def official_state_dict(config: CATSegConfig, seed: int) -> dict[str, torch.Tensor]:
    """The official-format state dict of `config`, every tensor filled by the parity formula
    (the Swin shift masks are computed buffers, kept as the model makes them)."""
    with torch.device("meta"):
        shapes = to_official_state_dict(CATSeg(config).canonical_state_dict(), config)
    masks = to_official_state_dict({}, config)  # only the computed Swin masks, on the CPU
    state = {}
    for key, tensor in shapes.items():
        if key.endswith(SWIN_MASK):
            state[key] = masks[key]
        else:
            state[key] = torch.from_numpy(fill(key, list(tensor.shape), seed)[0])
    return state
