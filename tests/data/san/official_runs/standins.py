"""Small stand-ins for the parts of detectron2 / fvcore / scipy that the official SAN model imports.

Written for this fixture (no detectron2 text). Each one either has the same numerics as detectron2
for what SAN's inference calls (`ImageList.from_tensors`, `sem_seg_postprocess`, `Conv2d`), or is
only touched at construction / training time (`weight_init`, the criterion's point sampling, the
Hungarian matcher, `comm`), where it changes no inference number. See ../README.md section 2.
"""
from __future__ import annotations

import copy
import functools
import importlib.machinery
import sys
import types
from dataclasses import dataclass
from typing import Optional

import torch
import yaml
from torch import nn
from torch.nn import functional as F


# ---------------------------------------------------------------- config: CfgNode, get_cfg, configurable
class CfgNode(dict):
    """A dict with attribute access and yacs-style merging (existing keys only under MODEL)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(name) from e

    def __setattr__(self, name, value):
        self[name] = value

    def merge(self, other: dict, path: str = "") -> None:
        for key, value in other.items():
            where = f"{path}.{key}" if path else key
            strict = where.startswith("MODEL.")
            if strict and key not in self:
                raise KeyError(f"config key {where} does not exist in the defaults")
            if isinstance(value, dict):
                node = self.setdefault(key, CfgNode())
                if not isinstance(node, CfgNode):
                    raise TypeError(f"{where}: a node in the file, a value in the defaults")
                node.merge(value, where)
            else:
                if strict and isinstance(self[key], dict):
                    raise TypeError(f"{where}: a value in the file, a node in the defaults")
                if strict and self[key] is not None and value is not None:
                    old = self[key]
                    if isinstance(old, (list, tuple)) and isinstance(value, (list, tuple)):
                        value = type(old)(value)
                    elif type(old) is float and type(value) is int:
                        value = float(value)
                    elif type(old) is not type(value):
                        raise TypeError(f"{where}: {type(value).__name__} given, {type(old).__name__} expected")
                self[key] = value

    def merge_from_file(self, path: str) -> None:
        """detectron2's `_BASE_` handling: the base file first, then this file on top."""
        with open(path) as f:
            data = yaml.unsafe_load(f)  # the base config has a !!python/object/apply:eval tag
        base = data.pop("_BASE_", None)
        if base is not None:
            import os

            self.merge_from_file(os.path.join(os.path.dirname(path), base))
        self.merge(_to_node(data))

    def merge_from_list(self, items: list) -> None:
        for key, value in zip(items[0::2], items[1::2]):
            node = self
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            if leaf not in node:
                raise KeyError(key)
            node[leaf] = value

    def clone(self):
        return copy.deepcopy(self)


def _to_node(d):
    if isinstance(d, dict):
        return CfgNode({k: _to_node(v) for k, v in d.items()})
    return d


def get_cfg() -> CfgNode:
    """The detectron2 defaults that SAN's model and test mapper read (the rest is not read at inference)."""
    return _to_node({
        "MODEL": {
            "META_ARCHITECTURE": "GeneralizedRCNN",
            "DEVICE": "cpu",
            "WEIGHTS": "",
            "PIXEL_MEAN": [103.530, 116.280, 123.675],
            "PIXEL_STD": [1.0, 1.0, 1.0],
        },
        "INPUT": {
            "MIN_SIZE_TEST": 800,
            "MAX_SIZE_TEST": 1333,
            "FORMAT": "BGR",
            "CROP": {"ENABLED": False, "TYPE": "relative_range", "SIZE": [0.9, 0.9]},
        },
        "SOLVER": {},
        "TEST": {"AUG": {"ENABLED": False}},
        "DATASETS": {},
        "DATALOADER": {},
        "VERSION": 2,
    })


def configurable(init_func):
    """detectron2's dispatch: `Cls(cfg, ...)` calls `Cls.from_config(cfg, ...)` and passes its dict to __init__."""

    @functools.wraps(init_func)
    def wrapped(self, *args, **kwargs):
        if args and isinstance(args[0], CfgNode) or isinstance(kwargs.get("cfg"), CfgNode):
            explicit = type(self).from_config(*args, **kwargs)
            init_func(self, **explicit)
        else:
            init_func(self, *args, **kwargs)

    return wrapped


# ---------------------------------------------------------------- registries, metadata, logging
class Registry(dict):
    def __init__(self, name: str):
        super().__init__()
        self._name = name

    def register(self, obj=None):
        if obj is None:
            return lambda o: self.register(o)
        if obj.__name__ in self:
            raise KeyError(f"{obj.__name__} already registered in {self._name}")
        self[obj.__name__] = obj
        return obj

    def get(self, name):
        if name not in self:
            raise KeyError(f"no object named {name} in registry {self._name}")
        return self[name]


