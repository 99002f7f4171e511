"""Run the official ZegFormer inference (blumenstiel/ZegFormer-MESS@52ac49c, the MESS fork of
dingjiansw101/ZegFormer@8cb9e8f) on the formula weights and write the parity fixture.

No official code is in this file: it imports `mask_former` from the checkout given on the command
line, with the detectron2 stand-ins of the ZSSeg fixture (../../zsseg/official_runs/standins.py)
and detectron2's own ResNet files from a detectron2 checkout. See ../README.md for every stand-in
and monkeypatch, the runs and how to rerun.

    python run_zegformer_official.py --zegformer /tmp/zegfx/zeg_mess --detectron2 /tmp/zegfx/detectron2 \
        --project /work/zegformer --out /tmp/zegfx/out ...
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import sys
import time
import types
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "zsseg", "official_runs"))
import standins  # noqa: E402  (the ZSSeg fixture's: SAN's plus Conv2d/norms/registries)

CONFIG = "configs/coco-stuff/zegformer_R101_bs32_60k_vit16_coco-stuff_gzss_eval_847_classes.yaml"
TRAIN_DATASET, TEST_DATASET = "coco_2017_train_stuff_seen_sem_seg", "zegformer_parity_fixture"
# The training class names only feed the training text features, which inference never reads.
TRAIN_CLASS_NAMES = ["person"]
NUM_TRAIN_CLASSES = 156  # configs/coco-stuff/zegformer_R50_bs32_60k_vit16_coco-stuff.yaml, the COCO-Stuff seen classes
# ", " splits a name into variants (each gets every template); parentheses and a slash exercise the
# tokenizer. The names were picked among ~30 so that, on the reduced fixture's formula CLIP, the
# argmax map has three labels (most names lose to one everywhere).
CLASS_NAMES = ["boat", "river", "human divers", "tumor, vessel", "background", "robots (AUVs/ROVs/instruments)"]
IMAGE_HW = (480, 637)
# name -> (run dtype, threads, CLIP dtype); the "fp16clip" run is the official code as it is: its CLIP
# loader keeps OpenAI's weights in float16 and the crop logits are a float16 product.
RUNS = {"fp32_t1": ("float32", 1), "fp32_t2": ("float32", 2), "fp64_t1": ("float64", 1),
        "fp16clip_t1": ("float16clip", 1)}
CLIP_PREFIX = "sem_seg_head.predictor.clip_model."
QUERY_KEY = "sem_seg_head.predictor.query_embed.weight"
# OpenAI ViT-B/16 (the official CLIP_PRETRAINED "ViT-B/16"): embed 512, image 224, 12 vision blocks of
# width 768, patch 16, context 77, vocab 49408, text width 512, 8 heads, 12 blocks.
VIT_B16 = (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zegformer", required=True, help="checkout of blumenstiel/ZegFormer-MESS@52ac49c")
    p.add_argument("--detectron2", required=True, help="detectron2 checkout (its ResNet files run as they are)")
    p.add_argument("--project", required=True, help="catseg-bench checkout (for tests/formula_weights.py)")
    p.add_argument("--out", required=True, help="folder for the raw outputs")
    p.add_argument("--queries", type=int, default=100, help="MODEL.MASK_FORMER.NUM_OBJECT_QUERIES")
    p.add_argument("--openai-layers", nargs=2, type=int, default=None, metavar=("VISION", "TEXT"),
                   help="give the OpenAI file this many vision / text blocks (reduced CLIP)")
    p.add_argument("--min-size-test", type=int, default=640, help="INPUT.MIN_SIZE_TEST (the test mapper)")
    p.add_argument("--max-size-test", type=int, default=2560, help="INPUT.MAX_SIZE_TEST")
    p.add_argument("--classes", nargs="*", default=CLASS_NAMES)
    p.add_argument("--runs", nargs="*", default=list(RUNS))
    return p.parse_args()


def resize_shortest_edge(image: np.ndarray, short: int = 640, cap: int = 2560) -> np.ndarray:
    """detectron2's test mapper: ResizeShortestEdge(640, 2560, 'choice'), PIL bilinear on uint8."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = short / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > cap:
        scale = cap / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    newh, neww = int(newh + 0.5), int(neww + 0.5)
    return np.asarray(Image.fromarray(image).resize((neww, newh), Image.BILINEAR))


