"""A tiny CLIP in the OpenAI / open_clip ViT-B-16 key layout, filled by the parity weight formula.

The training-free parity fixtures (tests/data/training_free/README.md) were produced by the
official code on these weights: the ViT-B-16 key names with fewer, narrower layers (vision: width
128, 3 blocks, patch 16, a 7 x 7 position grid; text: width 128, 2 blocks; embedding 64), each
tensor filled by `fill(key, shape, seed=0)` and rounded to float16 (the OpenAI `build_model` casts
most tensors to float16; pre-rounding makes that cast lossless, so both sides see equal weights).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

from formula_weights import fill, make_image

CLASS_NAMES = ["sky", "tree", "road"]
ORIGINAL_SIZE = (120, 160)
# Input image size (the already-resized image) per method, chosen to exercise edge windows,
# padding to the patch size and position-table resizing.
INPUT_SIZES = {"maskclip": (250, 343), "sclip": (336, 450), "clearclip": (300, 470), "naclip": (336, 450)}


def tiny_clip() -> CLIP:
    vision = CLIPVisionCfg(layers=3, width=128, head_width=64, patch_size=16, image_size=112)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=128, heads=2, layers=2)
    return CLIP(embed_dim=64, vision_cfg=vision, text_cfg=text, quick_gelu=True)


@cache
def tiny_state_dict() -> dict[str, torch.Tensor]:
    """Built once per process (5 s of numpy); callers copy it into their own modules."""
    shapes = {key: tuple(value.shape) for key, value in tiny_clip().state_dict().items()}
    return {
        key: torch.from_numpy(fill(key, list(shape), 0)[0].astype(np.float16).astype(np.float32))
        for key, shape in shapes.items()
    }


def tiny_loaded_clip() -> CLIP:
    clip = tiny_clip()
    clip.load_state_dict(tiny_state_dict())
    return clip.eval()


def input_image(method: str) -> np.ndarray:
    return make_image(*INPUT_SIZES[method], seed=0)
