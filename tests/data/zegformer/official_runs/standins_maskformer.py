"""The detectron2 pieces a MaskFormer-based official model needs on top of the SAN stand-ins
(tests/data/san/official_runs/standins.py): the ResNet backbone, `Conv2d` with norm and activation,
`get_norm`, the `SEM_SEG_HEADS_REGISTRY` and `build_backbone` / `build_sem_seg_head`.

Written for the ZegFormer fixture (no detectron2 text). At inference each piece computes what
detectron2's does: `Conv2d` = conv, then norm, then activation; `FrozenBatchNorm2d` under no_grad =
`F.batch_norm(training=False, eps=1e-5)` on its four buffers; `BasicStem` = conv 7x7/2 (pad 3) + norm,
relu, max-pool 3/2 (pad 1); `BottleneckBlock` = 1x1, 3x3 (the stride here when STRIDE_IN_1X1 is False),
1x1, each with norm, relu after the first two and after the residual sum; a 1x1 strided projection
shortcut with norm where the channels change. See ../README.md section 2.
"""
from __future__ import annotations

import os
import sys
import types

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "san", "official_runs"))
import standins as san_standins  # noqa: E402

ShapeSpec = san_standins.ShapeSpec
CNNBlockBase = san_standins.CNNBlockBase


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics; four buffers (the checkpoint's keys)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                            eps=self.eps)


def get_norm(norm, out_channels):
    if norm is None or norm == "":
        return None
    if isinstance(norm, str):
        return {"FrozenBN": FrozenBatchNorm2d, "GN": lambda c: nn.GroupNorm(32, c)}[norm](out_channels)
    return norm(out_channels)


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


class Backbone(nn.Module):
    size_divisibility = 0

    def output_shape(self):
        return {name: ShapeSpec(channels=self._out_feature_channels[name], stride=self._out_feature_strides[name])
                for name in self._out_features}


class BasicStem(CNNBlockBase):
    def __init__(self, in_channels, out_channels, norm):
        super().__init__(in_channels, out_channels, 4)
        self.conv1 = Conv2d(in_channels, out_channels, kernel_size=7, stride=2, padding=3, bias=False,
                            norm=get_norm(norm, out_channels))

    def forward(self, x):
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BottleneckBlock(CNNBlockBase):
    def __init__(self, in_channels, out_channels, *, bottleneck_channels, stride, norm, stride_in_1x1, dilation):
        super().__init__(in_channels, out_channels, stride)
        if in_channels != out_channels:
            self.shortcut = Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False,
                                   norm=get_norm(norm, out_channels))
        else:
            self.shortcut = None
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
                            norm=get_norm(norm, bottleneck_channels))
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
                            padding=dilation, bias=False, dilation=dilation, norm=get_norm(norm, bottleneck_channels))
        self.conv3 = Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                            norm=get_norm(norm, out_channels))

    def forward(self, x):
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out += self.shortcut(x) if self.shortcut is not None else x
        return F.relu_(out)


class ResNet(Backbone):
    def __init__(self, stem, stages, out_features):
        super().__init__()
        self.stem = stem
        self.stage_names = []
        self._out_feature_channels = {"stem": stem.out_channels}
        self._out_feature_strides = {"stem": stem.stride}
        stride = stem.stride
        for i, blocks in enumerate(stages):
            name = f"res{i + 2}"
            stage = nn.Sequential(*blocks)
            self.add_module(name, stage)
            self.stage_names.append(name)
            for block in blocks:
                stride *= block.stride
            self._out_feature_strides[name] = stride
            self._out_feature_channels[name] = blocks[-1].out_channels
        self._out_features = list(out_features)

    def forward(self, x):
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs


def build_resnet_backbone(cfg, input_shape=None):
    """The bottleneck ResNets (depth 50/101/152) with the RESNETS options the MaskFormer configs set."""
    r = cfg.MODEL.RESNETS
    assert r.NUM_GROUPS == 1 and r.RES5_DILATION == 1 and not any(r.DEFORM_ON_PER_STAGE), "not needed here"
    stem = BasicStem(3, r.STEM_OUT_CHANNELS, r.NORM)
    num_blocks = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}[r.DEPTH]
    in_channels, out_channels = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    bottleneck = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    stages = []
    for i, n in enumerate(num_blocks):
        blocks = []
        for j in range(n):
            blocks.append(BottleneckBlock(in_channels, out_channels, bottleneck_channels=bottleneck,
                                          stride=(1 if i == 0 else 2) if j == 0 else 1, norm=r.NORM,
                                          stride_in_1x1=r.STRIDE_IN_1X1, dilation=1))
            in_channels = out_channels
        stages.append(blocks)
        out_channels *= 2
        bottleneck *= 2
    return ResNet(stem, stages, r.OUT_FEATURES)


SEM_SEG_HEADS_REGISTRY = san_standins.Registry("SEM_SEG_HEADS")


def build_backbone(cfg, input_shape=None):
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_backbone", cfg.MODEL.BACKBONE.NAME
    return build_resnet_backbone(cfg, input_shape)


def build_sem_seg_head(cfg, input_shape):
    return SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(cfg, input_shape)


def get_cfg():
    """The SAN stand-in defaults plus the detectron2 defaults a MaskFormer/ResNet model reads."""
    cfg = san_standins.get_cfg()
    extra = san_standins._to_node({
        "MODEL": {
            "BACKBONE": {"NAME": "build_resnet_backbone", "FREEZE_AT": 2},
            "RESNETS": {"DEPTH": 50, "OUT_FEATURES": ["res4"], "NUM_GROUPS": 1, "NORM": "FrozenBN",
                        "WIDTH_PER_GROUP": 64, "STRIDE_IN_1X1": True, "RES5_DILATION": 1,
                        "RES2_OUT_CHANNELS": 256, "STEM_OUT_CHANNELS": 64, "DEFORM_ON_PER_STAGE": [False] * 4,
                        "DEFORM_MODULATED": False, "DEFORM_NUM_GROUPS": 1, "STEM_TYPE": "basic",
                        "RES5_MULTI_GRID": [1, 1, 1]},
            "SEM_SEG_HEAD": {"NAME": "SemSegFPNHead", "IN_FEATURES": ["p2", "p3", "p4", "p5"],
                             "IGNORE_VALUE": 255, "NUM_CLASSES": 54, "CONVS_DIM": 128, "COMMON_STRIDE": 4,
                             "NORM": "GN", "LOSS_WEIGHT": 1.0},
        },
        "DATASETS": {"TRAIN": (), "TEST": ()},
        "INPUT": {"SIZE_DIVISIBILITY": -1},
    })
    for section, values in extra.items():
        cfg.setdefault(section, san_standins.CfgNode()).update(values)
    return cfg


def install() -> None:
    """The SAN stand-ins, then the MaskFormer additions (before importing the official code)."""
    san_standins.install()
    layers = sys.modules["detectron2.layers"]
    layers.Conv2d, layers.get_norm, layers.FrozenBatchNorm2d = Conv2d, get_norm, FrozenBatchNorm2d
    modeling = sys.modules["detectron2.modeling"]
    modeling.SEM_SEG_HEADS_REGISTRY = SEM_SEG_HEADS_REGISTRY
    modeling.build_backbone, modeling.build_sem_seg_head = build_backbone, build_sem_seg_head
    sys.modules["detectron2.config"].get_cfg = get_cfg
    backbone = types.ModuleType("detectron2.modeling.backbone")
    backbone.Backbone = Backbone
    sys.modules["detectron2.modeling.backbone"] = backbone
    modeling.backbone = backbone
