"""Cache-sized chunks for the per-class stages of CAT-Seg (and its CLIP image tower) on the CPU.

The spatial blocks and the decoder run once per class map, the class blocks once per position,
and every op in them is local to a map (or a position). Run over all B x T maps at once, their
intermediates (a (B*T*576, 512) float32 MLP activation is 885 MB at 150 classes) stream through
DRAM several times per op, and on the CPU the element-wise work between the matrix products
(bias broadcasts, GELU, LayerNorm, residual adds) becomes as slow as the products themselves.
Cut into chunks whose largest intermediate fits the last-level cache, the same ops run on fewer
rows at 1.5x the speed (the numbers agree within ~1e-6: a matrix product of another shape may sum
in another order), and peak memory grows far less with the class count (BENCHMARKS.md). The CLIP
image tower runs a few images at a time for the same reason (its MLP activation is 35 MB for the
5 views of a CAT-Seg-B window set: 13 % faster as 2 + 2 + 1 images, bit for bit). On CUDA
the stages run unchunked: the GPU wants large batches, and its memory is bounded by
`--batch-size`.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Callable

import torch
from torch import Tensor

# The largest intermediate of one chunk (the MLP activation of the blocks, a conv output of the
# decoder), in bytes: half of a 32 MiB L3, so that inputs, outputs and weights fit beside it.
CPU_CHUNK_BYTES = 16 * 2**20


# glibc mallopt parameters (malloc.h) and the values `reuse_freed_cpu_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's own dynamic ceiling: larger blocks stay mmap-ed
_TRIM_THRESHOLD_BYTES = 2**30
_allocator_tuned = False


def reuse_freed_cpu_memory() -> bool:
    """Let glibc's malloc keep up to 1 GiB of freed heap instead of returning it to the kernel.

    Every chunk allocates and frees the same few buffers of up to `CPU_CHUNK_BYTES`. With glibc's
    defaults a freed heap top over its trim threshold is returned to the kernel, and the next
    chunk's buffers fault in fresh pages: 1.4-1.6 M page faults and 3.3-3.5 s of system time in
    one 150-class forward of CAT-Seg-B. With blocks up to 32 MiB from the heap and a 1 GiB trim
    threshold it is 1.14 M, 2.6-2.8 s and 2-5 % less wall time, at the same peak RSS
    (BENCHMARKS.md). Process-wide and idempotent; does nothing (False) where the C library is not
    glibc.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    _allocator_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))
    return _allocator_tuned


def chunk_bytes(device: torch.device) -> int | None:
    """The per-chunk budget on `device`, or None: run unchunked."""
    return CPU_CHUNK_BYTES if device.type == "cpu" else None


def items_per_chunk(budget: int | None, bytes_per_item: int) -> int | None:
    """How many items (maps, positions) of `bytes_per_item` fit a chunk; None when unchunked."""
    return None if budget is None else max(1, budget // bytes_per_item)


def run_chunked(fn: Callable[[slice, slice], Tensor], batch: int, length: int, per_chunk: int | None,
                dim: int = 1) -> Tensor:
    """`fn(images, items)` over a (batch, length) grid, reassembled: fn returns its chunk with the
    batch as dim 0 and the items as `dim`. One call for everything when `per_chunk` is None;
    otherwise runs of at most `per_chunk` items within one image (the stages' shared guidance is
    per image), written into one output tensor."""
    everything = slice(None)
    if per_chunk is None:
        return fn(everything, everything)
    out = None
    for i in range(batch):
        for start in range(0, length, per_chunk):
            images, items = slice(i, i + 1), slice(start, start + per_chunk)
            y = fn(images, items)
            if out is None:
                shape = list(y.shape)
                shape[0], shape[dim] = batch, length
                out = y.new_empty(shape)
            out[(images, *[everything] * (dim - 1), items)] = y
    return out
