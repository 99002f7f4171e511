"""Pixel conversions of the MESS preparation scripts, reproduced operation for operation.

Each function states the MESS behaviour it reproduces where that behaviour is surprising, since
the prepared pixels must equal MESS's (their quirks included) for scores to be comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from catseg_bench.errors import BenchError

TILE = 1024
IMAGE_PAD = 0
LABEL_PAD = 255


def tiles(array: np.ndarray, size: int = TILE, pad: int = IMAGE_PAD) -> list[np.ndarray]:
    """Non-overlapping `size`×`size` tiles, row-major from the top-left, as uint8.

    MESS's ``get_tiles`` copies every tile, full or partial, into a uint8 buffer filled with `pad`
    (its full-tile test compares a tuple with a list and is never true), so tiles are always uint8
    and partial ones are padded right and bottom: images with 0, label maps with 255.
    """
    height, width = array.shape[:2]
    out = []
    for top in range(0, height, size):
        for left in range(0, width, size):
            piece = array[top : top + size, left : left + size]
            buffer = np.full((size, size) + array.shape[2:], pad, dtype=np.uint8)
            buffer[: piece.shape[0], : piece.shape[1]] = piece
            out.append(buffer)
    return out


def save_tiles(array: np.ndarray, out_dir: Path, stem: str, suffix: str, pad: int) -> int:
    """Write the tiles of `array` as ``{stem}_{i}{suffix}``; returns how many."""
    pieces = tiles(array, pad=pad)
    for index, piece in enumerate(pieces):
        Image.fromarray(piece).save(out_dir / f"{stem}_{index}{suffix}")
    return len(pieces)


def colours_to_index_inplace(rgb: np.ndarray, colours: Sequence[tuple[int, Sequence[int]]]) -> np.ndarray:
    """MESS's colour→class loop: for each (index, colour) in order, set every pixel whose RGB equals
    the colour to (index, index, index) in place; then keep channel 0.

    Pixels of no listed colour keep their red value. The in-place order matters only if an index
    triple equals a later colour; it is reproduced anyway.
    """
    mask = np.array(rgb[..., :3], copy=True)
    for index, colour in colours:
        mask[(mask == np.asarray(colour, dtype=mask.dtype)).all(axis=-1)] = index
    return np.ascontiguousarray(mask[..., 0])


def colours_to_index_exact(rgb: np.ndarray, colours: Mapping[tuple[int, int, int], int], source: Path) -> np.ndarray:
    """Exact RGB lookup (SUIM): an off-palette pixel is an error, as MESS's dict lookup raises KeyError."""
    rgb = rgb[..., :3]
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    out = np.zeros(packed.shape, dtype=np.uint8)
    known = np.zeros(packed.shape, dtype=bool)
    for (r, g, b), index in colours.items():
        hit = packed == ((r << 16) | (g << 8) | b)
        out[hit] = index
        known |= hit
    if not known.all():
        y, x = np.argwhere(~known)[0]
        raise BenchError(f"{source}: pixel ({x}, {y}) has colour {tuple(int(v) for v in rgb[y, x])}, not in the palette")
    return out


def map_values(array: np.ndarray, mapping: Mapping[int, int], source: Path) -> np.ndarray:
    """``np.vectorize(mapping.get)`` of MESS as a lookup table; a value outside `mapping` is an error
    (MESS would crash on the None it produces)."""
    table = np.full(max(int(array.max()), max(mapping)) + 1, -1, dtype=np.int64)
    for old, new in mapping.items():
        table[old] = new
    out = table[array]
    if (out < 0).any():
        missing = sorted(set(np.unique(array[out < 0]).tolist()))
        raise BenchError(f"{source}: label values {missing} have no mapping; the file is not what MESS expects")
    return out.astype(np.uint8)