class _Metadata(types.SimpleNamespace):
    pass


class _MetadataCatalog(dict):
    def get(self, name):
        return self.setdefault(name, _Metadata(name=name))


MetadataCatalog = _MetadataCatalog()


def log_first_n(level, msg, n=1, *, name=None, key="caller"):
    """Logging only."""


def retry_if_cuda_oom(func):
    """detectron2 retries on CUDA OOM; on the CPU it is the function itself."""
    return func


# ---------------------------------------------------------------- layers, structures, postprocessing
@dataclass
class ShapeSpec:
    channels: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    stride: Optional[int] = None


class CNNBlockBase(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride


class Conv2d(nn.Conv2d):
    """detectron2's Conv2d with norm=None, activation=None: a plain convolution."""

    def __init__(self, *args, norm=None, activation=None, **kwargs):
        super().__init__(*args, **kwargs)
        assert norm is None and activation is None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ImageList:
    """Batch images, padding bottom/right with 0 to a multiple of `size_divisibility`."""

    def __init__(self, tensor: torch.Tensor, image_sizes: list):
        self.tensor = tensor
        self.image_sizes = image_sizes

    @staticmethod
    def from_tensors(tensors, size_divisibility: int = 0, pad_value: float = 0.0):
        sizes = [(int(t.shape[-2]), int(t.shape[-1])) for t in tensors]
        max_h = max(h for h, _ in sizes)
        max_w = max(w for _, w in sizes)
        if size_divisibility > 1:
            s = size_divisibility
            max_h = (max_h + s - 1) // s * s
            max_w = (max_w + s - 1) // s * s
        batch = tensors[0].new_full((len(tensors), *tensors[0].shape[:-2], max_h, max_w), pad_value)
        for img, pad in zip(tensors, batch):
            pad[..., : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batch.contiguous(), sizes)


def sem_seg_postprocess(result, img_size, output_height, output_width):
    """Crop the padding off, then bilinear (align_corners=False) to the original size."""
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    return F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[0]


def build_model(cfg):
    model = META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE)(cfg)
    return model.to(torch.device(cfg.MODEL.DEVICE))


META_ARCH_REGISTRY = Registry("META_ARCH")


# ---------------------------------------------------------------- training-only imports
def _c2_xavier_fill(module):
    """Construction-time init; every parameter is overwritten by the checkpoint afterwards."""
    nn.init.kaiming_uniform_(module.weight, a=1)
    if module.bias is not None:
        nn.init.constant_(module.bias, 0)


def _training_only(*args, **kwargs):
    raise RuntimeError("training-only function called at inference")


def install() -> None:
    """Put the stand-in modules into sys.modules (before importing the official SAN code)."""
    modules = {
        "detectron2": {},
        "detectron2.config": {"configurable": configurable, "CfgNode": CfgNode, "get_cfg": get_cfg},
        "detectron2.modeling": {"META_ARCH_REGISTRY": META_ARCH_REGISTRY, "build_model": build_model},
        "detectron2.modeling.postprocessing": {"sem_seg_postprocess": sem_seg_postprocess},
        "detectron2.structures": {"ImageList": ImageList},
        "detectron2.utils": {},
        "detectron2.utils.memory": {"retry_if_cuda_oom": retry_if_cuda_oom},
        "detectron2.utils.registry": {"Registry": Registry},
        "detectron2.utils.logger": {"log_first_n": log_first_n},
        "detectron2.utils.comm": {"get_world_size": lambda: 1},
        "detectron2.layers": {"ShapeSpec": ShapeSpec, "CNNBlockBase": CNNBlockBase, "Conv2d": Conv2d},
        "detectron2.data": {"MetadataCatalog": MetadataCatalog},
        "detectron2.projects": {},
        "detectron2.projects.point_rend": {},
        "detectron2.projects.point_rend.point_features": {
            "point_sample": _training_only,
            "get_uncertain_point_coords_with_randomness": _training_only,
        },
        "fvcore": {},
        "fvcore.nn": {},
        "fvcore.nn.weight_init": {"c2_xavier_fill": _c2_xavier_fill},
        "scipy": {},
        "scipy.optimize": {"linear_sum_assignment": _training_only},
    }
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__path__ = []  # importable as a package
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        for key, value in attrs.items():
            setattr(module, key, value)
        sys.modules[name] = module
    sys.modules["fvcore.nn"].weight_init = sys.modules["fvcore.nn.weight_init"]


def install_san_packages(checkout: str) -> None:
    """Make `san`, `san.utils` importable without running their __init__ (dataset registration,
    wandb, TTA); `san.model` and everything below it run unmodified."""
    import os

    for name in ("san", "san.utils"):
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(checkout, *name.split("."))]
        sys.modules[name] = module
    sys.path.insert(0, checkout)

