"""The official CAT-Seg (CVPR) code, built and run from a checkout of it without detectron2.

    net = build_official(Path("/tmp/catseg-official"), official_state_dict, class_names, workdir)
    text = official_text_embeddings(net, class_names)   # (T, C), as its get_text_embeds does it
    logits = official_forward(net, views)                # (B, T, 96, 96), the work of CATSeg.forward

Used by `class_sweep.py --official DIR` to time the official forward against ours, and by
`tests/data/parity_b300/official_runs/make_fixture.py` to run the official `CATSeg.forward` (both
its sliding-window and its whole-image path) for a parity fixture. Nothing of the
official code is copied here: its modules are imported from DIR at run time (that checkout needs
einops, timm, ftfy and regex importable). The way it is run follows the protocol that produced
the parity fixtures (shared/parity/README.md, section 1.1):

* the detectron2 / fvcore names the official modules import are small stand-ins put into
  `sys.modules`: `configurable` (cfg -> `from_config` -> `__init__`), the two registries and
  `build_sem_seg_head`, and an empty `fvcore.nn.weight_init`; names only imported and never
  called on this path are placeholders that refuse to be used;
* the package `__init__`s are not run (they register datasets and import the Swin backbone):
  the submodules are imported directly;
* `clip.load` builds the vendored CLIP with the official `model_vpt.build_model` from the
  OpenAI-format view of the given state dict instead of downloading it;
* `CATSegPredictor.class_embeddings` returns zeros: at construction it embeds the whole training
  vocabulary, which the forward never reads;
* `torch.Tensor.cuda` is the identity (the predictor moves token ids with `.cuda()`).

* `ImageList.from_tensors` and `sem_seg_postprocess` (read by `CATSeg.forward`) have detectron2's
  bodies: zero padding at the bottom and right up to a multiple of `size_divisibility`; crop, then
  bilinear resize with `align_corners=False`.

The model is CAT-Seg-B, `configs/vitb_384.yaml` on its `_BASE_`, with the eval.sh overrides:
sliding window, `POOLING_SIZES [1, 1]`, and `TEST_CLASS_JSON` = the given class names; `head_overrides`
replace `MODEL.SEM_SEG_HEAD` values (a parity fixture at reduced widths) and `sliding=False` selects
the official non-sliding path.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from functools import wraps
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

CLIP_PREFIX = "sem_seg_head.predictor.clip_model."
CONFIG_FILES = {"catseg-b": "configs/vitb_384.yaml"}
# Sections of detectron2's default config that `add_cat_seg_config` extends.
DEFAULT_SECTIONS = ("MODEL.SEM_SEG_HEAD", "INPUT.CROP", "DATASETS", "SOLVER", "TEST")


class CfgNode(dict):
    """A config section: a dict read and written through attributes, as yacs' CfgNode is."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"the official config has no key {name!r}") from None

    def __setattr__(self, name: str, value) -> None:
        self[name] = value

    def merge(self, values: dict) -> None:
        """Merge a parsed YAML mapping into this node, section by section."""
        for key, value in values.items():
            if isinstance(value, dict):
                self.setdefault(key, CfgNode()).merge(value)
            else:
                self[key] = value


class Registry:
    """detectron2's `Registry`, as far as `@REGISTRY.register()` and `get(name)`."""

    def __init__(self, name: str):
        self.name = name
        self.classes: dict[str, type] = {}

    def register(self):
        def add(cls: type) -> type:
            self.classes[cls.__name__] = cls
            return cls

        return add

    def get(self, name: str) -> type:
        if name not in self.classes:
            raise KeyError(f"{name!r} is not registered in {self.name}: import the official module that defines it")
        return self.classes[name]


def configurable(init):
    """detectron2's `configurable`: called with a config, the class's `from_config` gives the arguments."""

    @wraps(init)
    def dispatch(self, *args, **kwargs):
        if args and isinstance(args[0], CfgNode):
            init(self, **type(self).from_config(*args, **kwargs))
        else:
            init(self, *args, **kwargs)

    return dispatch


def _placeholder(qualname: str) -> type:
    """A name the official modules import but the benchmark's path never uses."""

    def refuse(*args, **kwargs):
        raise NotImplementedError(f"{qualname} is only a placeholder in the benchmark's detectron2 stand-in")

    return type(qualname.rsplit(".", 1)[1], (), {"__init__": refuse})


