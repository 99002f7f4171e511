"""Peak memory of the final resize + arg-max of CAT-Seg labels, chunked against unchunked.

    python benchmarks/argmax_memory.py --classes 201 --megapixels 0.3,3,12 --full-up-to 3

From merged (T, 640, 640) probabilities (what the sliding protocol gives before the final resize)
to (H, W) labels at the original size: `model.inference.upsampled_argmax` (class chunks, running
max/arg-max) against `F.interpolate(...).argmax(0)`, which holds T x H x W float32. Each
measurement runs in a fresh process and reports the growth of its peak RSS over the inputs; both
paths' labels are checked equal where both run. The unchunked path is skipped above --full-up-to
megapixels (it needs T x H x W x 4 bytes: 9.7 GB at 12 MP x 201 classes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(path: str, classes: int, megapixels: float) -> None:
    import resource
    import time

    import torch
    import torch.nn.functional as F

    from model.inference import upsampled_argmax

    torch.set_num_threads(2)
    height = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    size = (height, int(height * 4 / 3))
    probs = torch.rand(classes, 640, 640, generator=torch.Generator().manual_seed(0))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if path == "chunked":
        labels = upsampled_argmax(probs, size)
    else:
        labels = F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    digest = int(labels.double().mul(torch.arange(labels.numel(), dtype=torch.float64).view_as(labels) % 7919).sum())
    print(json.dumps({"path": path, "size": size, "seconds": seconds, "peak_growth_bytes": peak - base,
                      "labels_digest": digest}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=201)
    parser.add_argument("--megapixels", default="0.3,3,12")
    parser.add_argument("--full-up-to", type=float, default=3.0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), float(args.child[2]))
        return
    print("| megapixels | H x W | classes | path | peak RSS growth (MiB) | seconds | labels equal |")
    print("|---:|---|---:|---|---:|---:|---|")
    for mp in (float(v) for v in args.megapixels.split(",")):
        rows = {}
        for path in ("chunked", "full"):
            if path == "full" and mp > args.full_up_to:
                continue
            done = subprocess.run([sys.executable, __file__, "--child", path, str(args.classes), str(mp)],
                                  capture_output=True, text=True, check=True, cwd=REPO)
            rows[path] = json.loads(done.stdout.strip().splitlines()[-1])
        equal = rows["chunked"]["labels_digest"] == rows["full"]["labels_digest"] if "full" in rows else "n/a"
        for path, r in rows.items():
            h, w = r["size"]
            print(f"| {mp} | {h} x {w} | {args.classes} | {path} | {r['peak_growth_bytes'] / 2**20:.0f} | "
                  f"{r['seconds']:.1f} | {equal} |", flush=True)


if __name__ == "__main__":
    main()
