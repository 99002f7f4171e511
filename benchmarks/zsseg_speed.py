"""CPU forward time of our ZSSeg against the official code, on the same formula weights and image.

    python benchmarks/zsseg_speed.py --zsseg /tmp/zsfx/zsseg --detectron2 /tmp/zsfx/detectron2 \
        [--queries 100] [--short-side 512] [--rounds 3] [--threads 1]

`--zsseg` is a checkout of blumenstiel/zsseg.baseline-MESS@24b44f3, `--detectron2` one holding
detectron2's ResNet files (tests/data/zsseg/README.md section 5 says how to get both). Unlike SAN,
the official ZSSeg (its bundled OpenAI CLIP, detectron2 stand-ins) and ours (open_clip) share one
process, so the arms alternate forward by forward (A/B, `--rounds` times) and the load of other
processes falls on both alike; the load average at each timed forward is recorded. The official
model is built exactly as the parity fixture builds it (tests/data/zsseg/official_runs/
run_zsseg_official.py), both load the formula weights of tests/formula_weights.py (`--queries`
proposals; 100 is ZSSeg-B), and both segment the formula image resized to `--short-side` (512 is
the MESS protocol) into the fixture's 5 classes, from the resized uint8 image to the scores at the
original size. One untimed warm-up each first (which also embeds the class names, cached by both).
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
OFFICIAL_RUNS = ROOT / "tests" / "data" / "zsseg" / "official_runs"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zsseg", required=True, help="checkout of blumenstiel/zsseg.baseline-MESS@24b44f3")
    p.add_argument("--detectron2", required=True, help="checkout of facebookresearch/detectron2 (ResNet files)")
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--short-side", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(OFFICIAL_RUNS)]
    import run_zsseg_official as runner
    import standins
    from formula_weights import make_image, zsseg_keys, zsseg_state_dict

    from model.inference import resize_short_side
    from model.zsseg.config import ZSSEG_B
    from model.zsseg.conversion import convert_official, zsseg_with_state
    from model.zsseg.inference import predict_scores

    standins.install()
    standins.load_detectron2_backbone(args.detectron2)
    standins.install_zsseg_packages(args.zsseg)
    import clip
    import clip.model

    clip.load = lambda name, device="cpu": (clip.model.CLIP(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12).float(), None)
    import mask_former.modeling.heads.pixel_decoder  # noqa: F401
    import mask_former.modeling.heads.zero_shot_mask_former_head  # noqa: F401
    import mask_former.zero_shot_mask_former_model  # noqa: F401
    from detectron2.data import MetadataCatalog

    MetadataCatalog.get(runner.DATASET).stuff_classes = runner.CLASS_NAMES
    overrides = ["MODEL.CLIP_ADAPTER.MASK_THR", 0.5, "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", args.queries]
    _, official = runner.build(SimpleNamespace(zsseg=args.zsseg), overrides)
    weights = zsseg_state_dict(zsseg_keys(args.queries))
    state = official.state_dict()
    state.update({k: torch.from_numpy(v) for k, v in weights.items()})
    official.load_state_dict(state, strict=True)

    predictor = dataclasses.replace(ZSSEG_B.maskformer.predictor, num_queries=args.queries)
    config = dataclasses.replace(ZSSEG_B, test_short_side=args.short_side,
                                 maskformer=dataclasses.replace(ZSSEG_B.maskformer, predictor=predictor))
    ours = zsseg_with_state(config, convert_official({k: torch.from_numpy(v) for k, v in weights.items()}, config,
                                                     "formula weights"))
    original = make_image(480, 640, seed=0)
    resized = resize_short_side(original, args.short_side, 4 * args.short_side)
    batched = [{"image": torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))),
                "height": original.shape[0], "width": original.shape[1], "meta": {"dataset_name": runner.DATASET}}]
    names = [c.strip() for c in runner.CLASS_NAMES]
    embeds = {}

    def run_ours():
        if "ours" not in embeds:
            embeds["ours"] = ours.class_embeddings(names)
        return predict_scores(ours, resized, embeds["ours"], original.shape[:2])

    def run_official():
        return official(batched)[0]["sem_seg"]

    arms = {"ours": run_ours, "official": run_official}
    outputs, times, loads = alternate(arms, args.rounds)  # one warm-up first
    diff = float((outputs["ours"].double() - outputs["official"].double()).abs().max())
    report = {
        "queries": args.queries, "short_side": args.short_side, "resized": list(resized.shape[:2]),
        "threads": args.threads, "rounds": args.rounds, "max_abs_diff_scores": diff,
        **rounded_summary(times, loads),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
