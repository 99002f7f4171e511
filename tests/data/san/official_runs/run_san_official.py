"""Run the official SAN inference (MendelXu/SAN as blumenstiel/SAN-MESS@483cea6 carries it) on the
formula weights and save its outputs and intermediates, full size, for make_fixture.py.

No official code is in this file: it imports `san.model` from the checkout given on the command
line, with the detectron2 stand-ins of standins.py, open_clip_torch 2.16.0 and timm 0.6.13 (the
versions the official requirements pin / the version current at SAN 883f826) first on the path.
See ../README.md section 2 for every stand-in and monkeypatch.

    PYTHONPATH=/tmp/sanfx/pkgs python run_san_official.py --san /tmp/sanfx/san_mess \
        --project /work/san-fixture --size b --out /tmp/sanfx/out
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

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import standins  # noqa: E402

CONFIGS = {"b": "configs/san_clip_vit_res4_coco.yaml", "l": "configs/san_clip_vit_large_res4_coco.yaml"}
OPEN_CLIP_NAMES = {"b": "ViT-B-16", "l": "ViT-L-14-336"}
DATASET = "san_parity_fixture"
# What MESS registers as stuff_classes (SAN strips each name); the first one keeps a trailing space.
CLASS_NAMES = ["background ", "human divers", "aquatic plants and sea-grass", "robots (AUVs/ROVs/instruments)",
               "fish and vertebrates", "sea-floor and rocks"]
IMAGE_HW = (480, 637)
MIN_SIZE_TEST, MAX_SIZE_TEST = 640, 2560
# name -> (dtype, threads); the float32 runs come first because the float64 one converts the model
RUNS = {"fp32_t2": (torch.float32, 2), "fp32_t1": (torch.float32, 1), "fp64_t2": (torch.float64, 2)}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--san", required=True, help="checkout of blumenstiel/SAN-MESS@483cea6 (or MendelXu/SAN@883f826)")
    p.add_argument("--project", required=True, help="catseg-bench checkout (for tests/formula_weights.py)")
    p.add_argument("--size", choices=["b", "l"], required=True)
    p.add_argument("--out", required=True, help="folder for the raw outputs")
    p.add_argument("--override", nargs="*", default=[], help="extra config KEY VALUE pairs (reduced L)")
    p.add_argument("--tag", default=None, help="output name (default: the size)")
    p.add_argument("--openai-layers", nargs=2, type=int, default=None, metavar=("VISION", "TEXT"),
                   help="build the CLIP towers with this many vision / text blocks (reduced L)")
    p.add_argument("--runs", nargs="*", default=list(RUNS), help="which of the runs (default: all three)")
    p.add_argument("--dump-keys", default=None, help="write the state-dict key list (key -> shape) here and stop")
    return p.parse_args()


def resize_shortest_edge(image: np.ndarray) -> np.ndarray:
    """detectron2's test mapper: ResizeShortestEdge(640, 2560, 'choice'), PIL bilinear on uint8."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = MIN_SIZE_TEST / min(h, w)
    newh, neww = (MIN_SIZE_TEST, scale * w) if h < w else (scale * h, MIN_SIZE_TEST)
    if max(newh, neww) > MAX_SIZE_TEST:
        scale = MAX_SIZE_TEST / max(newh, neww)
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
    standins.install()
    standins.install_san_packages(args.san)
    import open_clip
    import open_clip.openai
    import timm

    # open_clip's 'openai' path downloads the OpenAI file; here it reads a local all-zeros file in
    # OpenAI format instead (every tensor is overwritten by the SAN state dict afterwards).
    # With --openai-layers the file holds fewer blocks and open_clip's builder, which counts the
    # blocks in the file, builds shallower towers (nothing else changes).
    ref = open_clip.create_model(OPEN_CLIP_NAMES[args.size], pretrained=None, force_quick_gelu=True)
    vision_layers, text_layers = args.openai_layers or (10**9, 10**9)

    def kept(key):
        parts = key.split(".")
        if key.startswith("visual.transformer.resblocks."):
            return int(parts[3]) < vision_layers
        if key.startswith("transformer.resblocks."):
            return int(parts[2]) < text_layers
        return True

    zeros = {k: torch.zeros_like(v) for k, v in ref.state_dict().items() if kept(k)}
    del ref
    openai_file = os.path.join(args.out, f"openai_zeros_{args.size}.pt")
    torch.save(zeros, openai_file)
    del zeros
    open_clip.openai.download_pretrained_from_url = lambda url, cache_dir=None: openai_file

    import san.model  # noqa: F401  (registers SAN and the side adapter; runs san/model/__init__.py)
    from detectron2.config import get_cfg
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model
    from san.config import add_san_config

    cfg = get_cfg()
    add_san_config(cfg)
    cfg.merge_from_file(os.path.join(args.san, CONFIGS[args.size]))
    overrides = [json.loads(v) if v[:1] in "[0123456789-" else v for v in args.override]
    cfg.merge_from_list(overrides)
    MetadataCatalog.get(DATASET).stuff_classes = CLASS_NAMES
    model = build_model(cfg).eval()
    os.remove(openai_file)
    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "open_clip": open_clip.version.__version__, "timm": timm.__version__, "numpy": np.__version__,
                "open_clip_file": open_clip.__file__, "timm_file": timm.__file__}
    return cfg, model, versions


