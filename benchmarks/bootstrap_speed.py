"""Bootstrap intervals on a CUB-200-sized eval set: 5,794 images x 201 classes, 1000 resamples.

    python benchmarks/bootstrap_speed.py [--images 5794] [--classes 201] [--resamples 1000] [--repeat 5]

Per-image counts are synthetic (about 2 % of the (image, class) pairs present, as in a
fine-grained set where each image shows one bird and the background). Prints the median wall time
of the whole interval (resample weights + three matrix products + mIoU per resample) and of its
parts, with the ratio to the time of one plain mIoU over the summed counts repeated per resample in
a Python loop (what a naive implementation does).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from catseg_bench.bootstrap import miou, resample_weights, set_interval, set_samples
from catseg_bench.per_image import PerImageStats


def _median_seconds(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5794)
    parser.add_argument("--classes", type=int, default=201)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    n, k = args.images, args.classes
    gt = rng.integers(1, 200_000, size=(n, k)) * (rng.random((n, k)) < 0.02)
    gt[:, 0] = rng.integers(100_000, 250_000, size=n)  # background in every image
    tp = (gt * rng.uniform(0.3, 0.9, size=(n, k))).astype(np.int64)
    pred = tp + rng.integers(0, 5_000, size=(n, k)) * (rng.random((n, k)) < 0.05)
    stats = PerImageStats(tuple(f"image_{i:05d}" for i in range(n)), np.stack([tp, pred, gt], axis=1))

    whole = _median_seconds(lambda: set_interval(stats, args.resamples), args.repeat)
    weights_time = _median_seconds(lambda: resample_weights(stats.names, args.resamples, 0), args.repeat)
    weights = resample_weights(stats.names, args.resamples, 0)
    products = _median_seconds(lambda: set_samples(stats, weights), args.repeat)

    def naive() -> None:
        for row in weights[: max(1, args.resamples // 20)]:
            picked = np.repeat(np.arange(n), row)
            miou(stats.tp[picked].sum(0), stats.pred[picked].sum(0), stats.gt[picked].sum(0))

    naive_time = _median_seconds(naive, 1) * args.resamples / max(1, args.resamples // 20)
    print(f"{n} images x {k} classes, {args.resamples} resamples, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"set_interval (whole): {whole:.3f} s  (weights {weights_time:.3f} s, matrix products + mIoU {products:.3f} s)")
    print(f"naive loop (extrapolated from {max(1, args.resamples // 20)} resamples): {naive_time:.1f} s; "
          f"ratio {naive_time / whole:.0f}x")


if __name__ == "__main__":
    main()
