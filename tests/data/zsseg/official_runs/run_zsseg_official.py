"""Run the official ZSSeg inference (blumenstiel/zsseg.baseline-MESS@24b44f3, = MendelXu/zsseg.baseline
@d77c3af for the model code) on the formula weights; save outputs and intermediates for make_fixture.py.

No official code is in this file: it imports the `mask_former` modules and the bundled OpenAI CLIP
from the checkout given on the command line, and detectron2's ResNet files from a detectron2
checkout, with the stand-ins of standins.py. See ../README.md for every stand-in and monkeypatch.

    python run_zsseg_official.py --zsseg /tmp/zsfx/zsseg --detectron2 /tmp/zsfx/detectron2 \
        --project /work/zsseg --out /tmp/zsfx/out
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import standins  # noqa: E402

CONFIG = "configs/ade20k-150/cross_dataset_test_only.yaml"
# what mess/eval.sh adds on the command line, plus the fixture's one reduction (README section 1)
OVERRIDES = ["MODEL.CLIP_ADAPTER.MASK_THR", 0.5, "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", 10]
DATASET = "zsseg_parity_fixture"
CLASS_NAMES = ["sky ", "tree", "road", "person", "grass"]  # ZSSeg strips each name
ORIGINAL_HW = (72, 90)  # the size the final scores are resized to ("height", "width")
IMAGE_HW = (96, 120)  # the model's input: as if ResizeShortestEdge had scaled 72 -> 96
RUNS = {"fp32_t1": (torch.float32, 1), "fp32_t2": (torch.float32, 2), "fp64_t1": (torch.float64, 1)}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zsseg", required=True, help="checkout of blumenstiel/zsseg.baseline-MESS@24b44f3")
    p.add_argument("--detectron2", required=True, help="checkout of facebookresearch/detectron2 (ResNet files)")
    p.add_argument("--project", required=True, help="catseg-bench checkout (for tests/formula_weights.py)")
    p.add_argument("--out", required=True)
    p.add_argument("--runs", nargs="*", default=list(RUNS))
    p.add_argument("--dump-keys", default=None, help="write the full (100-query) key list here and stop")
    return p.parse_args()


def build(args, overrides):
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model
    from detectron2.projects.deeplab import add_deeplab_config
    from mask_former.config import add_mask_former_config

    cfg = get_cfg()
    add_deeplab_config(cfg)
    add_mask_former_config(cfg)
    cfg.merge_from_file(os.path.join(args.zsseg, CONFIG))
    cfg.merge_from_list(overrides)
    cfg.MODEL.WEIGHTS = ""
    return cfg, build_model(cfg).eval()


def main():
    args = parse_args()
    standins.install()
    standins.load_detectron2_backbone(args.detectron2)
    standins.install_zsseg_packages(args.zsseg)
    import clip
    import clip.model

    def load_architecture(name, device="cpu"):
        """clip.load without the download: the ViT-B/16 architecture (weights come from the checkpoint)."""
        assert name == "ViT-B/16", name
        model = clip.model.CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12)
        return model.float().eval(), None

    clip.load = load_architecture
    import clip.model as clip_model_module

    import mask_former.zero_shot_mask_former_model  # noqa: F401  registers ZeroShotMaskFormer
    import mask_former.modeling.heads.zero_shot_mask_former_head  # noqa: F401
    import mask_former.modeling.heads.pixel_decoder  # noqa: F401

    sys.path.insert(0, os.path.join(args.project, "tests"))
    from formula_weights import zsseg_state_dict

    if args.dump_keys:
        _, model = build(args, OVERRIDES[:2])
        keys = {k: list(v.shape) for k, v in model.state_dict().items()}
        json.dump(keys, open(args.dump_keys, "w"), indent=0)
        print(len(keys), "keys")
        return

    from detectron2.data import MetadataCatalog

    MetadataCatalog.get(DATASET).stuff_classes = CLASS_NAMES
    sys.path.insert(0, args.project)
    from tests.formula_weights import make_image

    image = make_image(*IMAGE_HW, seed=0)
    os.makedirs(args.out, exist_ok=True)
    results, info = {}, {"runs": {}}
    for run, (dtype, threads) in RUNS.items():
        if run not in args.runs:
            continue
        torch.set_num_threads(threads)
        if dtype == torch.float64:
            # OpenAI CLIP's LayerNorm casts to float32 (for fp16); in the float64 run it keeps float64
            clip_model_module.LayerNorm.forward = lambda self, x: torch.nn.LayerNorm.forward(self, x)
        cfg, model = build(args, OVERRIDES)
        keys = {k: list(v.shape) for k, v in model.state_dict().items()}
        # the model's own state dict keeps its `_metadata` (module versions), as a saved checkpoint
        # does; without it ZeroShotMaskFormerHead would rename the keys as for a version-1 file
        state = model.state_dict()
        state.update({k: torch.from_numpy(v) for k, v in zsseg_state_dict(keys).items()})
        model.load_state_dict(state, strict=True)
        model = model.to(dtype)
        captured = {}
        adapter = model.region_clip_adapter
        original_adapter_forward = adapter.forward

        def adapter_forward(image, text, mask, normalize=True):
            captured["mask_probs"] = mask.detach().clone()
            logits, valid = original_adapter_forward(image, text, mask, normalize=normalize)
            captured["clip_logits"] = logits.detach().clone()
            captured["valid"] = valid.detach().clone()
            return logits, valid

        adapter.forward = adapter_forward
        original_semantic = model.semantic_inference

        def semantic_inference(mask_cls, mask_pred, image, class_names, dataset_name):
            captured["mask_class_logits"] = mask_cls.detach().clone()
            captured["mask_logits_image"] = mask_pred.detach().clone()
            out = original_semantic(mask_cls, mask_pred, image, class_names, dataset_name)
            captured["scores_image"] = out.detach().clone()
            return out

        model.semantic_inference = semantic_inference
        head_out = {}
        model.sem_seg_head.register_forward_hook(lambda m, i, o: head_out.update(
            embeds=o["pred_logits"].detach().clone(), masks=o["pred_masks"].detach().clone()))
        text_out = {}
        batched = [{"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                    "height": ORIGINAL_HW[0], "width": ORIGINAL_HW[1], "meta": {"dataset_name": DATASET}}]
        start = time.perf_counter()
        with torch.no_grad():
            out = model(batched)
            text_out["text"] = model.clip_adapter.get_text_features([c.strip() for c in CLASS_NAMES]).detach().clone()
        seconds = time.perf_counter() - start
        results[run] = {
            "sem_seg": out[0]["sem_seg"].numpy(),
            "query_embeds": head_out["embeds"][0].numpy(),
            "mask_logits": head_out["masks"][0].numpy(),
            "text_features": text_out["text"].numpy(),
            **{k: v.numpy() for k, v in captured.items()},
        }
        info["runs"][run] = {"dtype": str(dtype), "threads": threads, "seconds": round(seconds, 2)}
        print(run, f"{seconds:.1f} s", {k: v.shape for k, v in results[run].items()}, flush=True)
    flat = {f"{run}/{k}": v for run, r in results.items() for k, v in r.items()}
    flat["image"] = image
    np.savez_compressed(os.path.join(args.out, "zsseg_raw.npz"), **flat)
    info.update(config=CONFIG, overrides=OVERRIDES, class_names=CLASS_NAMES, image_hw=IMAGE_HW,
                original_hw=ORIGINAL_HW, versions={"python": platform.python_version(), "torch": torch.__version__,
                                                   "numpy": np.__version__})
    json.dump(info, open(os.path.join(args.out, "zsseg_info.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
