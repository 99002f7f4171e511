"""The Python steps of `benchmarks/device_check.sh` (run that script, not this file).

    agreement   CAT-Seg probabilities on the device at fp32 / tf32 / bf16 against the CPU fp32
                reference: on the b12 parity fixture (catseg-b, formula weights, the official
                outputs in tests/data/parity_b12), or with --tiny on untrained catseg-tiny
    synth-data  a synthetic data root whose images and labels have each dataset's typical size
                (`bench speed`'s TYPICAL_IMAGE_SIZES, optionally capped by --max-side)
    summary     one JSON of every step's status, time and figures, and a printed summary
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from model.common.files import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
PARITY_PROBS_TOLERANCE = 1e-5  # tests/test_model_parity.py: fp32 probabilities against the official code
DECIDED_MARGIN = 1e-5  # argmax compared where the official top-two margin exceeds this


def _parity_inputs(work: Path):
    """(checkpoint path, image, class names, compact reference) of the b12 fixture, from tests/."""
    sys.path.insert(0, str(TESTS))
    from test_model_parity import fill, make_image

    keys = json.loads((TESTS / "data" / "official_keys" / "keys_b.json").read_text())
    from model.aggregator import shifted_window_mask

    state = {key: shifted_window_mask(24, 12, 6) if key.endswith("swin_block.block_2.attn_mask")
             else torch.from_numpy(fill(key, shape, seed=0)[0]) for key, shape in keys.items()}
    path = work / "model_b12.pth"
    torch.save({"model": state, "iteration": 0}, path)
    compact = TESTS / "data" / "parity_b12"
    classes = json.loads((compact / "b12_classes.json").read_text())
    return path, make_image(480, 640, seed=0), classes, dict(np.load(compact / "compact.npz"))


def agreement(device: str, tiny: bool, work: Path) -> dict:
    import model

    if tiny:  # whole-image mode keeps the CPU dry run short
        checkpoint, reference, mode = None, None, "whole"
        image = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        classes, name = [f"class {i}" for i in range(8)], "catseg-tiny"
    else:
        checkpoint, image, classes, reference = _parity_inputs(work)
        name, mode = "catseg-b", "sliding"

    def probabilities(dev: str, precision: str) -> tuple[torch.Tensor, float]:
        torch.manual_seed(0)
        net = model.create_model(name, checkpoint=checkpoint, device=dev)
        text = model.encode_classes(net, classes)
        start = time.perf_counter()
        probs = model.predict_probs(net, [image], text, mode=mode, precision=precision)[0].float().cpu()
        return probs, time.perf_counter() - start

    cpu, cpu_seconds = probabilities("cpu", "fp32")
    report = {"model": name, "mode": mode, "fixture": "random image, untrained weights" if tiny else "b12 parity fixture",
              "device": device, "cpu_fp32_seconds": cpu_seconds, "precisions": {}}
    if reference is not None:
        report["cpu_fp32_vs_official_max_abs"] = float(np.abs(cpu.numpy()[:, ::16, ::16] - reference["probs"]).max())
    for precision in ("fp32", "tf32", "bf16"):
        probs, seconds = probabilities(device, precision)
        row = {"seconds": seconds, "max_abs_vs_cpu_fp32": float((probs - cpu).abs().max()),
               "argmax_agreement_vs_cpu_fp32": float((probs.argmax(0) == cpu.argmax(0)).double().mean())}
        if reference is not None:
            strided = probs.numpy()[:, ::16, ::16]
            decided = reference["top1_minus_top2"] > DECIDED_MARGIN
            row["max_abs_vs_official"] = float(np.abs(strided - reference["probs"]).max())
            row["within_parity_tolerance"] = row["max_abs_vs_official"] < PARITY_PROBS_TOLERANCE
            row["decided_argmax_equal_official"] = bool(
                np.array_equal(strided.argmax(0)[decided], reference["argmax"][decided]))
        report["precisions"][precision] = row
    return report


def synth_data(root: Path, sets: list[str], images: int, max_side: int) -> dict:
    """Write the synthetic suite for `sets`, then resize every image (bilinear) and label (nearest)
    to its dataset's typical size, each side capped at `max_side`."""
    from PIL import Image

    from catseg_bench.commands.speed import TYPICAL_IMAGE_SIZES
    from catseg_bench.specs import load_specs
    from catseg_bench.synth import write_suite

    specs = load_specs()
    chosen = [specs[name] for name in sets]
    written = write_suite(root, chosen, images_per_set=images)
    sizes = {}
    for spec in chosen:
        height, width = (min(side, max_side) for side in TYPICAL_IMAGE_SIZES.get(spec.name, (480, 640)))
        sizes[spec.name] = (height, width)
        folders = [(root / spec.data.image_dir, spec.data.image_ext, Image.BILINEAR)]
        folders += [(root / es.label_dir, es.label_ext, Image.NEAREST) for es in spec.eval_sets()]
        for folder, ext, resample in folders:
            for path in sorted(folder.glob(f"*{ext}")):
                with Image.open(path) as img:
                    resized = img.resize((width, height), resample)
                    resized.save(path, format=img.format)
    return {"eval_sets": written, "image_sizes": sizes}


