"""CPU/GPU throughput of the training-free segmenters beside CAT-Seg-B, interleaved in one run.

Each round times every model once on the same synthetic images (what the runner does per image:
the test-time resize, then predict), so machine load hits all models alike; the table reports
the median over rounds. Weights are random (speed does not depend on their values).

    python benchmarks/training_free_speed.py --device cpu --images 2 --rounds 3 --classes 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from catseg_bench.commands.speed import synthetic_images
from catseg_bench.registry import build_segmenter

MODELS = ("catseg-b", "maskclip", "sclip", "clearclip", "naclip")


def seconds_per_image(segmenter, images, sizes, device) -> float:
    start = time.perf_counter()
    for image, size in zip(images, sizes):
        segmenter.predict([segmenter.prepare_image(image)], [size])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--size", default="480x640")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    device = torch.device(args.device)
    height, width = (int(v) for v in args.size.split("x"))
    images = synthetic_images(args.images, (height, width), seed=0)
    sizes = [(height, width)] * args.images
    names = tuple(f"class number {i}" for i in range(args.classes))
    segmenters, text_seconds = {}, {}
    for name in args.models.split(","):
        segmenters[name] = build_segmenter(name, {}, device=device, precision="fp32", checkpoint="none")
        start = time.perf_counter()
        segmenters[name].set_classes(names)
        text_seconds[name] = time.perf_counter() - start
        segmenters[name].predict([segmenters[name].prepare_image(images[0])], sizes[:1])  # warm-up
    timings = {name: [] for name in segmenters}
    for _ in range(args.rounds):
        for name, segmenter in segmenters.items():
            timings[name].append(seconds_per_image(segmenter, images, sizes, device))
    print(f"| model | s/image (median of {args.rounds}) | images/s | text s ({args.classes} classes) |")
    print("|---|---|---|---|")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {1 / median:.3f} | {text_seconds[name]:.1f} |")


if __name__ == "__main__":
    main()
