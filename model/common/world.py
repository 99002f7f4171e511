"""The processes of a `torchrun` launch: who am I, how many are we, and the collectives we use.

One process (no `WORLD_SIZE` in the environment) is a world of size 1 in which every collective is
a no-op, so callers never branch on whether they were launched by torchrun.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the GPU index of this process on its machine

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, count: int) -> list[int]:
        """The sample indices this rank handles: every `size`-th one, starting at `rank`."""
        return list(range(self.rank, count, self.size))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_world(device: torch.device) -> World:
    """Join the process group `torchrun` describes (NCCL for CUDA, gloo otherwise); one process without it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank())


def sum_across(world: World, tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all ranks (in place on every rank); a no-op for one process."""
    if world.size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def max_across(world: World, value: float, device: torch.device) -> float:
    """The largest `value` over all ranks; `device` must suit the backend (CUDA for NCCL)."""
    if world.size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def any_across(world: World, flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (every rank must call it)."""
    if world.size == 1:
        return flag
    tensor = torch.tensor([int(flag)], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
