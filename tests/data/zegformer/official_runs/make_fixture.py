"""Write the committed ZegFormer fixture (../zegformer.npz, ../zegformer_run.json, ../keys*.json)
from the raw outputs of run_zegformer_official.py: small strided slices, the full argmax maps, and
the spreads between the official runs.

    python make_fixture.py --raw-dir /tmp/zegfx/out --dest tests/data/zegformer
"""
from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np

RUNS = ("fp64_t1", "fp32_t1", "fp32_t2", "fp16clip_t1")
SCORE_STRIDE = 8  # final scores (T, 480, 637) -> (T, 60, 80)
MASK_STRIDE = 2  # mask logits at 1/4 of the padded image (Q, 80, 112) -> (Q, 40, 56)
CHANNEL_STRIDE = 16  # 512-d embeddings -> 32 channels


def slices(raw, run: str) -> dict:
    g = lambda k: raw[f"{run}/{k}"]  # noqa: E731
    sem_seg = g("sem_seg")
    return {
        "scores": sem_seg[:, ::SCORE_STRIDE, ::SCORE_STRIDE],
        "argmax": sem_seg.argmax(0).astype(np.uint8),
        "segment_logits": g("query_logits"),
        "class_logits": g("final_logits"),
        "mask_logits": g("mask_logits")[:, ::MASK_STRIDE, ::MASK_STRIDE],
        "query_text": g("text_features")[:, ::CHANNEL_STRIDE],
        "clip_text": g("text_features_clip")[:, ::CHANNEL_STRIDE],
        "crop_features": g("crop_features")[:, ::CHANNEL_STRIDE],
        "boxes": g("boxes").astype(np.int64),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raw-dir", required=True)
    p.add_argument("--dest", required=True)
    args = p.parse_args()
    raw = np.load(os.path.join(args.raw_dir, "raw.npz"))
    with open(os.path.join(args.raw_dir, "info.json")) as f:
        info = json.load(f)
    arrays = {"class_names": np.array(info["class_names"])}
    per_run = {run: slices(raw, run) for run in RUNS}
    for run, d in per_run.items():
        for k, v in d.items():
            arrays[f"{run}/{k}"] = v
    np.savez_compressed(os.path.join(args.dest, "zegformer.npz"), **arrays)
    # spreads: max |difference| of each full output between runs (the full arrays, not the slices)
    spreads = {}
    for a, b in (("fp32_t1", "fp64_t1"), ("fp32_t2", "fp64_t1"), ("fp32_t1", "fp32_t2"), ("fp16clip_t1", "fp64_t1")):
        spreads[f"{a} vs {b}"] = {
            k: float(np.abs(raw[f"{a}/{k}"].astype(np.float64) - raw[f"{b}/{k}"].astype(np.float64)).max())
            for k in ("sem_seg", "query_logits", "final_logits", "mask_logits", "text_features", "text_features_clip",
                      "crop_features", "res5")}
        spreads[f"{a} vs {b}"]["argmax_differing_pixels"] = int(
            (raw[f"{a}/sem_seg"].argmax(0) != raw[f"{b}/sem_seg"].argmax(0)).sum())
        spreads[f"{a} vs {b}"]["boxes_differing"] = int((raw[f"{a}/boxes"] != raw[f"{b}/boxes"]).any(1).sum())
    info["spreads"] = spreads
    info["label_counts"] = {run: np.bincount(per_run[run]["argmax"].ravel(), minlength=len(info["class_names"])).tolist()
                            for run in RUNS}
    info["strides"] = {"scores": SCORE_STRIDE, "mask_logits": MASK_STRIDE, "channels": CHANNEL_STRIDE}
    with open(os.path.join(args.dest, "zegformer_run.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    for name in ("keys.json", "keys_clip.json"):
        shutil.copy(os.path.join(args.raw_dir, name), os.path.join(args.dest, name))
    print(json.dumps(spreads, indent=1))


if __name__ == "__main__":
    main()
