"""Run the official OVSeg inference (facebookresearch/ov-seg@36f49d4 as blumenstiel/ov-seg-MESS@82176d4
carries it) on the formula weights and save its outputs and intermediates, full size, for make_fixture.py.

No official code is in this file: it imports `open_vocab_seg` and the vendored `clip` from the
checkout given on the command line, with the detectron2 stand-ins of maskformer_standins.py.
See ../README.md section 2 for every stand-in and monkeypatch.

    python run_ovseg_official.py --ovseg /tmp/ovfx/ovseg_mess --project /work/ovseg --out /tmp/ovfx/out \
        --override MODEL.SWIN.DEPTHS '[2,2,2,2]' MODEL.MASK_FORMER.NUM_OBJECT_QUERIES 20 --clip-layers 4 2
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
import warnings
from collections import OrderedDict

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import maskformer_standins  # noqa: E402

CONFIG = "configs/ovseg_swinB_vitL_bs32_120k.yaml"  # what mess/eval.sh runs
DATASET = "ovseg_parity_fixture"
# What MESS registers as stuff_classes (OVSeg strips each name); the first one keeps a trailing space.
CLASS_NAMES = ["background ", "human divers", "aquatic plants and sea-grass", "robots (AUVs/ROVs/instruments)",
               "fish and vertebrates", "sea-floor and rocks"]
IMAGE_HW = (480, 637)
# name -> (dtype, threads); the float32 runs come first because the float64 one converts the model
RUNS = {"fp32_t2": (torch.float32, 2), "fp32_t1": (torch.float32, 1), "fp64_t2": (torch.float64, 2)}
# ViT-L/14 as clip.load builds it from the OpenAI file (third_party/CLIP/clip/model.py build_model)
CLIP_L14 = dict(embed_dim=768, image_resolution=224, vision_width=1024, vision_patch_size=14, context_length=77,
                vocab_size=49408, transformer_width=768, transformer_heads=12)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ovseg", required=True, help="checkout of blumenstiel/ov-seg-MESS@82176d4")
    p.add_argument("--project", required=True, help="catseg-bench checkout (for tests/formula_weights.py)")
    p.add_argument("--out", required=True, help="folder for the raw outputs")
    p.add_argument("--override", nargs="*", default=[], help="extra config KEY VALUE pairs (reduced L)")
    p.add_argument("--tag", default="l", help="output name")
    p.add_argument("--clip-layers", nargs=2, type=int, default=(24, 12), metavar=("VISION", "TEXT"),
                   help="blocks of the CLIP towers in the OpenAI-format file clip.load reads (reduced L)")
    p.add_argument("--runs", nargs="*", default=list(RUNS), help="which of the runs (default: all three)")
    p.add_argument("--dump-keys", default=None, help="write the state-dict key list (key -> shape) here and stop")
    return p.parse_args()


def resize_shortest_edge(image: np.ndarray, min_size: int, max_size: int) -> np.ndarray:
    """detectron2's test mapper: ResizeShortestEdge(min, max, 'choice'), PIL bilinear on uint8."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = min_size / min(h, w)
    newh, neww = (min_size, scale * w) if h < w else (scale * h, min_size)
    if max(newh, neww) > max_size:
        scale = max_size / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    newh, neww = int(newh + 0.5), int(neww + 0.5)
    return np.asarray(Image.fromarray(image).resize((neww, newh), Image.BILINEAR))


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def stats(t: torch.Tensor) -> dict:
    d = t.detach().double()
    flat = d.flatten()
    step = max(1, flat.numel() // 8)
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "sum": d.sum().item(),
            "abs_sum": d.abs().sum().item(), "sq_sum": (d * d).sum().item(), "first8": flat[:8].tolist(),
            "strided8": flat[::step][:8].tolist()}


