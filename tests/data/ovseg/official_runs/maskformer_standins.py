"""The detectron2 stand-ins of tests/data/san/official_runs/standins.py, plus what the official
MaskFormer-family code (OVSeg, ZSSeg) imports on top of them.

Written for these fixtures (no detectron2 text). Added here, each with detectron2's numerics for
what inference calls or touched only at construction time (see ../README.md section 2):

* `detectron2.layers.Conv2d` with `norm` and `activation` (conv, then norm, then activation, as
  detectron2's) and `get_norm` ("GN" -> `nn.GroupNorm(32, C)`, "" / None -> None);
* `detectron2.modeling`: `Backbone` (an nn.Module with `size_divisibility` 0), `BACKBONE_REGISTRY`,
  `SEM_SEG_HEADS_REGISTRY`, `build_backbone(cfg)` (`ShapeSpec(channels=len(PIXEL_MEAN))`),
  `build_sem_seg_head(cfg, shapes)`;
* `detectron2.structures.BitMasks` with `get_bounding_boxes` (per mask: first / last+1 column and
  row that hold a True, float32; all zeros for an empty mask), iterated row by row as `Boxes`;
* `detectron2.utils.comm.get_local_rank` (0) and `synchronize` (no-op);
* `get_cfg` gains the detectron2 defaults these models' configs merge into: `MODEL.BACKBONE`,
  `MODEL.SEM_SEG_HEAD`, `MODEL.LOAD_PROPOSALS`.
"""
from __future__ import annotations

import os
import sys
import types

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "san", "official_runs"))
import standins  # noqa: E402  (the SAN stand-ins)


class Conv2d(nn.Conv2d):
    """detectron2's Conv2d: convolution, then the optional norm, then the optional activation."""

    def __init__(self, *args, norm=None, activation=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm = norm
        self.activation = activation

    def forward(self, x):
        x = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def get_norm(norm, out_channels):
    if norm is None or norm == "":
        return None
    if norm == "GN":
        return nn.GroupNorm(32, out_channels)
    raise NotImplementedError(f"stand-in get_norm: {norm!r}")


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()

    @property
    def size_divisibility(self) -> int:
        return 0


BACKBONE_REGISTRY = standins.Registry("BACKBONE")
SEM_SEG_HEADS_REGISTRY = standins.Registry("SEM_SEG_HEADS")


def build_backbone(cfg, input_shape=None):
    if input_shape is None:
        input_shape = standins.ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    return BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg, input_shape)


def build_sem_seg_head(cfg, input_shape):
    return SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(cfg, input_shape)


class Boxes:
    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __iter__(self):
        yield from self.tensor


class BitMasks:
    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor.to(torch.bool)

    def get_bounding_boxes(self) -> Boxes:
        boxes = torch.zeros(self.tensor.shape[0], 4, dtype=torch.float32)
        x_any = torch.any(self.tensor, dim=1)
        y_any = torch.any(self.tensor, dim=2)
        for idx in range(self.tensor.shape[0]):
            x = torch.where(x_any[idx, :])[0]
            y = torch.where(y_any[idx, :])[0]
            if len(x) > 0 and len(y) > 0:
                boxes[idx, :] = torch.as_tensor([x[0], y[0], x[-1] + 1, y[-1] + 1], dtype=torch.float32)
        return Boxes(boxes)


def get_cfg():
    cfg = standins.get_cfg()
    cfg.MODEL.BACKBONE = standins.CfgNode({"NAME": "build_resnet_backbone", "FREEZE_AT": 2})
    cfg.MODEL.LOAD_PROPOSALS = False
    cfg.MODEL.SEM_SEG_HEAD = standins.CfgNode({
        "NAME": "SemSegFPNHead", "IN_FEATURES": ["p2", "p3", "p4", "p5"], "IGNORE_VALUE": 255,
        "NUM_CLASSES": 54, "CONVS_DIM": 128, "COMMON_STRIDE": 4, "NORM": "GN", "LOSS_WEIGHT": 1.0,
    })
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    return cfg


def install() -> None:
    """The SAN stand-ins, then the MaskFormer additions above."""
    standins.install()
    mods = sys.modules
    mods["detectron2.layers"].Conv2d = Conv2d
    mods["detectron2.layers"].get_norm = get_norm
    mods["detectron2.config"].get_cfg = get_cfg
    mods["detectron2.config"].CfgNode = standins.CfgNode
    modeling = mods["detectron2.modeling"]
    for name, value in {"Backbone": Backbone, "BACKBONE_REGISTRY": BACKBONE_REGISTRY,
                        "SEM_SEG_HEADS_REGISTRY": SEM_SEG_HEADS_REGISTRY, "build_backbone": build_backbone,
                        "build_sem_seg_head": build_sem_seg_head, "ShapeSpec": standins.ShapeSpec}.items():
        setattr(modeling, name, value)
    backbone = types.ModuleType("detectron2.modeling.backbone")
    backbone.Backbone = Backbone
    backbone.BACKBONE_REGISTRY = BACKBONE_REGISTRY
    mods["detectron2.modeling.backbone"] = backbone
    mods["detectron2.structures"].BitMasks = BitMasks
    mods["detectron2.structures"].Boxes = Boxes
    mods["detectron2.utils.comm"].get_local_rank = lambda: 0
    mods["detectron2.utils.comm"].synchronize = lambda: None


def install_packages(checkout: str, names: tuple[str, ...]) -> None:
    """Make the given packages importable without running their __init__ (dataset registration,
    wandb, demo code); the modules below them run unmodified."""
    for name in names:
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(checkout, *name.split("."))]
        sys.modules[name] = module
    sys.path.insert(0, checkout)
