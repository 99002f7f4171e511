"""Cache-sized chunks for the per-class stages of CAT-Seg on the CPU.

The spatial blocks and the decoder run once per class map, the class blocks once per position,
and every op in them is local to a map (or a position). Run over all B x T maps at once, their
intermediates (a (B*T*576, 512) float32 MLP activation is 885 MB at 150 classes) stream through
DRAM several times per op, and on the CPU the element-wise work between the matrix products
(bias broadcasts, GELU, LayerNorm, residual adds) becomes as slow as the products themselves.
Cut into chunks whose largest intermediate fits the last-level cache, the same ops give the same
numbers (each row's arithmetic is unchanged) at 1.5x the speed, and peak memory no longer grows
with the class count. On CUDA the stages run unchunked: the GPU wants large batches, and its
memory is bounded by `--batch-size`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# The largest intermediate of one chunk (the MLP activation of the blocks, a conv output of the
# decoder), in bytes: half of a 32 MiB L3, so that inputs, outputs and weights fit beside it.
CPU_CHUNK_BYTES = 16 * 2**20


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