def train_id_table(source_ids: Sequence[int], ignore: int = LABEL_PAD) -> np.ndarray:
    """A 256-entry uint8 lookup taking label value ``source_ids[t]`` to train ID ``t`` and every other
    value to `ignore`, as CAT-Seg's ``prepare_coco_stuff.py`` (its output starts as all 255 and only
    values listed in its id map are written)."""
    table = np.full(256, ignore, dtype=np.uint8)
    table[np.asarray(source_ids, dtype=np.int64)] = np.arange(len(source_ids), dtype=np.uint8)
    return table


def to_train_ids(label: np.ndarray, table: np.ndarray, source: Path) -> np.ndarray:
    """`label` through a :func:`train_id_table`; CAT-Seg asserts uint8 labels, and a label that is not
    a single-channel uint8 map is an error here too."""
    if label.dtype != np.uint8 or label.ndim != 2:
        raise BenchError(f"{source}: expected a single-channel 8-bit label map, got {label.dtype} of shape {label.shape}")
    return table[label]


def div255(array: np.ndarray) -> np.ndarray:
    """``np.uint8(x / 255)``: a 0/255 mask to 0/1; any value below 255 truncates to 0.

    A 1-bit mask (PIL mode "1", read as bool) is taken as the 0/255 mask it stands for, True being
    foreground: MESS's division would turn every True into 1/255 and truncate it to 0, losing the
    whole foreground (a DeepCrack copy with 1-bit labels would have no crack pixel left).
    """
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    return (array / 255).astype(np.uint8)


def is_one_bit(array: np.ndarray) -> bool:
    """Whether a decoded mask was a 1-bit image (PIL mode "1", read as bool): where :func:`div255`
    departs from MESS."""
    return np.asarray(array).dtype == np.bool_


def merge_max(masks: Iterable[np.ndarray]) -> np.ndarray:
    """MHP v1: the per-person part masks combined pixel-wise by maximum (overlaps keep the higher id)."""
    stacked = np.stack(list(masks))
    return stacked.max(axis=0).astype(np.uint8)


# Sentinel-2 mean and standard deviation per band (B1..B12 with B8A), float32 as in MESS, which
# took them from the WorldFloods (ml4floods/cubesatfloods) loader.
SENTINEL2_MEAN_STD = np.array(
    [
        [3787.0604973, 2634.44474043],
        [3758.07467509, 2794.09579088],
        [3238.08247208, 2549.4940614],
        [3418.90147615, 2811.78109878],
        [3450.23315812, 2776.93269704],
        [4030.94700446, 2632.13814197],
        [4164.17468251, 2657.43035126],
        [3981.96268494, 2500.47885249],
        [4226.74862547, 2589.29159887],
        [1868.29658114, 1820.90184704],
        [399.3878948, 761.3640411],
        [2391.66101119, 1500.02533014],
        [1790.32497137, 1241.9817628],
    ],
    dtype=np.float32,
)
WORLDFLOODS_RGB = (3, 2, 1)  # B4, B3, B2
WORLDFLOODS_IRRG = (7, 3, 1)  # B8 (NIR), B4 (red), B2 (blue: MESS's "IRRG" takes blue, not green)
WORLDFLOODS_LABELS = {0: 255, 1: 0, 2: 1, 3: 2}  # invalid -> ignore, land, water (flood+permanent), cloud


def sentinel2_to_uint8(bands: np.ndarray) -> np.ndarray:
    """(13, H, W) Sentinel-2 counts → (H, W, 13) uint8: divide by (mean + std) in float32, clip to
    [0, 1], times 255, truncate."""
    if bands.ndim != 3 or bands.shape[0] != SENTINEL2_MEAN_STD.shape[0]:
        raise BenchError(f"expected 13 Sentinel-2 bands as (13, H, W), got shape {bands.shape}")
    scaled = bands.transpose(1, 2, 0) / SENTINEL2_MEAN_STD.sum(axis=1)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def composite(norm: np.ndarray, bands: Sequence[int]) -> np.ndarray:
    return np.ascontiguousarray(norm[:, :, list(bands)])


