"""Write the committed fixture (ovseg_TAG.npz + ovseg_TAG_run.json) from run_ovseg_official.py's raw outputs.

    python make_fixture.py --raw-dir /tmp/ovfx/out --tag l_reduced --dest tests/data/ovseg
Strides and dtypes are listed in ../README.md section 5.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

MASK_STRIDE = 4         # MaskFormer mask logits at 1/4 of the padded input (160 x 216 here)
SCORE_STRIDE = 8        # final scores and margin at the original image size (float64 run)
SCORE_STRIDE_FP32 = 16  # the float32 run's final scores (kept for reference; compare against float64)
EMBED_STRIDE = 16       # channels kept of the 768-d MaskFormer class embeddings


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw-dir", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--dest", required=True)
    args = p.parse_args()
    raw = np.load(os.path.join(args.raw_dir, f"{args.tag}_raw.npz"))
    info = json.load(open(os.path.join(args.raw_dir, f"{args.tag}_info.json")))

    def get(run, name):
        return raw[f"{run}/{name}"]

    def spread(name):
        """Max abs difference of either float32 run (1 or 2 threads) from the float64 run."""
        return max(float(np.abs(get(run, name).astype(np.float64) - get("fp64_t2", name)).max())
                   for run in ("fp32_t2", "fp32_t1"))

    s64, s32, s32t1 = (get(r, "sem_seg") for r in ("fp64_t2", "fp32_t2", "fp32_t1"))
    top2 = np.sort(s64, axis=0)[-2:]
    margin = top2[1] - top2[0]
    spread_precision = spread("sem_seg")
    spread_threads = float(np.abs(s32.astype(np.float64) - s32t1).max())
    argmax64, argmax32, argmax32t1 = s64.argmax(0), s32.argmax(0), s32t1.argmax(0)
    padded = info["checksums"]["fp64_t2"]["images_tensor"]["shape"][-2:]
    mask_grid = list(get("fp64_t2", "pred_masks").shape[-2:])
    arrays = {
        "class_names": np.array(info["class_names"]),
        "text_features_fp64": get("fp64_t2", "text_features"),
        "text_features_fp32": get("fp32_t2", "text_features"),
        "class_embed_fp64": get("fp64_t2", "class_embed")[0, :, ::EMBED_STRIDE],
        "mask_cls_fp64": get("fp64_t2", "mask_cls"),
        "mask_cls_fp32": get("fp32_t2", "mask_cls"),
        "mask_logits_fp64": get("fp64_t2", "pred_masks")[0, :, ::MASK_STRIDE, ::MASK_STRIDE],
        "mask_logits_fp32": get("fp32_t2", "pred_masks")[0, :, ::MASK_STRIDE, ::MASK_STRIDE],
        "clip_cls_fp64": get("fp64_t2", "clip_cls"),
        "clip_cls_fp32": get("fp32_t2", "clip_cls"),
        "valid_fp64": get("fp64_t2", "valid"),
        "scores_fp64": s64[:, ::SCORE_STRIDE, ::SCORE_STRIDE],
        "scores_fp32": s32[:, ::SCORE_STRIDE_FP32, ::SCORE_STRIDE_FP32],
        "margin_fp64": margin[::SCORE_STRIDE, ::SCORE_STRIDE],
        "argmax_fp64": argmax64.astype(np.uint8),
        "argmax_fp32": argmax32.astype(np.uint8),
        "image_hw": np.array(info["image_hw"]),
        "resized_hw": np.array(info["image_resized_hw"]),
        "padded_hw": np.array(padded),
        "mask_grid": np.array(mask_grid),
        "spread_fp32_fp64": np.float64(spread_precision),
        "spread_threads": np.float64(spread_threads),
    }
    npz_path = os.path.join(args.dest, f"ovseg_{args.tag}.npz")
    np.savez_compressed(npz_path, **arrays)
    run = {k: info.get(k) for k in ("tag", "config_file", "overrides", "clip_layers", "cfg_clip_adapter", "cfg_swin",
                                "cfg_mask_former", "cfg_sem_seg_head", "input_min_size_test",
                                "input_max_size_test", "class_names", "image_hw", "image_sha256",
                                "image_resized_sha256", "num_keys", "num_values", "rule_counts", "versions",
                                "seconds")}
    run["sizes"] = {"resized_hw": info["image_resized_hw"], "padded_hw": padded, "mask_grid": mask_grid}
    run["spreads"] = {
        "scores_fp32_vs_fp64_max_abs": spread_precision,  # either float32 run, as every spread here
        "scores_1_vs_2_threads_fp32_max_abs": spread_threads,
        **{f"{name}_fp32_vs_fp64_max_abs": spread(name)
           for name in ("mask_cls", "pred_masks", "clip_cls", "class_embed", "text_features", "clip_image_features")},
        "argmax_pixels_fp32_ne_fp64": int((argmax32 != argmax64).sum()),
        "argmax_pixels_1_ne_2_threads": int((argmax32 != argmax32t1).sum()),
        "pixels_with_margin_below_spread": int((margin <= spread_precision).sum()),
        "pixels": int(margin.size),
    }
    run["outputs"] = {
        "scores_range": [float(s64.min()), float(s64.max())],
        "argmax_pixel_counts": np.bincount(argmax64.ravel(), minlength=len(info["class_names"])).tolist(),
        "margin_quantiles_0_1_10_50": np.quantile(margin, [0.0, 0.01, 0.1, 0.5]).tolist(),
        "valid_proposals": int(get("fp64_t2", "valid").sum()),
    }
    run["checksums_fp64"] = info["checksums"]["fp64_t2"]
    run["checksums_fp32"] = info["checksums"]["fp32_t2"]
    with open(os.path.join(args.dest, f"ovseg_{args.tag}_run.json"), "w") as f:
        json.dump(run, f, indent=1)
        f.write("\n")
    print(npz_path, os.path.getsize(npz_path), json.dumps(run["spreads"]), json.dumps(run["outputs"]))


if __name__ == "__main__":
    main()