def load_formula_weights(model, project: str, keys: dict) -> dict:
    """Load the formula state dict as detectron2's checkpointer would (strict: no missing/unexpected keys)."""
    sys.path.insert(0, os.path.join(project, "tests"))
    from formula_weights import san_fill

    state, rules = {}, {}
    for key, shape in keys.items():
        array, rule = san_fill(key, shape, seed=0)
        state[key] = torch.from_numpy(array)
        rules[rule] = rules.get(rule, 0) + 1
    result = model.load_state_dict(state, strict=False)
    assert not result.missing_keys and not result.unexpected_keys, result
    for key, value in model.state_dict().items():  # every tensor is now exactly the formula value
        assert torch.equal(value, state[key]), key
    return rules


class Capture:
    """Read-only forward hooks and a recording wrapper around SAN.semantic_inference."""

    def __init__(self, model):
        self.data = {}
        self.handles = [
            model.ov_classifier.register_forward_hook(self.keep("text_embeds")),
            model.clip_visual_extractor.register_forward_hook(self.keep("clip_features")),
            model.side_adapter_network.register_forward_hook(self.keep("side_adapter_out")),
            model.clip_rec_head.register_forward_hook(self.keep("mask_embs")),
            model.clip_visual_extractor.register_forward_pre_hook(self.keep_input("clip_input")),
            model.side_adapter_network.register_forward_pre_hook(self.keep_input("side_adapter_input")),
        ]
        original = model.semantic_inference

        def semantic_inference(mask_cls, mask_pred):
            self.data["mask_cls"] = mask_cls.detach().clone()
            self.data["mask_pred_postprocessed"] = mask_pred.detach().clone()
            return original(mask_cls, mask_pred)

        model.semantic_inference = semantic_inference

    def keep(self, name):
        def hook(module, args, out):
            self.data[name] = out
        return hook

    def keep_input(self, name):
        def hook(module, args):
            self.data[name] = args[0].detach().clone()
        return hook


def forward(model, image_resized: np.ndarray, dtype: torch.dtype, threads: int):
    torch.set_num_threads(threads)
    model.ov_classifier.cache = {}  # text embeddings are cached per dataset name; recompute them
    model.to(dtype)
    cap = Capture(model)
    inputs = [{"image": torch.as_tensor(np.ascontiguousarray(image_resized.transpose(2, 0, 1))),
               "height": IMAGE_HW[0], "width": IMAGE_HW[1], "meta": {"dataset_name": DATASET}}]
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model(inputs)[0]["sem_seg"]
    seconds = time.perf_counter() - t0
    for h in cap.handles:
        h.remove()
    del model.semantic_inference
    d = cap.data
    mask_preds, attn_biases = d["side_adapter_out"]
    feats = d["clip_features"]
    run = {
        "sem_seg": out.numpy(),
        "text_embeds": d["text_embeds"].numpy(),
        "clip_input": d["clip_input"].numpy(),
        "side_adapter_input": d["side_adapter_input"].numpy(),
        "mask_preds": mask_preds[-1].numpy(),          # (1, Q, h, w), before any upsampling
        "attn_bias": attn_biases[-1][0].numpy(),        # (1, heads, Q, h, w), the one layer of biases
        "mask_embs": d["mask_embs"].numpy(),            # (1, Q, C), normalised
        "mask_cls": d["mask_cls"].numpy(),              # (Q, K+1) logits incl. the learned background
        "clip_features_last": feats[max(k for k in feats if isinstance(k, int))].numpy(),
    }
    checks = {f"clip_features_{k}": stats(v) for k, v in feats.items() if isinstance(k, int)}
    checks.update({f"clip_cls_token_{k.split('_')[0]}": stats(v) for k, v in feats.items() if not isinstance(k, int)})
    for name in ("sem_seg", "text_embeds", "clip_input", "side_adapter_input", "mask_preds", "attn_bias",
                 "mask_embs", "mask_cls"):
        checks[name] = stats(torch.from_numpy(run[name]))
    checks["mask_pred_postprocessed"] = stats(d["mask_pred_postprocessed"])
    return run, checks, seconds


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(2)
    cfg, model, versions = build(args)
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
    image_resized = resize_shortest_edge(image)
    runs, checks, seconds = {}, {}, {}
    for name in args.runs:
        dtype, threads = RUNS[name]
        runs[name], checks[name], seconds[name] = forward(model, image_resized, dtype, threads)
        print(name, f"{seconds[name]:.1f} s", flush=True)
    tag = args.tag or args.size
    np.savez(os.path.join(args.out, f"{tag}_raw.npz"), image=image, image_resized=image_resized,
             **{f"{run}/{k}": v for run, arrays in runs.items() for k, v in arrays.items()})
    info = {
        "size": args.size, "tag": tag, "config_file": CONFIGS[args.size], "overrides": args.override,
        "cfg_model_san": dict(cfg.MODEL.SAN), "cfg_side_adapter": json.loads(json.dumps(cfg.MODEL.SIDE_ADAPTER)),
        "input_min_size_test": cfg.INPUT.MIN_SIZE_TEST, "input_max_size_test": cfg.INPUT.MAX_SIZE_TEST,
        "class_names": CLASS_NAMES, "openai_layers": args.openai_layers, "dataset_name": DATASET, "image_hw": list(IMAGE_HW),
        "image_sha256": sha256(image), "image_resized_sha256": sha256(image_resized),
        "image_resized_hw": list(image_resized.shape[:2]), "templates_set": cfg.MODEL.SAN.CLIP_TEMPLATE_SET,
        "num_keys": len(keys), "num_values": int(sum(int(np.prod(s)) for s in keys.values())), "rule_counts": rules,
        "versions": versions, "seconds": seconds, "checksums": checks,
    }
    with open(os.path.join(args.out, f"{tag}_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps({k: info[k] for k in ("image_resized_hw", "num_keys", "num_values", "rule_counts", "seconds")}))


if __name__ == "__main__":
    main()