def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def casts_to(dtype):
    """The official float16/float32 casts (`.half()`, `.float()`, `.type(torch.float32)`, CLIP's
    LayerNorm) give `dtype` instead, so a float32 / float64 run keeps one dtype throughout."""
    if dtype is None:
        yield
        return
    orig_type = torch.Tensor.type

    def type_(self, *args, **kwargs):
        if args and args[0] in (torch.float16, torch.float32):
            return self.to(dtype)
        return orig_type(self, *args, **kwargs)

    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(torch.Tensor, "half", lambda self, *a, **k: self.to(dtype)))
        stack.enter_context(patched(torch.Tensor, "float", lambda self, *a, **k: self.to(dtype)))
        stack.enter_context(patched(torch.Tensor, "type", type_))
        yield


def install(zegformer: str, detectron2: str) -> None:
    """The stand-ins, detectron2's ResNet, and `mask_former` without its package __init__s."""
    if "mask_former" in sys.modules:
        return
    standins.install()
    standins.load_detectron2_backbone(detectron2)
    for name in ("mask_former", "mask_former.modeling"):  # skip their __init__ (datasets, swin, TTA)
        module = types.ModuleType(name)
        module.__path__ = [os.path.join(zegformer, *name.split("."))]
        sys.modules[name] = module
    sys.path.insert(0, zegformer)


def openai_keys(zegformer: str, layers=None) -> dict:
    """The keys of the OpenAI ViT-B/16 file: the official CLIP class's state dict plus its three ints.
    With `layers` (vision, text) the file holds only the first blocks of each tower; the official
    `build_model` counts the blocks in the file and builds shallower towers (nothing else changes)."""
    from mask_former.third_party.model import CLIP

    vision_layers, text_layers = layers or (10**9, 10**9)

    def kept(key):
        parts = key.split(".")
        if key.startswith("visual.transformer.resblocks."):
            return int(parts[3]) < vision_layers
        if key.startswith("transformer.resblocks."):
            return int(parts[2]) < text_layers
        return True

    keys = {k: list(v.shape) for k, v in CLIP(*VIT_B16).state_dict().items() if kept(k)}
    keys.update({"input_resolution": [], "context_length": [], "vocab_size": []})
    return keys


def openai_state(project: str, keys: dict) -> dict:
    """The OpenAI ViT-B/16 file as formula weights, every tensor float16 (the OpenAI file is float16)."""
    sys.path.insert(0, os.path.join(project, "tests"))
    from formula_weights import zegformer_clip_state_dict

    return {k: torch.from_numpy(v) for k, v in zegformer_clip_state_dict(keys).items()}


class FakeJit:
    """What `torch.jit.load(<OpenAI file>)` gives the official `clip.load(jit=False)`: a state dict and
    `input_resolution`."""

    def __init__(self, state):
        self._state = state
        self.input_resolution = state["input_resolution"]

    def eval(self):
        return self

    def state_dict(self):
        return dict(self._state)


def build(args, mode: str, clip_state: dict):
    """Build the official model with the CLIP weights of `clip_state` in the run's dtype."""
    if "mask_former.mask_former_model" not in sys.modules:
        import mask_former.modeling.heads.pixel_decoder  # noqa: F401  (registers BasePixelDecoder)
        import mask_former.modeling.heads.zeg_former_head  # noqa: F401  (registers ZegFormerHead)
        import mask_former.mask_former_model  # noqa: F401  (registers MaskFormer)
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model
    from detectron2.projects.deeplab import add_deeplab_config
    from mask_former.config import add_mask_former_config
    from mask_former.third_party import clip, model as clip_model_py

    cfg = get_cfg()  # as train_net.py's setup: detectron2 defaults, DeepLab's, MaskFormer's, the file
    add_deeplab_config(cfg)
    add_mask_former_config(cfg)
    cfg.merge_from_file(os.path.join(args.zegformer, CONFIG))
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (TRAIN_DATASET,), (TEST_DATASET,)  # as mess/eval.sh sets TEST
    cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = args.queries
    MetadataCatalog.get(TRAIN_DATASET).stuff_classes = TRAIN_CLASS_NAMES
    MetadataCatalog.get(TEST_DATASET).stuff_classes = args.classes
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = args.min_size_test, args.max_size_test
    run_dtype = {"float32": torch.float32, "float64": torch.float64, "float16clip": None}[mode]
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(clip, "_download", lambda url: "openai-ViT-B-16-formula"))
        stack.enter_context(patched(torch.jit, "load", lambda path, map_location=None: FakeJit(clip_state)))
        stack.enter_context(patched(torch.Tensor, "cuda", lambda self, *a, **k: self))
        if run_dtype is not None:
            stack.enter_context(patched(clip_model_py, "convert_weights", lambda m: m.to(run_dtype)))
        stack.enter_context(casts_to(run_dtype))
        model = build_model(cfg).eval()
    return cfg, model, run_dtype