def _results(folder: Path) -> dict:
    rows = {}
    for path in sorted(folder.glob("*/*.json")):
        record = json.loads(path.read_text())
        if record.get("schema") == "catseg-bench/result":
            rows[record["eval_set"]] = {"mIoU": record["metrics"]["mIoU"], "timing": record.get("timing")}
    return rows


def summary(work: Path, out: Path, dry_run: bool) -> int:
    steps = []
    for line in (work / "steps.tsv").read_text().splitlines():
        name, status, seconds = line.split("\t")
        log = work / f"{name}.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if status == "failed" and log.exists() else []
        steps.append({"step": name, "status": status, "seconds": float(seconds), "log_tail": tail})
    record = {
        "dry_run": dry_run,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
        "steps": steps,
    }
    for name in ("agreement", "synth_data"):
        if (work / f"{name}.json").exists():
            record[name] = json.loads((work / f"{name}.json").read_text())
    record["speed"] = {p.stem.removeprefix("speed_"): json.loads(p.read_text()) for p in sorted(work.glob("speed_*.json"))
                       if p.stat().st_size}
    plain, compiled = work / "compile.json", work / "compile--compile.json"
    if plain.exists() and compiled.exists() and plain.stat().st_size and compiled.stat().st_size:
        before, after = json.loads(plain.read_text())[0], json.loads(compiled.read_text())[0]
        record["compile"] = {"plain": before, "compiled": after,
                             "speedup": after["images_per_second"] / before["images_per_second"]}
    record["run"] = _results(work / "run")
    record["run_torchrun"] = _results(work / "run_torchrun")
    record["torchrun_equals_single_process"] = bool(record["run"]) and {
        k: v["mIoU"] for k, v in record["run"].items()} == {k: v["mIoU"] for k, v in record["run_torchrun"].items()}
    atomic_write_json(out, record)

    print(f"device check ({'dry run, CPU' if dry_run else record['device']}), torch {record['torch']}: {out}")
    for step in steps:
        print(f"  {step['step']:<22} {step['status']:<8} {step['seconds']:7.1f} s")
    for precision, row in record.get("agreement", {}).get("precisions", {}).items():
        official = f", vs official {row['max_abs_vs_official']:.1e}" if "max_abs_vs_official" in row else ""
        print(f"  agreement {precision:<5} max |p - cpu fp32| {row['max_abs_vs_cpu_fp32']:.1e}{official}, "
              f"argmax agreement {100 * row['argmax_agreement_vs_cpu_fp32']:.3f} %")
    for model_name, speed in record["speed"].items():
        print(f"  speed {model_name}: full {speed['suite']} projected {speed['projected_seconds'] / 60:.1f} min "
              f"({speed['precision']}, {len(speed['rows'])} eval sets measured)")
    if "compile" in record:
        print(f"  torch.compile at 150 classes: {record['compile']['speedup']:.2f}x images/s")
    print(f"  bench run: {len(record['run'])} eval sets; torchrun gives the same mIoU: "
          f"{record['torchrun_equals_single_process']}")
    failed = [s["step"] for s in steps if s["status"] == "failed"]
    if failed:
        print(f"  FAILED: {', '.join(failed)} (log tails in the JSON)")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("agreement")
    p.add_argument("--device", required=True)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--work", type=Path, required=True)
    p = sub.add_parser("synth-data")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--sets", required=True)
    p.add_argument("--images", type=int, default=2)
    p.add_argument("--max-side", type=int, default=100_000)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("summary")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.command == "agreement":
        atomic_write_json(args.work / "agreement.json", agreement(args.device, args.tiny, args.work))
    elif args.command == "synth-data":
        atomic_write_json(args.out, synth_data(args.root, args.sets.split(","), args.images, args.max_side))
    else:
        sys.exit(summary(args.work, args.out, args.dry_run))


if __name__ == "__main__":
    main()
