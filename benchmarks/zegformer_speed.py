"""CPU forward time of our ZegFormer against the official code, on the same formula weights and image.

    python benchmarks/zegformer_speed.py --zegformer /tmp/zegfx/zeg_mess --detectron2 /tmp/zegfx/detectron2 \
        [--queries 100] [--openai-layers 12 12] [--short-side 640] [--rounds 3] [--threads 1] [--clip-fp16]

`--zegformer` is a checkout of blumenstiel/ZegFormer-MESS@52ac49c, `--detectron2` one holding
detectron2's ResNet files (tests/data/zegformer/README.md section 6 says how to get both). Both
models share one process, so the arms alternate forward by forward (A/B, `--rounds` times) and the
load of other processes falls on both alike; the load average at each timed forward is recorded.
The official model is built as the parity fixture builds it (run_zegformer_official.py: its
float32 mode, CLIP in float32 like ours; `--clip-fp16` times it as written, with its float16 CLIP),
both load the formula weights of tests/formula_weights.py, and both segment the formula image
resized to `--short-side` (640 is the MESS protocol) into the fixture's 6 classes, from the resized
uint8 image to the scores at the original size. The official code embeds the class names when it
is built (not timed); ours embeds them once in the untimed warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from ab_timing import alternate, rounded_summary

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_RUNS = ROOT / "tests" / "data" / "zegformer" / "official_runs"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zegformer", required=True, help="checkout of blumenstiel/ZegFormer-MESS@52ac49c")
    p.add_argument("--detectron2", required=True, help="checkout of facebookresearch/detectron2 (ResNet files)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--openai-layers", nargs=2, type=int, default=[12, 12], metavar=("VISION", "TEXT"))
    p.add_argument("--short-side", type=int, default=640)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clip-fp16", action="store_true", help="time the official code with its float16 CLIP")
    args = p.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(OFFICIAL_RUNS)]
    import run_zegformer_official as runner
    from formula_weights import (make_image, zegformer_clip_keys, zegformer_clip_state_dict, zegformer_keys,
                                 zegformer_state_dict)

    from model.inference import resize_short_side
    from model.zegformer.config import ZEGFORMER_B
    from model.zegformer.conversion import OPENAI_NON_WEIGHTS, convert_official, zegformer_with_state
    from model.zegformer.inference import predict_scores

    layers = tuple(args.openai_layers)
    runner.install(args.zegformer, args.detectron2)
    clip_np = zegformer_clip_state_dict(zegformer_clip_keys(layers))
    clip_state = {k: torch.from_numpy(v) for k, v in clip_np.items()}
    ckpt = {k: torch.from_numpy(v) for k, v in zegformer_state_dict(zegformer_keys(args.queries)).items()}
    build_args = SimpleNamespace(zegformer=args.zegformer, queries=args.queries, classes=runner.CLASS_NAMES,
                                 min_size_test=args.short_side, max_size_test=4 * args.short_side)
    mode = "float16clip" if args.clip_fp16 else "float32"
    cfg, official, run_dtype = runner.build(build_args, mode, clip_state)
    runner.load_checkpoint(official, {k: list(v.shape) for k, v in ckpt.items()}, str(ROOT))

    b = ZEGFORMER_B
    config = dataclasses.replace(
        b, test_short_side=args.short_side, test_max_side=4 * args.short_side,
        maskformer=dataclasses.replace(b.maskformer, predictor=dataclasses.replace(b.maskformer.predictor,
                                                                                   num_queries=args.queries)),
        vision=dataclasses.replace(b.vision, layers=layers[0]), text=dataclasses.replace(b.text, layers=layers[1]))
    clip_ours = {k: v for k, v in clip_state.items() if k not in OPENAI_NON_WEIGHTS}
    ours = zegformer_with_state(config, convert_official(ckpt, clip_ours, "formula weights"))
    original = make_image(480, 640, seed=0)
    resized = resize_short_side(original, args.short_side, 4 * args.short_side)
    batched = [{"image": torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))),
                "height": original.shape[0], "width": original.shape[1]}]
    embeds = {}

    def run_ours():
        if "ours" not in embeds:
            embeds["ours"] = ours.class_embeddings(runner.CLASS_NAMES)
        return predict_scores(ours, resized, embeds["ours"], original.shape[:2])

    def run_official():
        with runner.casts_to(run_dtype):
            return official(batched)[0]["sem_seg"]

    arms = {"ours": run_ours, "official": run_official}
    outputs, times, loads = alternate(arms, args.rounds)  # one warm-up first
    diff = float((outputs["ours"].double() - outputs["official"].double()).abs().max())
    report = {
        "queries": args.queries, "openai_layers": list(layers), "short_side": args.short_side,
        "resized": list(resized.shape[:2]), "official_clip": "float16" if args.clip_fp16 else "float32",
        "threads": args.threads, "rounds": args.rounds, "max_abs_diff_scores": diff,
        **rounded_summary(times, loads),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