PAXRAY_CHANNELS = {0: "lungs", 10: "mediastinum", 24: "bones", 163: "diaphragm"}


def paxray_channels(target: np.ndarray) -> dict[str, np.ndarray]:
    """The four binary PAXRay-4 tasks: channels 0, 10, 24, 163 of the 166-channel target, as uint8."""
    if target.ndim != 3 or target.shape[0] <= max(PAXRAY_CHANNELS):
        raise BenchError(f"expected a (166, H, W) PAXRay target, got shape {target.shape}")
    return {name: target[channel].astype(np.uint8) for channel, name in PAXRAY_CHANNELS.items()}


def chase_db1_test(images: Sequence[str]) -> list[str]:
    """CHASE DB1: the sorted images after the first 8 (MESS keeps those 8 for training)."""
    return sorted(images)[8:]


CWFID_TEST_IDS = (1, 3, 4, 9, 10, 13, 15, 21, 22, 26, 28, 29, 30, 32, 35, 39, 44, 47, 48, 54, 60)
# MESS's CWFID colours: red -> 1 'crop seedling', green -> 2 'weed'. The CWFID polygons say red is
# weed and green is crop, so these two labels are swapped relative to the dataset; kept to match MESS.
CWFID_COLOURS = ((0, (0, 0, 0)), (1, (255, 0, 0)), (2, (0, 255, 0)))


def mhp_split(file_name: str, test_names: set[str], train_names: set[str]) -> str:
    """MHP v1: test_list.txt is test, the first 3000 of train_list.txt are train, the rest val."""
    if file_name in test_names:
        return "test"
    if file_name in train_names:
        return "train"
    return "val"


def cub_test_images(images_txt: str, split_txt: str) -> list[str]:
    """CUB-200: relative image paths whose train_test_split flag is 0."""
    files = [line.split(" ")[1] for line in images_txt.splitlines() if line.strip()]
    flags = [not bool(int(line.split(" ")[1])) for line in split_txt.splitlines() if line.strip()]
    if len(files) != len(flags):
        raise BenchError(f"CUB-200: images.txt lists {len(files)} images but train_test_split.txt {len(flags)}")
    return [f for f, is_test in zip(files, flags) if is_test]


def ids_to_train_ids(ids: np.ndarray, source_ids: Sequence[int], fill: int, dtype=np.uint8) -> np.ndarray:
    """Value ``source_ids[t]`` -> train ID ``t``, every other value -> `fill`, for labels holding any
    non-negative ids (ADE20K-full's object class ids, PASCAL-Context's 459 category ids). CAT-Seg's
    scripts start the output at `fill` everywhere and write only the ids of their map."""
    ids = np.asarray(ids)
    if ids.size and int(ids.min()) < 0:
        raise BenchError(f"label ids must be >= 0, got {int(ids.min())}")
    source = np.asarray(source_ids, dtype=np.int64)
    table = np.full(max(int(ids.max(initial=0)), int(source.max())) + 1, fill, dtype=dtype)
    table[source] = np.arange(len(source), dtype=dtype)
    return table[ids.astype(np.int64)]


ADE_FULL_SHORT_SIDE = 512


def ade_full_class_mask(seg: np.ndarray) -> np.ndarray:
    """ADE20K-full's object class id per pixel from a ``*_seg.png``: ``int(R / 10) * 256 + G`` (int32)."""
    return (seg[:, :, 0] / 10).astype(np.int32) * 256 + seg[:, :, 1].astype(np.int32)


def ade_full_size(height: int, width: int, short_side: int = ADE_FULL_SHORT_SIDE) -> tuple[int, int] | None:
    """(height, width) CAT-Seg's prepare_ade20k_full.py resizes an image to, or None when it keeps it:
    a short side above `short_side` becomes `short_side`, the long side scaled and rounded (Python's
    round, halves to even)."""
    if width >= height > short_side:
        return short_side, round(width / float(height) * short_side)
    if height >= width > short_side:
        return round(height / float(width) * short_side), short_side
    return None
