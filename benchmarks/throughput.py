"""CAT-Seg inference throughput sweep: the numbers behind the speed goals.

    python benchmarks/throughput.py --model catseg-b --device cuda --out throughput_b.json

Sweeps precision x vocabulary size x images per forward with `bench speed`'s measurement
(`catseg_bench.commands.speed.measure_speed`: untrained weights, synthetic 480x640 images, the
paper's sliding-window protocol) and prints a Markdown table; --out also keeps the raw results as
JSON. Vocabulary sizes cover MESS (2-20 classes for most sets, 100+ for a few) and the >256-class
top-k path.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

import model as catseg_model
from catseg_bench.commands.speed import build_for_speed, measure_speed
from model.common.device import PRECISIONS
from model.common.files import atomic_write_json
from model.inference import MODES


def _int_list(value: str) -> list[int]:
    return [int(v) for v in value.split(",")]  # argparse reports a ValueError as a usage error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="catseg-b", choices=catseg_model.list_models())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default="fp32,tf32,bf16")
    parser.add_argument("--classes", default="2,20,150,300", type=_int_list)
    parser.add_argument("--batches", default="1,4", type=_int_list)
    parser.add_argument("--images", type=int, default=16, help="timed images per configuration")
    parser.add_argument("--mode", default="sliding", choices=MODES)
    parser.add_argument("--out", type=Path, help="also write the raw results here (JSON)")
    args = parser.parse_args()
    precisions = args.precisions.split(",")
    if not set(precisions) <= set(PRECISIONS):
        parser.error(f"--precisions {args.precisions}: choose from {', '.join(PRECISIONS)}")

    device = torch.device(args.device)
    rows = []
    for precision in precisions:
        segmenter = build_for_speed(args.model, None, device, precision, args.mode, compile_model=False)
        for classes in args.classes:
            for batch in args.batches:
                result = measure_speed(segmenter, device, classes=classes, batch=batch, images=max(args.images, batch))
                rows.append(result.as_dict())
                print(f"{precision} T={classes} batch={batch}: {result.images_per_second:.2f} img/s, "
                      f"peak {result.peak_memory_bytes / 2**20:.0f} MiB", flush=True)
                if args.device.startswith("cuda"):
                    torch.cuda.empty_cache()

    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    print(f"\n{args.model}, {args.mode}, {device_name}, torch {torch.__version__}\n")
    print("| precision | classes | batch | images/s | s/image | peak memory (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['precision']} | {r['classes']} | {r['batch']} | {r['images_per_second']:.2f} | "
              f"{1 / r['images_per_second']:.3f} | {r['peak_memory_bytes'] / 2**20:.0f} |")
    if args.out:
        meta = {"device": device_name, "torch": torch.__version__}
        atomic_write_json(args.out, {"meta": meta, "results": rows})


if __name__ == "__main__":
    main()