def build(args):
    maskformer_standins.install()
    maskformer_standins.install_packages(args.ovseg, ("open_vocab_seg", "open_vocab_seg.utils"))
    sys.path.insert(0, os.path.join(args.ovseg, "third_party", "CLIP"))
    import clip
    import clip.clip
    import clip.model
    import timm

    # clip.load("ViT-L/14") downloads the OpenAI file; here it reads a local all-zeros file in OpenAI
    # format (every tensor is overwritten by the OVSeg state dict afterwards). build_model counts the
    # blocks in the file, so --clip-layers builds shallower towers and changes nothing else.
    vision_layers, text_layers = args.clip_layers
    ref = clip.model.CLIP(vision_layers=vision_layers, transformer_layers=text_layers, mask_prompt_depth=0,
                          **CLIP_L14)
    zeros = {k: torch.zeros_like(v) for k, v in ref.state_dict().items() if not k.endswith("mask_embedding")}
    del ref
    openai_file = os.path.join(args.out, "openai_zeros.pt")
    torch.save(zeros, openai_file)
    del zeros
    clip.clip._download = lambda url, root=None: openai_file

    import open_vocab_seg.modeling  # noqa: F401  (registers Swin, the heads, the pixel decoder)
    import open_vocab_seg.ovseg_model  # noqa: F401  (registers OVSeg)
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model
    from open_vocab_seg.config import add_ovseg_config

    cfg = get_cfg()
    add_ovseg_config(cfg)
    cfg.merge_from_file(os.path.join(args.ovseg, CONFIG))
    overrides = [json.loads(v) if v[:1] in "[0123456789-" else v for v in args.override]
    cfg.merge_from_list(overrides)
    MetadataCatalog.get(DATASET).stuff_classes = CLASS_NAMES
    model = build_model(cfg).eval()
    os.remove(openai_file)
    versions = {"python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
                "numpy": np.__version__, "clip_file": clip.__file__}
    return cfg, model, versions, clip


def load_formula_weights(model, project: str, keys: dict) -> dict:
    """Load the formula state dict as detectron2's checkpointer would (no missing/unexpected keys)."""
    sys.path.insert(0, os.path.join(project, "tests"))
    from formula_weights import ovseg_fill

    state, rules = OrderedDict(), {}
    for key, shape in keys.items():
        array, rule = ovseg_fill(key, shape, seed=0)
        state[key] = torch.from_numpy(array)
        rules[rule] = rules.get(rule, 0) + 1
    # A saved state dict carries the modules' versions (`_metadata`); without them
    # OpenVocabMaskFormerHead._load_from_state_dict takes the dict for a version-1 file and renames
    # its pixel-decoder keys. A real checkpoint has version 2.
    state._metadata = model.state_dict()._metadata
    result = model.load_state_dict(state, strict=False)
    assert not result.missing_keys and not result.unexpected_keys, result
    for key, value in model.state_dict().items():  # every tensor is now exactly the formula value
        assert torch.equal(value, state[key]), key
    return rules


class Capture:
    """Read-only hooks and recording wrappers (each calls the original and keeps copies)."""

    def __init__(self, model):
        self.data = {}
        adapter = model.clip_adapter
        self.handles = [
            model.backbone.register_forward_hook(self.keep_backbone),
            model.sem_seg_head.register_forward_hook(self.keep_head),
            adapter.register_forward_hook(self.keep_adapter),
            adapter.clip_model.visual.register_forward_hook(self.keep("clip_image_features")),
        ]
        self.wrapped = {}
        self.wrap(model, "semantic_inference", self.keep_semantic)
        self.wrap(adapter, "get_text_features", self.keep_text)
        self.wrap(adapter, "_preprocess_image", self.keep_regions)

    def wrap(self, obj, name, record):
        original = getattr(obj, name)

        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            record(args, out)
            return out

        setattr(obj, name, wrapper)
        self.wrapped[name] = obj

    def remove(self):
        for h in self.handles:
            h.remove()
        for name, obj in self.wrapped.items():
            delattr(obj, name)

    def keep(self, name):
        def hook(module, args, out):
            self.data[name] = out.detach().clone()
        return hook

    def keep_backbone(self, module, args, out):
        self.data["images_tensor"] = args[0].detach().clone()
        for k, v in out.items():
            self.data[f"backbone_{k}"] = v.detach().clone()

    def keep_head(self, module, args, out):  # before OVSeg replaces pred_logits by the CLIP similarities
        self.data["class_embed"] = out["pred_logits"].detach().clone()
        self.data["pred_masks"] = out["pred_masks"].detach().clone()

    def keep_adapter(self, module, args, out):
        self.data["clip_cls"] = out[0].detach().clone()
        self.data["valid"] = out[2].detach().clone()

    def keep_semantic(self, args, out):
        self.data["mask_cls"] = args[0].detach().clone()
        self.data["mask_pred_postprocessed"] = args[1].detach().clone()
        self.data["semseg_resized"] = out[0].detach().clone()

    def keep_text(self, args, out):
        self.data["text_features"] = out.detach().clone()

    def keep_regions(self, args, out):
        (regions, _), region_masks, valid = out
        self.data["regions"] = regions.detach().clone()
        self.data["region_masks"] = region_masks.detach().clone()


