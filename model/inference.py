"""Whole-image inference: the paper's patch (sliding-window) protocol and single-view inference.

Sliding protocol (official `inference_sliding_window`, used for every reported number):

1. the test mapper resizes the uint8 image so its short side is 640 (long side at most 2560),
   with PIL bilinear and detectron2's `int(x + 0.5)` rounding (`resize_short_side`);
2. the float image is resized (bilinear, align_corners=False) to 640 x 640, aspect ratio not kept,
   and cut into 4 windows of 384 at stride 256 (offsets 0 and 256 on each axis);
3. a 5th, global view is the step-1 image resized to 384 x 384;
4. each view is CLIP-normalised and segmented; logits are upsampled to 384 and passed through a
   sigmoid; window probabilities are averaged where windows overlap, the global view is
   upsampled to 640 and combined 1:1; the result is resized bilinearly to the original size.

Whole-image mode (the official non-sliding path, `CATSeg.forward` with `TEST.SLIDING_WINDOW False`,
cat_seg/cat_seg_model.py:141-184 at 6d3a188): the normalised step-1 image is zero-padded at the
bottom and right to a multiple of 32 (`MODEL.MASK_FORMER.SIZE_DIVISIBILITY`, cat_seg/config.py:36;
`INPUT.SIZE_DIVISIBILITY` 384 of the YAMLs is the training mapper's), resized to the CLIP resolution
(384 for B, 336 for L: the training crop's resolution inside the model), segmented once, and its
sigmoid map (a quarter of the crop) is resized straight to the original size (detectron2's crop to
the unpadded size is a no-op on the 96 x 96 map). This is the "training resolution" row of the
seed's Table 3; the official code has no other non-patch inference. Parity at 300 classes in both
modes: tests/data/parity_b300.

All views of all images in a call go through the model together (in chunks of `max_views`).
Class labels (`predict_labels`) come from the merged low-resolution probabilities by
`upsampled_argmax`, which resizes and reduces a few classes at a time: the (T, H, W) probabilities
at the original size are never materialised, and the labels equal the full argmax exactly.

Precisions: "fp32" (the reference numerics; on CUDA TF32 is switched off for matmuls and
convolutions), "tf32" (float32 with TF32 matmuls and convolutions on CUDA: the official evaluation's
`set_float32_matmul_precision("high")`; the same as fp32 on the CPU) and "bf16" (autocast; not the
reference protocol).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from model.catseg import CATSeg
from model.common.device import PRECISIONS

TEST_SHORT_SIDE = 640  # INPUT.MIN_SIZE_TEST
TEST_MAX_SIDE = 2560  # INPUT.MAX_SIZE_TEST
SLIDING_GRID = 640  # out_res: the resized image the windows tile
SLIDING_OVERLAP = 0.333  # stride = int(384 * (1 - 0.333)) = 256
WHOLE_SIZE_DIVISIBILITY = 32  # MODEL.MASK_FORMER.SIZE_DIVISIBILITY (padding in whole mode)
MODES = ("sliding", "whole")
ARGMAX_CHUNK_BYTES = 256 * 2**20  # upsampled probabilities held at once by `upsampled_argmax`
MERGE_CHUNK_BYTES = 64 * 2**20  # (classes, 640, 640) float32 merged at once by `_merge_sliding`


def resized_shape(height: int, width: int, short: int = TEST_SHORT_SIDE, max_side: int = TEST_MAX_SIDE) -> tuple[int, int]:
    """detectron2 `ResizeShortestEdge.get_output_shape`: (new_height, new_width)."""
    scale = short / min(height, width)
    new_h, new_w = (short, scale * width) if height < width else (scale * height, short)
    if max(new_h, new_w) > max_side:
        scale = max_side / max(new_h, new_w)
        new_h, new_w = new_h * scale, new_w * scale
    return int(new_h + 0.5), int(new_w + 0.5)


def resize_short_side(image: np.ndarray, short: int = TEST_SHORT_SIDE, max_side: int = TEST_MAX_SIDE) -> np.ndarray:
    """The official test-time resize of an RGB uint8 image (H, W, 3), with PIL bilinear (detectron2
    `ResizeShortestEdge(short, max_side)`; CAT-Seg's by default).

    Cheap enough to run in DataLoader workers; pass the result to `predict_probs` together with
    the original sizes.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}")
    new_h, new_w = resized_shape(*image.shape[:2], short, max_side)
    if (new_h, new_w) == image.shape[:2]:
        return image
    return np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))


