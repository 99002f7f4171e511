"""detectron2's ResNet (the "basic" 7x7 stem or DeepLab's three-conv stem), inference only.

Module names follow detectron2 (`stem.conv1`, `res2.0.conv1`, `res2.0.shortcut`, each conv with its
`norm`), so an official `backbone.*` state dict loads unchanged. timm's ResNets are not used: their
deep stems have other widths (32-32-64 against 64-64-128) and they have no multi-grid res5.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from model.maskformer.config import ResNetConfig
from model.maskformer.layers import Conv2d, get_norm

BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class BasicStem(nn.Module):
    def __init__(self, out_channels: int, norm: str):
        super().__init__()
        self.conv1 = Conv2d(3, out_channels, kernel_size=7, stride=2, padding=3, bias=False,
                            norm=get_norm(norm, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(F.relu_(self.conv1(x)), kernel_size=3, stride=2, padding=1)


class DeepLabStem(nn.Module):
    def __init__(self, out_channels: int, norm: str):
        super().__init__()
        half = out_channels // 2
        self.conv1 = Conv2d(3, half, kernel_size=3, stride=2, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv2 = Conv2d(half, half, kernel_size=3, stride=1, padding=1, bias=False, norm=get_norm(norm, half))
        self.conv3 = Conv2d(half, out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                            norm=get_norm(norm, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu_(self.conv3(F.relu_(self.conv2(F.relu_(self.conv1(x))))))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bottleneck_channels: int, stride: int, num_groups: int,
                 dilation: int, stride_in_1x1: bool, norm: str):
        super().__init__()
        self.shortcut = (Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False,
                                norm=get_norm(norm, out_channels)) if in_channels != out_channels else None)
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, kernel_size=1, stride=stride_1x1, bias=False,
                            norm=get_norm(norm, bottleneck_channels))
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, kernel_size=3, stride=stride_3x3,
                            padding=dilation, bias=False, groups=num_groups, dilation=dilation,
                            norm=get_norm(norm, bottleneck_channels))
        self.conv3 = Conv2d(bottleneck_channels, out_channels, kernel_size=1, bias=False,
                            norm=get_norm(norm, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu_(self.conv2(F.relu_(self.conv1(x))))
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


class ResNet(nn.Module):
    """Features {res2: stride 4, ..., res5: stride 32} (only those in `config.out_features`)."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        stem = {"basic": BasicStem, "deeplab": DeepLabStem}.get(config.stem)
        if stem is None:
            raise ValueError(f"unknown ResNet stem '{config.stem}' (known: basic, deeplab)")
        self.stem = stem(config.stem_out_channels, config.norm)
        in_channels, out_channels = config.stem_out_channels, config.res2_out_channels
        bottleneck = config.num_groups * config.width_per_group
        self.stage_names = []
        self.strides: dict[str, int] = {}
        stride = 4
        last = max(int(name[3:]) for name in config.out_features)
        for index, stage in enumerate(range(2, last + 1)):
            dilation = {4: config.res4_dilation, 5: config.res5_dilation}.get(stage, 1)
            blocks = BLOCKS_PER_STAGE[config.depth][index]
            first_stride = 1 if index == 0 or dilation > 1 else 2
            grid = config.res5_multi_grid if stage == 5 else (1,) * blocks
            if len(grid) != blocks:
                raise ValueError(f"res5_multi_grid {grid} needs one factor per res5 block ({blocks})")
            layers = []
            for b in range(blocks):
                layers.append(BottleneckBlock(in_channels, out_channels, bottleneck, first_stride if b == 0 else 1,
                                              config.num_groups, dilation * grid[b], config.stride_in_1x1,
                                              config.norm))
                in_channels = out_channels
            name = f"res{stage}"
            stride *= first_stride
            self.strides[name] = stride
            self.add_module(name, nn.Sequential(*layers))
            self.stage_names.append(name)
            out_channels *= 2
            bottleneck *= 2

    @property
    def out_channels(self) -> dict[str, int]:
        return {name: self.config.res2_out_channels * 2**i for i, name in enumerate(self.stage_names)}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.stem(x)
        features = {}
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self.config.out_features:
                features[name] = x
        return features