def forward(model, clip, image_resized: np.ndarray, dtype: torch.dtype, threads: int):
    torch.set_num_threads(threads)
    model.clip_adapter.text_feature_buffer = {}  # text features are cached per class name; recompute them
    model.to(dtype)
    # The vendored CLIP's LayerNorm casts its input to float32 ("to handle fp16"); with float64
    # weights that call fails. For the float64 run only it keeps the input's dtype; in float32 the
    # cast is a no-op, so the float32 runs use the original.
    if dtype == torch.float64:
        clip.model.LayerNorm.forward = torch.nn.LayerNorm.forward
    cap = Capture(model)
    inputs = [{"image": torch.as_tensor(np.ascontiguousarray(image_resized.transpose(2, 0, 1))),
               "height": IMAGE_HW[0], "width": IMAGE_HW[1], "meta": {"dataset_name": DATASET}}]
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model(inputs)[0]["sem_seg"]
    seconds = time.perf_counter() - t0
    cap.remove()
    d = cap.data
    run = {"sem_seg": out.numpy()}
    for name in ("class_embed", "pred_masks", "mask_cls", "clip_cls", "valid", "text_features",
                 "clip_image_features"):
        run[name] = d[name].numpy()
    checks = {name: stats(v) for name, v in d.items() if name not in ("valid",)}
    checks["sem_seg"] = stats(out)
    return run, checks, seconds


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    cfg, model, versions, clip = build(args)
    keys = {k: list(v.shape) for k, v in model.state_dict().items()}
    if args.dump_keys:
        with open(args.dump_keys, "w") as f:
            json.dump(keys, f, indent=0)
            f.write("\n")
        print(f"{len(keys)} keys, {sum(int(np.prod(s)) for s in keys.values())} values -> {args.dump_keys}")
        return
    rules = load_formula_weights(model, args.project, keys)
    sys.path.insert(0, os.path.join(args.project, "tests"))
    from formula_weights import make_image

    image = make_image(*IMAGE_HW, seed=0)
    image_resized = resize_shortest_edge(image, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
    runs, checks, seconds = {}, {}, {}
    for name in args.runs:
        dtype, threads = RUNS[name]
        runs[name], checks[name], seconds[name] = forward(model, clip, image_resized, dtype, threads)
        print(name, f"{seconds[name]:.1f} s", flush=True)
    np.savez(os.path.join(args.out, f"{args.tag}_raw.npz"), image=image, image_resized=image_resized,
             **{f"{run}/{k}": v for run, arrays in runs.items() for k, v in arrays.items()})
    info = {
        "tag": args.tag, "config_file": CONFIG, "overrides": args.override, "clip_layers": list(args.clip_layers),
        "cfg_clip_adapter": dict(cfg.MODEL.CLIP_ADAPTER), "cfg_swin": json.loads(json.dumps(cfg.MODEL.SWIN)),
        "cfg_mask_former": json.loads(json.dumps(cfg.MODEL.MASK_FORMER)),
        "cfg_sem_seg_head": json.loads(json.dumps(cfg.MODEL.SEM_SEG_HEAD)),
        "input_min_size_test": cfg.INPUT.MIN_SIZE_TEST, "input_max_size_test": cfg.INPUT.MAX_SIZE_TEST,
        "class_names": CLASS_NAMES, "dataset_name": DATASET, "image_hw": list(IMAGE_HW),
        "image_sha256": sha256(image), "image_resized_sha256": sha256(image_resized),
        "image_resized_hw": list(image_resized.shape[:2]),
        "num_keys": len(keys), "num_values": int(sum(int(np.prod(s)) for s in keys.values())), "rule_counts": rules,
        "versions": versions, "seconds": seconds, "checksums": checks,
    }
    with open(os.path.join(args.out, f"{args.tag}_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k: info[k] for k in ("image_resized_hw", "num_keys", "num_values", "rule_counts", "seconds")}))


if __name__ == "__main__":
    main()