def checkpoint_keys(model) -> dict:
    """The ZegFormer checkpoint's keys: the model's minus the CLIP (CLIP_CLASSIFICATION is off in the
    training config, so the CLIP is no submodule there and comes from the OpenAI file), with the
    training criterion's class weights at the training config's NUM_CLASSES 156 (+1 no-object)."""
    keys = {k: list(v.shape) for k, v in model.state_dict().items() if not k.startswith(CLIP_PREFIX)}
    keys["criterion.empty_weight"] = [NUM_TRAIN_CLASSES + 1]
    return keys


def load_checkpoint(model, keys: dict, project: str) -> dict:
    """Load the formula checkpoint as detectron2's checkpointer would: CLIP keys missing (kept from the
    OpenAI file), the criterion's weights skipped for their shape; everything else exactly the formula."""
    sys.path.insert(0, os.path.join(project, "tests"))
    from formula_weights import zegformer_fill

    state, rules = {}, {}
    for key, shape in keys.items():
        array, rule = zegformer_fill(key, shape, seed=0)
        state[key] = torch.from_numpy(array)
        rules[rule] = rules.get(rule, 0) + 1
    own = model.state_dict()
    loadable = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    assert set(state) - set(loadable) == {"criterion.empty_weight"}, set(state) - set(loadable)
    result = model.load_state_dict(loadable, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys
    assert all(k.startswith(CLIP_PREFIX) or k == "criterion.empty_weight" for k in result.missing_keys)
    for key, value in model.state_dict().items():
        if key in loadable:
            assert torch.equal(value, loadable[key].to(value.dtype)), key
    return rules


class Capture:
    """Read-only hooks: the head's outputs, the CLIP crops, and what semantic_inference receives."""

    def __init__(self, model):
        self.data = {}
        predictor = model.sem_seg_head.predictor
        self.handles = [
            model.sem_seg_head.register_forward_hook(self.keep("head")),
            model.backbone.register_forward_hook(self.keep("features")),
            predictor.clip_model.visual.register_forward_pre_hook(self.keep_input("crops")),
            predictor.clip_model.visual.register_forward_hook(self.keep("crop_features")),
        ]
        original = model.semantic_inference

        def semantic_inference(mask_cls, mask_pred):
            self.data["mask_cls"] = mask_cls.detach().clone()
            self.data["mask_pred"] = mask_pred.detach().clone()
            return original(mask_cls, mask_pred)

        model.semantic_inference = semantic_inference
        self.model = model

    def keep(self, name):
        def hook(module, args, out):
            self.data[name] = out
        return hook

    def keep_input(self, name):
        def hook(module, args):
            self.data[name] = args[0].detach().clone()
        return hook

    def close(self):
        for h in self.handles:
            h.remove()
        del self.model.semantic_inference


def forward(model, image_resized: np.ndarray, run_dtype, threads: int):
    torch.set_num_threads(threads)
    if run_dtype is not None:
        model.to(run_dtype)
    cap = Capture(model)
    import torchvision.ops

    roi_align = torchvision.ops.roi_align
    boxes = []

    def recording_roi_align(input, rois, *args, **kwargs):  # read-only: keeps the boxes, calls the original
        boxes.append(torch.cat([b.detach().clone() for b in rois]))
        return roi_align(input, rois, *args, **kwargs)

    torchvision.ops.roi_align = recording_roi_align
    inputs = [{"image": torch.as_tensor(np.ascontiguousarray(image_resized.transpose(2, 0, 1))),
               "height": IMAGE_HW[0], "width": IMAGE_HW[1]}]
    t0 = time.perf_counter()
    with torch.no_grad(), casts_to(run_dtype):
        out = model(inputs)[0]["sem_seg"]
    seconds = time.perf_counter() - t0
    torchvision.ops.roi_align = roi_align
    cap.close()
    d = cap.data
    predictor = model.sem_seg_head.predictor
    mask_cls = d["mask_cls"]
    run = {
        "sem_seg": out.numpy(),
        "query_logits": d["head"]["pred_logits"][0].numpy(),     # (Q, K+1): text classes, then background
        "mask_logits": d["head"]["pred_masks"][0].numpy(),       # (Q, h/4, w/4) of the padded image
        "final_logits": mask_cls.numpy(),                        # (Q, K+1): CLIP crop logits, query background
        "text_features": predictor.text_features_test.numpy(),   # (K, 512), query templates
        "text_features_clip": predictor.text_features_test_clip.numpy(),  # (K, 512), CLIP templates
        "crops": d["crops"].float().numpy(),                     # (Q, 3, 224, 224)
        "crop_features": d["crop_features"].float().numpy(),     # (Q, 512), before normalising
        "res5": d["features"]["res5"].numpy(),
        "boxes": boxes[0].numpy(),                               # (Q, 4) x0, y0, x1, y1 on the padded image
    }
    assert all(torch.equal(b, boxes[0]) for b in boxes)  # the masked and the plain crops share the boxes
    return run, seconds


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore")
    install(args.zegformer, args.detectron2)
    clip_keys = openai_keys(args.zegformer, args.openai_layers)
    full_clip_keys = openai_keys(args.zegformer)
    clip_state = openai_state(args.project, clip_keys)
    sys.path.insert(0, os.path.join(args.project, "tests"))
    from formula_weights import make_image

    image = make_image(*IMAGE_HW, seed=0)
    image_resized = resize_shortest_edge(image, args.min_size_test, args.max_size_test)
    runs, seconds, keys, rules, versions = {}, {}, None, None, None
    for name in args.runs:
        mode, threads = RUNS[name]
        torch.set_num_threads(threads)
        cfg, model, run_dtype = build(args, mode, clip_state)
        if keys is None:
            keys = checkpoint_keys(model)
        rules = load_checkpoint(model, keys, args.project)
        runs[name], seconds[name] = forward(model, image_resized, run_dtype, threads)
        print(name, f"{seconds[name]:.1f} s", flush=True)
        del model
    import torchvision

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": np.__version__}
    np.savez(os.path.join(args.out, "raw.npz"), image=image, image_resized=image_resized,
             **{f"{run}/{k}": v for run, arrays in runs.items() for k, v in arrays.items()})
    info = {
        "config_file": CONFIG, "queries": args.queries, "openai_layers": args.openai_layers,
        "min_size_test": args.min_size_test, "max_size_test": args.max_size_test, "class_names": args.classes,
        "train_class_names": TRAIN_CLASS_NAMES, "image_hw": list(IMAGE_HW),
        "image_sha256": sha256(image), "image_resized_sha256": sha256(image_resized),
        "image_resized_hw": list(image_resized.shape[:2]),
        "cfg_mask_former": json.loads(json.dumps(cfg.MODEL.MASK_FORMER)),
        "cfg_sem_seg_head": json.loads(json.dumps(cfg.MODEL.SEM_SEG_HEAD)),
        "cfg_resnets": json.loads(json.dumps(cfg.MODEL.RESNETS)),
        "cfg_other": {k: cfg.MODEL[k] for k in ("PIXEL_MEAN", "PIXEL_STD", "CLIP_PIXEL_MEAN", "CLIP_PIXEL_STD",
                                                "CLIP_CLS_STYLE", "PROMPT_ENSEMBLE_TYPE")},
        "num_keys": len(keys), "num_values": int(sum(int(np.prod(s)) for s in keys.values())),
        "rule_counts": rules, "versions": versions, "seconds": seconds,
    }
    with open(os.path.join(args.out, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    full_keys = dict(keys)
    full_keys[QUERY_KEY] = [100, keys[QUERY_KEY][1]]
    for name, value in (("keys", full_keys), ("keys_clip", full_clip_keys)):
        with open(os.path.join(args.out, f"{name}.json"), "w") as f:
            json.dump(value, f, indent=0)
            f.write("\n")
    print(json.dumps({k: info[k] for k in ("image_resized_hw", "num_keys", "num_values", "rule_counts", "seconds")}))


if __name__ == "__main__":
    main()
