"""Optimizer, learning-rate schedule and gradient clipping of the official recipe.

Mirrors `Trainer.build_optimizer` of the official `train_net.py`: one AdamW parameter group per
trainable tensor, the base learning rate ×0.01 for tensors that belong to CLIP, no weight decay on
normalisation layers (detectron2's `WEIGHT_DECAY_NORM` 0) or embeddings (`WEIGHT_DECAY_EMBED` 0);
AdamW betas/eps are the PyTorch defaults. The schedule is detectron2's `WarmupCosineLR` with no
warmup, from the base rate to 0 over `max_iter` steps, and every step first clips the gradient norm
of all trainable tensors together to 0.01 (`CLIP_TYPE "full_model"`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# detectron2's list of normalisation modules whose parameters get WEIGHT_DECAY_NORM.
NORM_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)


@dataclass(frozen=True)
class OptimConfig:
    """configs/config.yaml SOLVER values (and the detectron2 / MaskFormer defaults they rely on)."""

    base_lr: float = 2e-4  # BASE_LR
    weight_decay: float = 1e-4  # WEIGHT_DECAY
    weight_decay_norm: float = 0.0  # WEIGHT_DECAY_NORM (detectron2 default)
    weight_decay_embed: float = 0.0  # WEIGHT_DECAY_EMBED (MaskFormer default)
    clip_lr_multiplier: float = 0.01  # CLIP_MULTIPLIER
    grad_clip_norm: float = 0.01  # CLIP_GRADIENTS.CLIP_VALUE, CLIP_TYPE "full_model", L2


def param_groups(model: nn.Module, clip: nn.Module, config: OptimConfig) -> list[dict]:
    """One group per trainable tensor, in `named_modules` order, each named after its tensor.

    A tensor belongs to CLIP when the module that owns it lies inside `clip` (the official code
    matches "clip_model" in the module name).
    """
    clip_modules = {id(m) for m in clip.modules()}
    groups: list[dict] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            lr = config.base_lr
            if id(module) in clip_modules:
                lr *= config.clip_lr_multiplier
            weight_decay = config.weight_decay
            if isinstance(module, NORM_TYPES):
                weight_decay = config.weight_decay_norm
            if isinstance(module, nn.Embedding):
                weight_decay = config.weight_decay_embed
            name = f"{module_name}.{param_name}" if module_name else param_name
            groups.append({"params": [param], "lr": lr, "weight_decay": weight_decay, "name": name})
    return groups


def build_optimizer(model: nn.Module, clip: nn.Module, config: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, clip, config), lr=config.base_lr)


def cosine_factor(step: int, max_iter: int) -> float:
    """detectron2 `CosineParamScheduler(1, 0)` at `step / max_iter`: 1 at step 0, 0 at `max_iter`."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, max_iter) / max_iter))


def build_scheduler(optimizer: torch.optim.Optimizer, max_iter: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay to 0 over `max_iter` steps, no warmup; call `.step()` after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, max_iter))


def trainable_parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> torch.Tensor:
    """Full-model clipping: one L2 norm over every tensor the optimizer updates; returns the norm before clipping."""
    return torch.nn.utils.clip_grad_norm_(trainable_parameters(optimizer), max_norm)
