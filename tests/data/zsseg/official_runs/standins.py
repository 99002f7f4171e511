"""The detectron2 / fvcore / scipy stand-ins of the SAN fixture (../../san/official_runs/standins.py),
extended with what the official ZSSeg model imports. Written for this fixture (no detectron2 text).

Added here (see ../README.md section 2):
* a yacs-like `CfgNode` whose string values are `ast.literal_eval`-ed when they parse (yacs does
  this for every string read from a yaml file: ZSSeg writes `PROMPT_SHAPE: (16, 0)`), and a
  `get_cfg` with the detectron2 defaults ZSSeg's model reads (`MODEL.BACKBONE`, `MODEL.RESNETS`,
  `MODEL.SEM_SEG_HEAD`);
* `detectron2.layers`: `Conv2d` with `norm` and `activation` (conv, then norm, then activation, as
  detectron2), `get_norm` ("FrozenBN", "GN" = GroupNorm(32, C), ""), `FrozenBatchNorm2d` (four
  buffers; without gradients `F.batch_norm(training=False)`, as detectron2), `DeformConv` /
  `ModulatedDeformConv` (never built: no deformable stage);
* `detectron2.modeling`: `BACKBONE_REGISTRY`, `SEM_SEG_HEADS_REGISTRY`, `build_sem_seg_head`
  (registry lookup); `build_backbone` and the ResNet itself come from detectron2's own files
  (`load_detectron2_backbone`);
* `detectron2.structures.BitMasks` (`get_bounding_boxes`: tight boxes, end exclusive, float32);
* `detectron2.utils.comm.get_local_rank` = 0, `synchronize` = no-op; `fvcore` `c2_msra_fill`
  (construction-time init, overwritten by the checkpoint); `scipy.interpolate.interp2d` (only in
  the bundled CLIP's non-bicubic position interpolation, which ZSSeg never selects: raises).
"""
from __future__ import annotations

import ast
import importlib.util
import os
import sys
import types

import torch
import yaml
from torch import nn
from torch.nn import functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
_SAN = importlib.util.spec_from_file_location("san_standins", os.path.join(HERE, "..", "..", "san", "official_runs",
                                                                           "standins.py"))
san_standins = importlib.util.module_from_spec(_SAN)
sys.modules["san_standins"] = san_standins
_SAN.loader.exec_module(san_standins)


def _decode(value):
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


class CfgNode(san_standins.CfgNode):
    def merge(self, other: dict, path: str = "") -> None:
        decoded = {}
        for key, value in other.items():
            decoded[key] = value if isinstance(value, dict) else _decode(value)
        super().merge(decoded, path)

    def merge_from_file(self, path: str) -> None:
        with open(path) as f:
            data = yaml.unsafe_load(f)
        base = data.pop("_BASE_", None)
        if base is not None:
            self.merge_from_file(os.path.join(os.path.dirname(path), base))
        self.merge(_to_node(data))


def _to_node(d):
    if isinstance(d, dict):
        return CfgNode({k: _to_node(v) for k, v in d.items()})
    return d


def get_cfg() -> CfgNode:
    """SAN's defaults plus the detectron2 defaults ZSSeg's model reads (detectron2/config/defaults.py values)."""
    cfg = _to_node(dict(san_standins.get_cfg()))
    cfg.MODEL.BACKBONE = _to_node({"NAME": "build_resnet_backbone", "FREEZE_AT": 2})
    cfg.MODEL.RESNETS = _to_node({
        "DEPTH": 50, "OUT_FEATURES": ["res4"], "NUM_GROUPS": 1, "NORM": "FrozenBN", "WIDTH_PER_GROUP": 64,
        "STRIDE_IN_1X1": True, "RES5_DILATION": 1, "RES2_OUT_CHANNELS": 256, "STEM_OUT_CHANNELS": 64,
        "DEFORM_ON_PER_STAGE": [False, False, False, False], "DEFORM_MODULATED": False, "DEFORM_NUM_GROUPS": 1,
    })
    cfg.MODEL.SEM_SEG_HEAD = _to_node({
        "NAME": "SemSegFPNHead", "IN_FEATURES": ["p2", "p3", "p4", "p5"], "IGNORE_VALUE": 255, "NUM_CLASSES": 54,
        "CONVS_DIM": 128, "COMMON_STRIDE": 4, "NORM": "GN", "LOSS_WEIGHT": 1.0,
    })
    cfg.DATASETS = _to_node({"TRAIN": [], "TEST": []})
    return cfg


class FrozenBatchNorm2d(nn.Module):
    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features) - eps)
        self.register_buffer("num_batches_tracked", None)

    def forward(self, x):
        if x.requires_grad:
            raise RuntimeError("the fixture runs without gradients")
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                            eps=self.eps)


def get_norm(norm, out_channels):
    if norm is None or norm == "":
        return None
    if isinstance(norm, str):
        return {"FrozenBN": FrozenBatchNorm2d, "GN": lambda c: nn.GroupNorm(32, c)}[norm](out_channels)
    return norm(out_channels)


class Conv2d(nn.Conv2d):
    """detectron2's Conv2d: convolution, then `norm`, then `activation`."""

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