class ImageList:
    """detectron2's `ImageList.from_tensors`: pad (bottom, right, with 0) to the batch maximum rounded
    up to a multiple of `size_divisibility`; `image_sizes` are the unpadded (h, w)."""

    def __init__(self, tensor: Tensor, image_sizes: list[tuple[int, int]]):
        self.tensor, self.image_sizes = tensor, image_sizes

    @classmethod
    def from_tensors(cls, tensors: list[Tensor], size_divisibility: int = 0, pad_value: float = 0.0) -> ImageList:
        sizes = [tuple(t.shape[-2:]) for t in tensors]
        height, width = (max(s[i] for s in sizes) for i in (0, 1))
        if size_divisibility > 1:
            height, width = (-(-v // size_divisibility) * size_divisibility for v in (height, width))
        padded = [F.pad(t, (0, width - t.shape[-1], 0, height - t.shape[-2]), value=pad_value) for t in tensors]
        return cls(torch.stack(padded), sizes)


def sem_seg_postprocess(result: Tensor, img_size: tuple[int, int], output_height: int, output_width: int) -> Tensor:
    """detectron2's body: crop the padding away, then resize bilinearly to the requested size."""
    result = result[:, : img_size[0], : img_size[1]].expand(1, -1, -1, -1)
    return F.interpolate(result, size=(output_height, output_width), mode="bilinear", align_corners=False)[0]


def _add_module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def install_detectron2_standins() -> None:
    """Put the detectron2 and fvcore names the official CAT-Seg modules import into `sys.modules`."""
    if "detectron2" in sys.modules:
        return
    sem_seg_heads = Registry("SEM_SEG_HEADS_REGISTRY")

    def build_sem_seg_head(cfg: CfgNode, input_shape):
        return sem_seg_heads.get(cfg.MODEL.SEM_SEG_HEAD.NAME)(cfg, input_shape)

    _add_module("detectron2")
    _add_module("detectron2.config", configurable=configurable, CfgNode=CfgNode)
    _add_module("detectron2.data", MetadataCatalog=_placeholder("detectron2.data.MetadataCatalog"))
    _add_module("detectron2.layers", **{n: _placeholder(f"detectron2.layers.{n}") for n in ("Conv2d", "ShapeSpec", "get_norm")})
    _add_module("detectron2.modeling", META_ARCH_REGISTRY=Registry("META_ARCH_REGISTRY"),
                SEM_SEG_HEADS_REGISTRY=sem_seg_heads, build_sem_seg_head=build_sem_seg_head,
                build_backbone=_placeholder("detectron2.modeling.build_backbone"))
    _add_module("detectron2.modeling.backbone", Backbone=_placeholder("detectron2.modeling.backbone.Backbone"))
    _add_module("detectron2.modeling.postprocessing", sem_seg_postprocess=sem_seg_postprocess)
    _add_module("detectron2.structures", ImageList=ImageList)
    _add_module("detectron2.utils")
    _add_module("detectron2.utils.memory",
                _ignore_torch_cuda_oom=_placeholder("detectron2.utils.memory._ignore_torch_cuda_oom"))
    _add_module("fvcore")
    _add_module("fvcore.nn")
    _add_module("fvcore.nn.weight_init")


def _import_official(official: Path) -> types.SimpleNamespace:
    """The official submodules, imported without running `cat_seg/__init__.py` or `cat_seg/modeling/__init__.py`."""
    package = official / "cat_seg"
    if not (package / "cat_seg_model.py").is_file():
        raise FileNotFoundError(f"{package / 'cat_seg_model.py'} does not exist: pass --official a checkout of "
                                "github.com/KU-CVLAB/CAT-Seg (CVPR version)")
    install_detectron2_standins()
    for name, folder in (("cat_seg", package), ("cat_seg.modeling", package / "modeling")):
        if name not in sys.modules:
            _add_module(name, __path__=[str(folder)])
    modules = {n: importlib.import_module(f"cat_seg.{p}") for n, p in (
        ("config", "config"), ("clip", "third_party.clip"), ("model_vpt", "third_party.model_vpt"),
        ("predictor", "modeling.transformer.cat_seg_predictor"), ("head", "modeling.heads.cat_seg_head"),
        ("meta_arch", "cat_seg_model"))}
    return types.SimpleNamespace(**modules)


def _yaml_with_bases(path: Path) -> list[dict]:
    """A detectron2 config file and the `_BASE_` files under it, base first."""
    values = yaml.safe_load(path.read_text())
    base = values.pop("_BASE_", None)
    return (_yaml_with_bases(path.parent / base) if base else []) + [values]


def official_config(official: Path, modules: types.SimpleNamespace, model_name: str, test_class_json: Path,
                    sliding: bool = True, head_overrides: dict | None = None) -> CfgNode:
    """The official eval config: defaults + `add_cat_seg_config` + the model's YAML + the eval.sh
    overrides (`TEST.SLIDING_WINDOW` = `sliding`) + `head_overrides` on `MODEL.SEM_SEG_HEAD`."""
    if model_name not in CONFIG_FILES:
        raise ValueError(f"--official supports {', '.join(CONFIG_FILES)}, not {model_name!r}")
    cfg = CfgNode()
    for section in DEFAULT_SECTIONS:
        node = cfg
        for key in section.split("."):
            node = node.setdefault(key, CfgNode())
    modules.config.add_cat_seg_config(cfg)
    for values in _yaml_with_bases(official / CONFIG_FILES[model_name]):
        cfg.merge(values)
    cfg.TEST.SLIDING_WINDOW = sliding
    cfg.MODEL.SEM_SEG_HEAD.POOLING_SIZES = [1, 1]
    for key, value in (head_overrides or {}).items():
        if key not in cfg.MODEL.SEM_SEG_HEAD:
            raise KeyError(f"MODEL.SEM_SEG_HEAD has no key {key!r}")
        cfg.MODEL.SEM_SEG_HEAD[key] = value
    cfg.MODEL.SEM_SEG_HEAD.TRAIN_CLASS_JSON = str(official / cfg.MODEL.SEM_SEG_HEAD.TRAIN_CLASS_JSON)
    cfg.MODEL.SEM_SEG_HEAD.TEST_CLASS_JSON = str(test_class_json)
    return cfg


def _openai_clip_state(state: dict[str, Tensor]) -> dict[str, object]:
    """The CLIP part of an official CAT-Seg state dict laid out as an OpenAI CLIP file (merged q/k/v)."""
    clip = {k[len(CLIP_PREFIX):]: v for k, v in state.items() if k.startswith(CLIP_PREFIX)}
    out: dict[str, object] = {}
    for key, value in clip.items():
        if key.endswith(".attn.q_proj_weight"):
            stem = key[: -len("q_proj_weight")]
            out[f"{stem}in_proj_weight"] = torch.cat([clip[f"{stem}{p}_proj_weight"] for p in "qkv"])
        elif not key.endswith((".attn.k_proj_weight", ".attn.v_proj_weight")):
            out[key] = value
    # read and dropped by build_model, as in the OpenAI files
    out.update(input_resolution=None, context_length=None, vocab_size=None)
    return out


def build_official(official: Path, state: dict[str, Tensor], model_name: str, class_names: list[str],
                   workdir: Path, sliding: bool = True, head_overrides: dict | None = None) -> nn.Module:
    """The official `CATSeg` in eval mode with `state` (official key names) loaded strictly;
    `sliding` and `head_overrides` as `official_config`."""
    modules = _import_official(official)
    test_class_json = workdir / "test_classes.json"
    test_class_json.write_text(json.dumps(class_names))
    cfg = official_config(official, modules, model_name, test_class_json, sliding, head_overrides)

    def load_clip(name, device="cpu", jit=False, prompt_depth=0, prompt_length=0):
        return modules.model_vpt.build_model(_openai_clip_state(state), prompt_depth, prompt_length), None

    def skip_class_embeddings(self, classnames, templates, clip_model):
        return torch.zeros(len(templates), len(classnames), clip_model.text_projection.shape[1])

    modules.clip.load = load_clip
    modules.predictor.CATSegPredictor.class_embeddings = skip_class_embeddings
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    net = modules.meta_arch.CATSeg(cfg)
    net.load_state_dict(state, strict=True)
    return net.eval()


@torch.no_grad()
def official_text_embeddings(net: nn.Module, class_names: list[str]) -> Tensor:
    """(T, C) prompt embeddings by the official `get_text_embeds`, which also caches them for the forward."""
    predictor = net.sem_seg_head.predictor
    predictor.tokens, predictor.cache = None, None
    return predictor.get_text_embeds(class_names, predictor.prompt_templates, predictor.clip_model)[:, 0]


@torch.no_grad()
def official_forward(net: nn.Module, views: Tensor) -> Tensor:
    """Logits (B, T, 96, 96) of CLIP-normalised views at the CLIP resolution, for the classes of the
    last `official_text_embeddings` call: the CLIP encoding, guidance upsampling and head call that
    the official `CATSeg.inference_sliding_window` makes between its normalisation and its sigmoid."""
    g = net.sem_seg_head.feature_resolution[0]
    batch = views.shape[0]
    net.layers = []  # filled by the official forward hooks on the two guidance blocks
    features = net.sem_seg_head.predictor.clip_model.encode_image(views, dense=True)

    def grid(tokens: Tensor) -> Tensor:  # (L, B, C) without CLS -> (B, C, g, g)
        return tokens[1:].permute(1, 2, 0).reshape(batch, -1, g, g)

    guidance = {"res5": net.upsample2(grid(net.layers[1])), "res4": net.upsample1(grid(net.layers[0])),
                "res3": grid(features.transpose(0, 1))}  # the predictor reads them in reverse order
    return net.sem_seg_head(features, guidance)