def _window_offsets(grid: int, crop: int, stride: int) -> list[int]:
    return list(range(0, grid - crop + 1, stride))


def _sliding_views(image: Tensor, crop: int) -> Tensor:
    """(3, h, w) float 0-255 -> (n_windows + 1, 3, crop, crop): windows in raster order, then global."""
    stride = int(crop * (1 - SLIDING_OVERLAP))
    grid = F.interpolate(image[None], size=(SLIDING_GRID, SLIDING_GRID), mode="bilinear", align_corners=False)[0]
    offsets = _window_offsets(SLIDING_GRID, crop, stride)
    windows = [grid[:, y : y + crop, x : x + crop] for y in offsets for x in offsets]
    global_view = F.interpolate(image[None], size=(crop, crop), mode="bilinear", align_corners=False)[0]
    return torch.stack([*windows, global_view])


def _merged_chunks(logits: Tensor, crop: int, max_bytes: int = MERGE_CHUNK_BYTES) -> Iterator[Tensor]:
    """(n_windows + 1, T, l, l) logits of one image -> its merged probabilities (c, 640, 640) for
    successive chunks of c classes, in class order.

    Every step (upsampling, sigmoid, overlap mean, 1:1 mix with the global view) is per class, so
    merging a chunk at a time, with at most `max_bytes` of (c, 640, 640) float32 per chunk and the
    mean and mix done in place, gives the values of merging all classes at once without its
    full-size temporaries (several 1.4 GB maps at 847 classes: BENCHMARKS.md, "A-847: memory at
    847 classes"). Views are upsampled one at a time to keep a single (c, crop, crop) map alive.
    """
    stride = int(crop * (1 - SLIDING_OVERLAP))
    offsets = _window_offsets(SLIDING_GRID, crop, stride)
    chunk = max(1, max_bytes // (SLIDING_GRID * SLIDING_GRID * 4))
    count = logits.new_zeros(1, SLIDING_GRID, SLIDING_GRID, dtype=torch.float32)
    for y in offsets:
        for x in offsets:
            count[:, y : y + crop, x : x + crop] += 1
    for first in range(0, logits.shape[1], chunk):
        part = logits[:, first : first + chunk]

        def probs(view: int) -> Tensor:
            return F.interpolate(part[view : view + 1].float(), size=(crop, crop), mode="bilinear",
                                 align_corners=False).sigmoid()

        merged = logits.new_zeros(part.shape[1], SLIDING_GRID, SLIDING_GRID, dtype=torch.float32)
        index = 0
        for y in offsets:
            for x in offsets:
                merged[:, y : y + crop, x : x + crop] += probs(index)[0]
                index += 1
        global_probs = F.interpolate(probs(index), size=(SLIDING_GRID, SLIDING_GRID), mode="bilinear", align_corners=False)[0]
        yield merged.div_(count).add_(global_probs).div_(2)


def _merge_sliding(logits: Tensor, crop: int, max_bytes: int = MERGE_CHUNK_BYTES) -> Tensor:
    """(n_windows + 1, T, l, l) logits of one image -> (T, 640, 640) merged probabilities, built
    chunk by chunk (`_merged_chunks`)."""
    total = logits.new_empty(logits.shape[1], SLIDING_GRID, SLIDING_GRID, dtype=torch.float32)
    first = 0
    for merged in _merged_chunks(logits, crop, max_bytes):
        total[first : first + merged.shape[0]] = merged
        first += merged.shape[0]
    return total


def upsampled_argmax(probs: Tensor | Iterable[Tensor], size: tuple[int, int], max_bytes: int = ARGMAX_CHUNK_BYTES) -> Tensor:
    """`F.interpolate(probs[None], size, bilinear).argmax(1)[0]` without the (T, H, W) tensor.

    probs: (T, h, w) float, or its successive class chunks (c, h, w) in class order (e.g. from
    `_merged_chunks`, so the (T, h, w) input need not exist either). Classes are resized in chunks
    of at most `max_bytes` of output and reduced into a running maximum and arg-max; a later chunk
    wins only where its maximum is strictly larger (or NaN where the running one is not), so ties
    and NaNs resolve to the first index exactly as `torch.argmax` does. Resizing is per class, so
    each chunk's values equal the full resize's. The running state is updated in place and each
    chunk is reduced by one `max(dim=0)` (values and indices in one pass): on the CPU that is as
    fast as the unchunked path (BENCHMARKS.md). Returns (H, W) int64 on probs' device.
    """
    height, width = size
    best_value = best_index = None
    offset = 0
    for piece in [probs] if isinstance(probs, Tensor) else probs:
        chunk = max(1, max_bytes // (height * width * piece.element_size()))
        for first in range(0, piece.shape[0], chunk):
            resized = F.interpolate(piece[None, first : first + chunk], size=size, mode="bilinear", align_corners=False)[0]
            value, index = resized.max(dim=0)
            del resized
            if best_value is None:
                best_value, best_index = value, index
                continue
            better = (value > best_value).logical_or_(value.isnan().logical_and_(best_value.isnan().logical_not_()))
            torch.where(better, value, best_value, out=best_value)
            torch.where(better, index.add_(offset + first), best_index, out=best_index)
        offset += piece.shape[0]
    return best_index


def _whole_view(model: CATSeg, image: Tensor) -> Tensor:
    """(3, h, w) float 0-255 -> (1, 3, r, r): normalised, zero-padded to a multiple of 32, resized."""
    x = model.normalize(image[None])
    h, w = x.shape[-2:]
    d = WHOLE_SIZE_DIVISIBILITY
    x = F.pad(x, (0, (d - w % d) % d, 0, (d - h % d) % d))
    size = model.config.clip_resolution
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def default_precision(device: torch.device) -> str:
    """The precision of the official evaluation on `device`: "tf32" on CUDA, "fp32" elsewhere."""
    return "tf32" if device.type == "cuda" else "fp32"


@contextmanager
def precision_context(device: torch.device, precision: str):
    """Run the enclosed inference at `precision` (see the module docstring); restores the global
    float32 matmul precision and cuDNN TF32 flag afterwards."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    if device.type != "cuda":  # TF32 does not exist on the CPU: tf32 runs as fp32
        with autocast:
            yield
        return
    matmul, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        with autocast:
            yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


def largest_batch(per_image_bytes: int, fixed_bytes: int, budget_bytes: int, limit: int = 64) -> int:
    """The most images per forward whose memory, fixed + n x per image, fits the budget (1 to limit)."""
    fitting = (budget_bytes - fixed_bytes) // max(per_image_bytes, 1)
    return int(min(max(fitting, 1), limit))


def auto_batch_size(model: CATSeg, class_embeds: Tensor, image_size: tuple[int, int], mode: str = "sliding",
                    precision: str = "fp32", budget_bytes: int | None = None, limit: int = 64) -> int:
    """Images per `predict_labels` call for `--batch-size auto`: the largest that fits the budget.

    On CUDA the cost is measured: the peak memory of one and of two synthetic images whose
    original size is `image_size` (the largest of the evaluation set: labels are made at that
    size) with these classes; their difference is the cost of an image, the rest is fixed. The budget defaults to 90 % of
    the device memory that is free now plus what this process's caching allocator already holds.
    Elsewhere it is 1: the CPU is saturated by one image's views, and a batch only adds memory.
    """
    device = model.device
    if device.type != "cuda":
        return 1
    image = resize_short_side(np.random.default_rng(0).integers(0, 256, (*image_size, 3), dtype=np.uint8))
    original = [tuple(image_size)]
    peaks = []
    for count in (1, 2):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        predict_labels(model, [image] * count, class_embeds, mode=mode, precision=precision, original_sizes=original * count)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - baseline)
    if budget_bytes is None:
        free, _ = torch.cuda.mem_get_info(device)
        budget_bytes = int(0.9 * (free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)))
    per_image = max(peaks[1] - peaks[0], 1)
    return largest_batch(per_image, peaks[0] - per_image, budget_bytes, limit)


def compile_for_inference(model: CATSeg) -> CATSeg:
    """Compile the per-class parts (aggregator, decoder) with `torch.compile`, in place.

    Optional (`--compile`): the first forward per vocabulary size and batch shape pays the
    compilation. The modules keep their names and parameters, so checkpoints are unaffected.
    """
    model.aggregator.compile(dynamic=False)
    model.decoder.compile(dynamic=False)
    return model


def _image_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """(H, W, 3) uint8 on `device`; to CUDA through pinned host memory with an asynchronous copy."""
    if device.type != "cuda":
        return torch.tensor(image, device=device)
    pinned = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True)
    pinned.numpy()[...] = image
    return pinned.to(device, non_blocking=True)


@torch.no_grad()
def view_logits(
    model: CATSeg,
    images: list[np.ndarray],
    class_embeds: Tensor,
    mode: str = "sliding",
    precision: str = "fp32",
    original_sizes: list[tuple[int, int]] | None = None,
    max_views: int | None = None,
) -> tuple[list[Tensor], list[tuple[int, int]]]:
    """The logits (views, T, 4g, 4g) float32 of each image's views (its sliding windows and global
    view, or its one whole view), and the original sizes. Arguments as `predict_probs`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if model.training:
        raise RuntimeError("predict_probs needs the model in eval mode (model.eval())")
    if original_sizes is None:
        original_sizes = [tuple(image.shape[:2]) for image in images]
        images = [resize_short_side(image) for image in images]
    device = model.device
    crop = model.config.crop_size
    views = []
    for image in images:
        chw = _image_tensor(image, device).permute(2, 0, 1).float()
        if mode == "sliding":
            views.append(model.normalize(_sliding_views(chw, crop)))
        else:
            views.append(_whole_view(model, chw))
    counts = [v.shape[0] for v in views]
    batch = torch.cat(views)
    chunk = max_views or batch.shape[0]
    text = class_embeds.to(device)
    with precision_context(device, precision):
        logits = torch.cat([model(batch[i : i + chunk], text).float() for i in range(0, batch.shape[0], chunk)])
    return list(logits.split(counts)), [tuple(size) for size in original_sizes]


def merged_probs(model: CATSeg, images: list[np.ndarray], class_embeds: Tensor, mode: str = "sliding",
                 **kwargs) -> tuple[list[Tensor], list[tuple[int, int]]]:
    """Per-class probabilities of each image before the final resize, and the original sizes.

    Sliding mode gives (T, 640, 640) per image, whole mode the sigmoid of the one view's logits.
    Arguments as `predict_probs`.
    """
    logits, sizes = view_logits(model, images, class_embeds, mode=mode, **kwargs)
    if mode == "sliding":
        return [_merge_sliding(image_logits, model.config.crop_size) for image_logits in logits], sizes
    return [image_logits[0].sigmoid() for image_logits in logits], sizes


def predict_probs(model: CATSeg, images: list[np.ndarray], class_embeds: Tensor, **kwargs) -> list[Tensor]:
    """Per-class probabilities (T, H, W) float32 for each image, at its original size.

    images: RGB uint8 arrays (H, W, 3). Without `original_sizes` they are the original images and
    are resized here (`resize_short_side`); with it they are already resized (e.g. by DataLoader
    workers) and `original_sizes[i]` = (H, W) of the original. class_embeds: (T, C) from
    `encode_classes`. mode: "sliding" (the paper's protocol) or "whole". precision: one of
    PRECISIONS. max_views: largest number of 384 views per forward (default: all views of all
    images at once). Results stay on the model's device. For labels use `predict_labels`, which
    never holds the (T, H, W) maps.
    """
    probs, sizes = merged_probs(model, images, class_embeds, **kwargs)
    return [F.interpolate(p[None], size=size, mode="bilinear", align_corners=False)[0] for p, size in zip(probs, sizes)]


def predict_labels(model: CATSeg, images: list[np.ndarray], class_embeds: Tensor, **kwargs) -> list[Tensor]:
    """Arg-max class index (H, W) int64 per image at its original size; kwargs as `predict_probs`.

    Equal to `predict_probs(...)[i].argmax(0)`, computed by `upsampled_argmax` in bounded memory;
    in sliding mode it reduces the merge's class chunks as they come, so the (T, 640, 640) merged
    probabilities are never held either.
    """
    mode = kwargs.get("mode", "sliding")
    logits, sizes = view_logits(model, images, class_embeds, **kwargs)
    if mode == "sliding":  # class chunks straight from the merge: no (T, 640, 640) map either
        return [upsampled_argmax(_merged_chunks(image_logits, model.config.crop_size), size)
                for image_logits, size in zip(logits, sizes)]
    return [upsampled_argmax(image_logits[0].sigmoid(), size) for image_logits, size in zip(logits, sizes)]