class _NeverBuilt(nn.Module):
    def __init__(self, *args, **kwargs):
        raise RuntimeError("deformable convolutions are not used by this config")


class Boxes:
    def __init__(self, tensor):
        self.tensor = tensor

    def __iter__(self):
        yield from self.tensor


class BitMasks:
    def __init__(self, tensor):
        self.tensor = tensor.to(torch.bool)

    def get_bounding_boxes(self):
        boxes = torch.zeros(self.tensor.shape[0], 4, dtype=torch.float32)
        x_any = torch.any(self.tensor, dim=1)
        y_any = torch.any(self.tensor, dim=2)
        for idx in range(self.tensor.shape[0]):
            x = torch.where(x_any[idx, :])[0]
            y = torch.where(y_any[idx, :])[0]
            if len(x) > 0 and len(y) > 0:
                boxes[idx, :] = torch.as_tensor([x[0], y[0], x[-1] + 1, y[-1] + 1], dtype=torch.float32)
        return Boxes(boxes)


def _c2_msra_fill(module):
    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


BACKBONE_REGISTRY = san_standins.Registry("BACKBONE")
SEM_SEG_HEADS_REGISTRY = san_standins.Registry("SEM_SEG_HEADS")


def build_sem_seg_head(cfg, input_shape):
    return SEM_SEG_HEADS_REGISTRY.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(cfg, input_shape)


def install() -> None:
    san_standins.install()
    m = sys.modules
    m["detectron2.config"].CfgNode = CfgNode
    m["detectron2.config"].get_cfg = get_cfg
    layers = m["detectron2.layers"]
    layers.Conv2d, layers.get_norm, layers.FrozenBatchNorm2d = Conv2d, get_norm, FrozenBatchNorm2d
    layers.DeformConv = layers.ModulatedDeformConv = _NeverBuilt
    modeling = m["detectron2.modeling"]
    modeling.BACKBONE_REGISTRY, modeling.SEM_SEG_HEADS_REGISTRY = BACKBONE_REGISTRY, SEM_SEG_HEADS_REGISTRY
    modeling.build_sem_seg_head = build_sem_seg_head
    m["detectron2.structures"].BitMasks = BitMasks
    m["detectron2.utils.comm"].get_local_rank = lambda: 0
    m["detectron2.utils.comm"].synchronize = lambda: None
    m["fvcore.nn.weight_init"].c2_msra_fill = _c2_msra_fill
    # the bundled CLIP imports scipy.interpolate for a position-table interpolation ZSSeg never selects
    interpolate = types.ModuleType("scipy.interpolate")
    interpolate.interp2d = san_standins._training_only
    m["scipy.interpolate"] = m["scipy"].interpolate = interpolate
    backbone_pkg = types.ModuleType("detectron2.modeling.backbone")
    backbone_pkg.__path__ = []
    m["detectron2.modeling.backbone"] = backbone_pkg
    build = types.ModuleType("detectron2.modeling.backbone.build")
    build.BACKBONE_REGISTRY = BACKBONE_REGISTRY
    m["detectron2.modeling.backbone.build"] = build


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_detectron2_backbone(detectron2: str) -> None:
    """Run detectron2's own `backbone.py`, `resnet.py` and DeepLab's `resnet.py` / `config.py` from
    a checkout (they only need the stand-ins above); `build_backbone` is detectron2's lookup."""
    m = sys.modules
    backbone = _load("detectron2.modeling.backbone.backbone",
                     os.path.join(detectron2, "detectron2/modeling/backbone/backbone.py"))
    m["detectron2.modeling.backbone"].Backbone = backbone.Backbone
    resnet = _load("detectron2.modeling.backbone.resnet", os.path.join(detectron2, "detectron2/modeling/backbone/resnet.py"))
    m["detectron2.modeling.backbone"].resnet = resnet

    def build_backbone(cfg, input_shape=None):
        if input_shape is None:
            input_shape = san_standins.ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
        return BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg, input_shape)

    m["detectron2.modeling"].build_backbone = build_backbone
    deeplab = types.ModuleType("detectron2.projects.deeplab")
    deeplab.__path__ = []
    m["detectron2.projects.deeplab"] = deeplab
    _load("detectron2.projects.deeplab.resnet", os.path.join(detectron2, "projects/DeepLab/deeplab/resnet.py"))
    config = _load("detectron2.projects.deeplab.config", os.path.join(detectron2, "projects/DeepLab/deeplab/config.py"))
    deeplab.add_deeplab_config = config.add_deeplab_config


def install_zsseg_packages(checkout: str) -> None:
    """Make `mask_former`, `mask_former.modeling` and `mask_former.utils` importable without their
    __init__ (datasets, evaluation, TTA, Swin, the ablations, wandb logging); the modules the model
    needs run unmodified. The
    bundled OpenAI CLIP (`third_party/CLIP`) is put on the path."""
    for name in ("mask_former", "mask_former.modeling", "mask_former.utils"):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(checkout, *name.split("."))]
        sys.modules[name] = module
    sys.path.insert(0, checkout)
    sys.path.insert(0, os.path.join(checkout, "third_party", "CLIP"))
