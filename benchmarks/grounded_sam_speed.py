"""CPU/GPU time of our Grounded-SAM on the parity fixture's reduced configs, to set beside the official code.

The official side is `tests/data/grounded_sam/official_runs/run_official.py --time N` (same configs,
weights, image and class names; the fork's own forward): run both on the same machine and compare
the medians (BENCHMARKS.md, "Grounded-SAM"). Times one image through detection (GroundingDINO),
then SAM and the glue, as `detect_and_score` + `labels_at` do.

    python benchmarks/grounded_sam_speed.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[1] / "tests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(TESTS))
    from test_grounded_sam_parity import META, image, parity_net

    from model.grounded_sam.pipeline import detect_and_score, labels_at

    net, picture = parity_net(), image()
    detect_and_score(net, picture, META["classes"], META["background_class"])  # warm-up
    detect, total = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        net.detector.detect(picture, META["classes"])
        detect.append(time.perf_counter() - start)
        start = time.perf_counter()
        _, scores = detect_and_score(net, picture, META["classes"], META["background_class"])
        labels_at(scores, tuple(META["original_size"]))
        total.append(time.perf_counter() - start)
    print(f"ours, {args.threads} threads, median of {args.rounds}: {statistics.median(total):.2f} s/image "
          f"(detection {statistics.median(detect):.2f} s)")


if __name__ == "__main__":
    main()
