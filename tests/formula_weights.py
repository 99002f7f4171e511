"""Deterministic "fill formula" weights for the official-code parity fixtures.

`sinhash`, `fill` and `make_image` are the formulas of ../shared/parity/README.md (sections 2 and 3):
every tensor of an official state dict is a short function of its key name, shape and a seed, so a
test rebuilds the exact checkpoint from a key list instead of storing hundreds of MB.

`san_state_dict` applies the same formula to the official SAN state dict (tests/data/san/README.md
section 3): the CAT-Seg rules plus the few SAN keys they do not fit (`san_fill`), and two buffers that
are computed, not filled.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

EMBED = ("class_embedding", "positional_embedding", "token_embedding.weight", "padding_tokens", "padding_guidance")
FANIN_FIRST = ("visual.proj", "text_projection", "upsample1.weight", "upsample2.weight", "decoder1.up.weight",
               "decoder2.up.weight")
CLIP_INIT_LOGIT_SCALE = float(np.log(1 / 0.07))


def sinhash(key: str, seed: int, n: int) -> np.ndarray:
    """Uniform values in [0, 1) from a key and a seed (parity README section 2)."""
    c = zlib.crc32(key.encode("utf-8")) / 2**32 * 1000 + seed
    i = np.arange(n, dtype=np.float64)
    return np.modf(np.abs(np.sin(i * 12.9898 + c) * 43758.5453))[0]


def fill(key: str, shape: list[int], seed: int, *, embed: tuple[str, ...] = EMBED,
         fanin_first: tuple[str, ...] = FANIN_FIRST,
         logit_scale: float = CLIP_INIT_LOGIT_SCALE) -> tuple[np.ndarray, str]:
    """The README's fill rule for one official key: (float32 tensor, rule name).

    `embed` and `fanin_first` are the key suffixes of the embed and x @ W rules; the defaults are
    CAT-Seg's (README section 2), other models pass their own lists.
    """
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape))
    if key.endswith("logit_scale"):
        return np.full(n, logit_scale).astype(np.float32).reshape(shape), "const"
    z = (2.0 * sinhash(key, seed, n) - 1.0) * np.sqrt(3.0)
    if key.endswith(embed):
        v, rule = 0.02 * z, "embed"
    elif key.endswith("bias"):
        v, rule = 0.02 * z, "bias"
    elif len(shape) == 1 and key.endswith(".weight"):
        v, rule = 1.0 + 0.1 * z, "norm"
    else:
        fan_in = shape[0] if key.endswith(fanin_first) else int(np.prod(shape[1:]))
        v, rule = z / np.sqrt(fan_in), "matrix"
    return v.astype(np.float32).reshape(shape), rule


def make_image(height: int, width: int, seed: int) -> np.ndarray:
    """The parity input image: 4x4 flat colour tiles plus noise (parity README section 3)."""
    colours = np.floor(sinhash("image_tiles", seed, 48) * 256).reshape(4, 4, 3)
    noise = sinhash("image", seed, height * width * 3).reshape(height, width, 3)
    ty, tx = (np.arange(height) * 4) // height, (np.arange(width) * 4) // width
    image = colours[ty[:, None], tx[None, :]] + np.floor((noise - 0.5) * 64)
    return np.clip(image, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- SAN
SAN_KEYS_DIR = Path(__file__).resolve().parent / "data" / "san"
# timm's `pos_embed` and the side adapter's `query_embed` / `query_pos_embed` are embeddings too.
SAN_EMBED = EMBED + ("pos_embed", "query_embed")
# The CLIP visual projection lives at `clip_rec_head.proj` in SAN and is used as x @ W.
SAN_FANIN_FIRST = FANIN_FIRST + ("clip_rec_head.proj",)
# SAN keeps CLIP frozen and multiplies its class logits by exp(logit_scale): a real checkpoint holds
# OpenAI's trained ln(100), not the ln(1/0.07) initial value.
SAN_LOGIT_SCALE = float(np.log(100.0))
SAN_NO_OBJECT_WEIGHT = 0.1  # cfg.MODEL.SAN.NO_OBJECT_WEIGHT


def san_computed(key: str, shape: list[int]) -> np.ndarray | None:
    """The two SAN buffers whose value is computed, not filled; None for every other key.

    * `ov_classifier.attn_mask`: the CLIP text causal mask (0 on and below the diagonal, -inf
      above); SAN re-registers open_clip's mask as a persistent buffer, so it is in the state dict.
    * `criterion.empty_weight`: the training loss's class weights (ones, the no-object weight last);
      inference never reads it.
    """
    if key == "ov_classifier.attn_mask":
        n = int(shape[0])
        return np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)
    if key == "criterion.empty_weight":
        weight = np.ones(int(shape[0]), dtype=np.float32)
        weight[-1] = SAN_NO_OBJECT_WEIGHT
        return weight
    return None


def san_fill(key: str, shape: list[int], seed: int) -> tuple[np.ndarray, str]:
    """One official SAN key: (float32 tensor, rule name); rule 'computed' for `san_computed` keys."""
    computed = san_computed(key, shape)
    if computed is not None:
        return computed, "computed"
    return fill(key, shape, seed, embed=SAN_EMBED, fanin_first=SAN_FANIN_FIRST, logit_scale=SAN_LOGIT_SCALE)


def san_keys(size: str) -> dict[str, list[int]]:
    """The official SAN state-dict keys and shapes, in state_dict() order; size 'b' or 'l'."""
    return json.loads((SAN_KEYS_DIR / f"keys_{size}.json").read_text())


def san_state_dict(keys: dict[str, list[int]] | str, seed: int = 0) -> dict[str, np.ndarray]:
    """The whole formula-filled official SAN state dict (float32 numpy arrays, key order kept).

    `keys` is a key -> shape mapping or 'b' / 'l' for the committed key lists.
    """
    if isinstance(keys, str):
        keys = san_keys(keys)
    return {key: san_fill(key, shape, seed)[0] for key, shape in keys.items()}


# -------------------------------------------------------------------------------------------- ZSSeg
ZSSEG_KEYS_DIR = Path(__file__).resolve().parent / "data" / "zsseg"
# MaskFormer's learned queries are embeddings too.
ZSSEG_EMBED = EMBED + ("query_embed.weight",)
# The bundled OpenAI CLIP uses `visual.proj` / `text_projection` as x @ W (FANIN_FIRST).
ZSSEG_OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # adapter buffers: these x 255, float32
ZSSEG_OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
ZSSEG_NO_OBJECT_WEIGHT = 0.1  # MASK_FORMER.NO_OBJECT_WEIGHT


def zsseg_computed(key: str, shape: list[int]) -> np.ndarray | None:
    """ZSSeg buffers whose value is computed, not filled; None for every other key.

    * `clip_adapter.pixel_mean` / `pixel_std`: OpenAI CLIP's mean/std x 255 (float32), (1, 3, 1, 1);
    * `criterion.empty_weight`: the training loss's class weights (ones, the no-object weight last).
    """
    if key == "clip_adapter.pixel_mean":
        return (np.array(ZSSEG_OPENAI_MEAN, dtype=np.float32) * np.float32(255.0)).reshape(shape)
    if key == "clip_adapter.pixel_std":
        return (np.array(ZSSEG_OPENAI_STD, dtype=np.float32) * np.float32(255.0)).reshape(shape)
    if key == "criterion.empty_weight":
        weight = np.ones(int(shape[0]), dtype=np.float32)
        weight[-1] = ZSSEG_NO_OBJECT_WEIGHT
        return weight
    return None


def frozen_bn_stat(key: str, shape: list[int], seed: int) -> tuple[np.ndarray, str]:
    """A FrozenBatchNorm statistic: `running_mean` 0.1 z, `running_var` 1 + 0.1 z (z uniform in
    [-sqrt 3, sqrt 3], so variances stay positive)."""
    n = int(np.prod(shape))
    z = (2.0 * sinhash(key, seed, n) - 1.0) * np.sqrt(3.0)
    if key.endswith("running_mean"):
        return (0.1 * z).astype(np.float32).reshape(shape), "bn_mean"
    return (1.0 + 0.1 * z).astype(np.float32).reshape(shape), "bn_var"


def zsseg_fill(key: str, shape: list[int], seed: int) -> tuple[np.ndarray, str]:
    """One official ZSSeg key: (float32 tensor, rule name).

    The CAT-Seg rules, plus FrozenBN statistics (`running_mean` 0.1 z, `running_var` 1 + 0.1 z,
    z uniform in [-sqrt 3, sqrt 3], so variances stay positive) and the `zsseg_computed` buffers.
    """
    computed = zsseg_computed(key, shape)
    if computed is not None:
        return computed, "computed"
    if key.endswith(("running_mean", "running_var")):
        return frozen_bn_stat(key, shape, seed)
    return fill(key, shape, seed, embed=ZSSEG_EMBED)


ZSSEG_QUERY_KEY = "sem_seg_head.predictor.query_embed.weight"


def zsseg_keys(queries: int | None = None) -> dict[str, list[int]]:
    """The official ZSSeg-B key list (key -> shape, state_dict() order); with `queries`, the query
    table resized to that many rows (the fixture's one reduction, tests/data/zsseg/README.md)."""
    keys = json.loads((ZSSEG_KEYS_DIR / "keys.json").read_text())
    if queries is not None:
        keys[ZSSEG_QUERY_KEY] = [queries, keys[ZSSEG_QUERY_KEY][1]]
    return keys


def zsseg_state_dict(keys: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """The whole formula-filled official ZSSeg state dict (float32 numpy arrays, key order kept)."""
    return {key: zsseg_fill(key, shape, seed)[0] for key, shape in keys.items()}



# -------------------------------------------------------------------------------------------- OVSeg
OVSEG_KEYS_DIR = Path(__file__).resolve().parent / "data" / "ovseg"
# Swin's relative position tables and OVSeg's mask-prompt embeddings are std-0.02 / zero-initialised
# embeddings; the matrix rule would give them fan_in = 529 x heads or 256 x 1024.
OVSEG_EMBED = EMBED + ("relative_position_bias_table", "mask_embedding")
# MaskFormer's object queries are an nn.Embedding (init N(0, 1)); with 0.02 every query would
# propose nearly the same mask, so they get the plain uniform z (std 1).
OVSEG_UNIT = ("query_embed.weight",)


def swin_relative_position_index(window: int) -> np.ndarray:
    """Swin's (window², window²) relative position index buffer (int64), as the official Swin computes it."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).astype(np.int64)


def ovseg_computed(key: str, shape: list[int]) -> np.ndarray | None:
    """The OVSeg buffers whose value is computed, not filled; None for every other key: Swin's
    (persistent) `*.relative_position_index` (int64), and ZSSeg's (`zsseg_computed`: the adapter's
    CLIP mean/std x 255, the loss's class weights), which OVSeg's copy of ZSSeg stores alike."""
    if key.endswith("relative_position_index"):
        return swin_relative_position_index(int(round(np.sqrt(shape[0]))))
    return zsseg_computed(key, shape)


def ovseg_fill(key: str, shape: list[int], seed: int) -> tuple[np.ndarray, str]:
    """One official OVSeg key: (tensor, rule name); rule 'computed' for `ovseg_computed` keys
    (int64 for the Swin index, float32 otherwise), 'unit' for the MaskFormer queries."""
    computed = ovseg_computed(key, shape)
    if computed is not None:
        return computed, "computed"
    if key.endswith(OVSEG_UNIT):
        n = int(np.prod(shape))
        z = (2.0 * sinhash(key, seed, n) - 1.0) * np.sqrt(3.0)
        return z.astype(np.float32).reshape(tuple(int(s) for s in shape)), "unit"
    return fill(key, shape, seed, embed=OVSEG_EMBED)


def ovseg_keys(tag: str) -> dict[str, list[int]]:
    """The official OVSeg state-dict keys and shapes, in state_dict() order; tag 'l' (full OVSeg-L)
    or 'l_reduced' (the fixture's reduced L, tests/data/ovseg/README.md)."""
    return json.loads((OVSEG_KEYS_DIR / f"keys_{tag}.json").read_text())


def ovseg_state_dict(keys: dict[str, list[int]] | str, seed: int = 0) -> dict[str, np.ndarray]:
    """The whole formula-filled official OVSeg state dict (numpy arrays, key order kept)."""
    if isinstance(keys, str):
        keys = ovseg_keys(keys)
    return {key: ovseg_fill(key, shape, seed)[0] for key, shape in keys.items()}


# ---------------------------------------------------------------------------------------- ZegFormer
ZEGFORMER_KEYS_DIR = Path(__file__).resolve().parent / "data" / "zegformer"
# ZegFormer's query logits use exp(logit_scale) with logit_scale = ln(1 / TEMPERATURE 0.01), frozen;
# the OpenAI CLIP file holds its trained ln(100) too.
ZEGFORMER_LOGIT_SCALE = float(np.log(100.0))
ZEGFORMER_NO_OBJECT_WEIGHT = 0.1  # cfg.MODEL.MASK_FORMER.NO_OBJECT_WEIGHT
# The three integers the OpenAI CLIP file carries beside its tensors.
OPENAI_CLIP_INTS = ("input_resolution", "context_length", "vocab_size")


def zegformer_fill(key: str, shape: list[int], seed: int) -> tuple[np.ndarray, str]:
    """One key of the official ZegFormer checkpoint: (float32 tensor, rule name).

    Beyond the CAT-Seg rules: the ResNet's FrozenBatchNorm statistics (`norm.running_mean` 0.1 z,
    `norm.running_var` 1 + 0.1 z, positive), the training criterion's class weights (ones, the
    no-object weight last), the learned queries `query_embed.weight` as `z` (an nn.Embedding's unit
    scale: at 0.02 the 100 queries would be near copies of each other, since the decoder starts from
    zeros and they enter only as positions), and the frozen logit scale ln(100).
    """
    n = int(np.prod(shape))
    if key == "criterion.empty_weight":
        weight = np.ones(n, dtype=np.float32)
        weight[-1] = ZEGFORMER_NO_OBJECT_WEIGHT
        return weight, "computed"
    if key.endswith(("running_mean", "running_var")):
        return frozen_bn_stat(key, shape, seed)
    if key.endswith("query_embed.weight"):
        z = (2.0 * sinhash(key, seed, n) - 1.0) * np.sqrt(3.0)
        return z.astype(np.float32).reshape(shape), "query"
    return fill(key, shape, seed, logit_scale=ZEGFORMER_LOGIT_SCALE)


ZEGFORMER_QUERY_KEY = "sem_seg_head.predictor.query_embed.weight"


def zegformer_keys(queries: int | None = None) -> dict[str, list[int]]:
    """The official ZegFormer-B checkpoint's keys (key -> shape, state_dict() order); with
    `queries`, the query table resized to that many rows (tests/data/zegformer/README.md)."""
    keys = json.loads((ZEGFORMER_KEYS_DIR / "keys.json").read_text())
    if queries is not None:
        keys[ZEGFORMER_QUERY_KEY] = [queries, keys[ZEGFORMER_QUERY_KEY][1]]
    return keys


def zegformer_clip_keys(layers: tuple[int, int] | None = None) -> dict[str, list[int]]:
    """The OpenAI ViT-B/16 file's keys; with `layers` (vision, text) only the first blocks of each
    tower (the fixture's reduced CLIP)."""
    keys = json.loads((ZEGFORMER_KEYS_DIR / "keys_clip.json").read_text())
    if layers is None:
        return keys
    vision, text = layers

    def kept(key: str) -> bool:
        parts = key.split(".")
        if key.startswith("visual.transformer.resblocks."):
            return int(parts[3]) < vision
        if key.startswith("transformer.resblocks."):
            return int(parts[2]) < text
        return True

    return {k: v for k, v in keys.items() if kept(k)}


def zegformer_state_dict(keys: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """The whole formula-filled official ZegFormer checkpoint (float32 numpy arrays, key order kept)."""
    return {key: zegformer_fill(key, shape, seed)[0] for key, shape in keys.items()}


def zegformer_clip_state_dict(keys: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """The OpenAI ViT-B/16 file ZegFormer loads, formula-filled: the CAT-Seg rules, logit scale ln(100),
    every tensor rounded to float16 as the OpenAI file stores it; `input_resolution` 224,
    `context_length` 77 and `vocab_size` 49408 as int64 scalars."""
    ints = {"input_resolution": 224, "context_length": 77, "vocab_size": 49408}
    out = {}
    for key, shape in keys.items():
        if key in OPENAI_CLIP_INTS:
            out[key] = np.array(ints[key], dtype=np.int64)
        else:
            out[key] = fill(key, shape, seed, logit_scale=ZEGFORMER_LOGIT_SCALE)[0].astype(np.float16)
    return out
