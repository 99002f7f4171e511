"""Write the committed fixture (zsseg.npz + zsseg_run.json) from run_zsseg_official.py's raw outputs.

    python make_fixture.py --raw-dir /tmp/zsfx/out --dest tests/data/zsseg
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

SCORE_STRIDE = 2  # final scores kept every 2nd row / column (the argmax map is kept whole)
# intermediates kept per run (float64 run as float64, float32 runs as float32)
PARTS = ("mask_class_logits", "mask_logits", "clip_logits", "valid", "text_features")
RUNS = ("fp64_t1", "fp32_t1", "fp32_t2")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw-dir", required=True)
    p.add_argument("--dest", required=True)
    args = p.parse_args()
    raw = np.load(os.path.join(args.raw_dir, "zsseg_raw.npz"))
    info = json.load(open(os.path.join(args.raw_dir, "zsseg_info.json")))
    out = {"image": raw["image"]}
    for run in RUNS:
        scores = raw[f"{run}/sem_seg"]
        out[f"{run}/scores_strided"] = scores[:, ::SCORE_STRIDE, ::SCORE_STRIDE]
        out[f"{run}/argmax"] = scores.argmax(0).astype(np.uint8)
        for part in PARTS:
            out[f"{run}/{part}"] = raw[f"{run}/{part}"]
    s64 = raw["fp64_t1/sem_seg"]

    def spread(a, b):
        return float(np.abs(raw[a].astype(np.float64) - raw[b].astype(np.float64)).max())

    top2 = np.sort(s64, axis=0)[-2:]
    summary = {
        "official_fp32_vs_fp64_max_diff": {part: spread(f"fp32_t1/{part}", f"fp64_t1/{part}")
                                           for part in ("sem_seg", "mask_class_logits", "mask_logits", "clip_logits")},
        "official_fp32_threads_1_vs_2_max_diff": {part: spread(f"fp32_t1/{part}", f"fp32_t2/{part}")
                                                  for part in ("sem_seg", "mask_class_logits", "mask_logits",
                                                               "clip_logits")},
        "argmax_fp32_vs_fp64_mismatches": int((raw["fp32_t1/sem_seg"].argmax(0) != s64.argmax(0)).sum()),
        "min_top2_margin_fp64": float((top2[1] - top2[0]).min()),
        "valid_proposals": int(raw["fp64_t1/valid"].sum()),
        "scores_abs_max": float(np.abs(s64).max()),
        "score_stride": SCORE_STRIDE,
    }
    np.savez_compressed(os.path.join(args.dest, "zsseg.npz"), **out)
    json.dump({**info, "summary": summary}, open(os.path.join(args.dest, "zsseg_run.json"), "w"), indent=1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
