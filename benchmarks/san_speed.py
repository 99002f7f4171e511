"""CPU forward time of our SAN against the official code, on the same formula weights and image.

    python benchmarks/san_speed.py --san /tmp/san-mess --pkgs /tmp/san-pkgs --size b --rounds 3

`--san` is a checkout of blumenstiel/SAN-MESS@483cea6; `--pkgs` a folder holding open_clip_torch
2.16.0 and timm 0.6.13 (`pip install --no-deps --target DIR open_clip_torch==2.16.0 timm==0.6.13`),
which the official code needs and which cannot share a process with ours (open_clip 3). Each arm
therefore runs in its own process, and the arms alternate (A/B, `--rounds` times) so that the load
of other processes on the machine falls on both alike; the load average at each arm's start is
recorded. The official model is built exactly as the parity fixture builds it
(tests/data/san/official_runs/run_san_official.py, with its detectron2 stand-ins), both load the
formula weights of tests/formula_weights.py, and both segment the fixture's 480 x 637 image
(resized to 640 x 849, padded to 640 x 864) into its 6 classes. Timed: `--forwards` whole forwards
per process after one untimed warm-up (which also embeds the class names, cached by both), each from
the resized uint8 image to the (T, 480, 637) scores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_RUNS = ROOT / "tests" / "data" / "san" / "official_runs"


def _image():
    sys.path.insert(0, str(ROOT / "tests"))
    from formula_weights import make_image

    sys.path.insert(0, str(OFFICIAL_RUNS))
    from run_san_official import IMAGE_HW, resize_shortest_edge

    image = make_image(*IMAGE_HW, seed=0)
    return image, resize_shortest_edge(image)


def time_ours(size: str, forwards: int) -> list[float]:
    import torch

    from model.san import conversion, inference

    image, resized = _image()  # puts tests/ and the official runner's folder on the path
    from formula_weights import san_state_dict
    from run_san_official import CLASS_NAMES

    config = conversion.get_san_config(f"san-{size}")
    official = {k: torch.from_numpy(v) for k, v in san_state_dict(size).items()}
    net = conversion.san_with_state(config, conversion.convert_official(official, config, "formula weights"))
    times = []
    for index in range(forwards + 1):
        start = time.perf_counter()
        if index == 0:
            classifier = net.classifier(net.class_embeddings(CLASS_NAMES))
        inference.predict_scores(net, resized, classifier, image.shape[:2])
        if index:
            times.append(time.perf_counter() - start)
    return times


def time_official(size: str, forwards: int, san: str) -> list[float]:
    import numpy as np
    import torch

    image, resized = _image()
    import run_san_official as runner

    with tempfile.TemporaryDirectory() as out:
        args = SimpleNamespace(san=san, size=size, out=out, override=[], openai_layers=None, classes=None)
        _, model, _ = runner.build(args)
    keys = json.loads((ROOT / "tests" / "data" / "san" / f"keys_{size}.json").read_text())
    runner.load_formula_weights(model, str(ROOT), keys)
    x = torch.as_tensor(np.ascontiguousarray(resized.transpose(2, 0, 1)))
    batch = [{"image": x, "height": image.shape[0], "width": image.shape[1],
              "meta": {"dataset_name": runner.DATASET}}]
    times = []
    with torch.no_grad():
        for index in range(forwards + 1):
            start = time.perf_counter()
            model(batch)
            if index:
                times.append(time.perf_counter() - start)
    return times


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    times = time_ours(args.size, args.forwards) if args.arm == "ours" else time_official(args.size, args.forwards, args.san)
    print(json.dumps({"arm": args.arm, "seconds": times}))


def parent(args) -> None:
    runs = {"ours": [], "official": []}
    loads = {"ours": [], "official": []}
    for _ in range(args.rounds):
        for arm in ("ours", "official"):
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            path = [str(ROOT)] if arm == "ours" else [args.pkgs]
            env["PYTHONPATH"] = os.pathsep.join(path)
            loads[arm].append(os.getloadavg()[0])
            cmd = [sys.executable, __file__, "--arm", arm, "--size", args.size, "--forwards", str(args.forwards),
                   "--threads", str(args.threads), "--san", args.san, "--pkgs", args.pkgs]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"{arm} arm failed:\n{done.stderr[-3000:]}")
            runs[arm].extend(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    med = {arm: statistics.median(times) for arm, times in runs.items()}
    record = {"size": args.size, "threads": args.threads, "rounds": args.rounds, "forwards": args.forwards,
              "seconds": runs, "median_seconds": med, "official_over_ours": med["official"] / med["ours"],
              "load_average_at_start": loads}
    print(json.dumps(record, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--san", required=True, help="checkout of blumenstiel/SAN-MESS@483cea6")
    p.add_argument("--pkgs", required=True, help="folder with open_clip_torch 2.16.0 and timm 0.6.13")
    p.add_argument("--size", choices=["b", "l"], default="b")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--forwards", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--arm", choices=["ours", "official"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    (child if args.arm else parent)(args)


if __name__ == "__main__":
    main()
