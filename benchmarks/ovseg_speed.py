"""CPU forward time of our OVSeg against the official code, on the same formula weights and image.

    python benchmarks/ovseg_speed.py --ovseg /tmp/ovfx/ovseg_mess --rounds 3 --threads 2

`--ovseg` is a checkout of blumenstiel/ov-seg-MESS@82176d4 (tests/data/ovseg/README.md section 6
says how to get one). The official code needs nothing beyond this project's environment (it vendors
its CLIP; detectron2 is replaced by the fixture's stand-ins), so both arms live in **one process**
and alternate forward by forward (A/B, `--rounds` times), which puts the machine's load on both
alike; the 1-minute load average is recorded before each forward. Both are built at the parity
fixture's reduced L (Swin-B depths 2-2-2-2, 20 queries, CLIP ViT-L/14 with 4 vision / 2 text
blocks: README section 4.2; the full L is minutes per image on a CPU), load the formula weights of
tests/formula_weights.py, and segment the fixture's 480 x 637 image (resized to 640 x 849) into its
6 classes. Timed: each whole forward from the resized uint8 image to the (6, 480, 637) scores,
after one untimed warm-up per arm (which also embeds the class names, cached by both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from ab_timing import alternate

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_RUNS = ROOT / "tests" / "data" / "ovseg" / "official_runs"
REDUCED = ["MODEL.SWIN.DEPTHS", "[2,2,2,2]", "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", "20"]
CLIP_LAYERS = (4, 2)


def build_official(checkout: str):
    import run_ovseg_official as runner

    with tempfile.TemporaryDirectory() as out:
        args = SimpleNamespace(ovseg=checkout, out=out, override=REDUCED, clip_layers=CLIP_LAYERS)
        _, model, _, _ = runner.build(args)
    keys = json.loads((ROOT / "tests" / "data" / "ovseg" / "keys_l_reduced.json").read_text())
    runner.load_formula_weights(model, str(ROOT), keys)
    return model


def build_ours():
    import torch

    from formula_weights import ovseg_state_dict
    from model.ovseg import conversion
    from test_ovseg_parity import reduced_config

    run = json.loads((ROOT / "tests" / "data" / "ovseg" / "ovseg_l_reduced_run.json").read_text())
    config = reduced_config(run)
    official = {k: torch.from_numpy(v) for k, v in ovseg_state_dict("l_reduced").items()}
    return conversion.ovseg_with_state(config, conversion.convert_official(official, config, "formula weights"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ovseg", required=True, help="checkout of blumenstiel/ov-seg-MESS@82176d4")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(OFFICIAL_RUNS)]
    import numpy as np
    import torch

    from formula_weights import make_image
    from model.zsseg import inference
    from run_ovseg_official import CLASS_NAMES, DATASET, IMAGE_HW, resize_shortest_edge

    torch.set_num_threads(args.threads)
    official, ours = build_official(args.ovseg), build_ours()
    image = make_image(*IMAGE_HW, seed=0)
    resized = resize_shortest_edge(image, 640, 2560)
    batch = [{"image": torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1))), "height": IMAGE_HW[0],
              "width": IMAGE_HW[1], "meta": {"dataset_name": DATASET}}]
    names = [n.strip() for n in CLASS_NAMES]
    text = {}

    def run_official():
        return official(batch)[0]["sem_seg"]

    def run_ours():
        if "embeds" not in text:
            text["embeds"] = ours.class_embeddings(names)
        return inference.predict_scores(ours, resized, text["embeds"], IMAGE_HW)

    arms = {"ours": run_ours, "official": run_official}
    outputs, seconds, loads = alternate(arms, args.rounds)  # warm-up first (text embeddings cached by both)
    med = {arm: statistics.median(times) for arm, times in seconds.items()}
    record = {"threads": args.threads, "rounds": args.rounds, "seconds": seconds, "median_seconds": med,
              "official_over_ours": med["official"] / med["ours"], "load_average_before": loads,
              "max_abs_diff_scores": float((outputs["ours"] - outputs["official"]).abs().max())}
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
