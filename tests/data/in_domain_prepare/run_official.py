"""Run CAT-Seg's own datasets/prepare_*.py (KU-CVLAB/CAT-Seg@6d3a188) on sources/ and record the
outputs under expected/ (see README.md for how to rerun).

    python run_official.py --catseg /tmp/catseg-6d3a188 [--work /tmp/in_domain_official]

The official scripts run unchanged, as ``python datasets/prepare_X.py`` would run them
(``runpy`` with ``__name__ == "__main__"``, DETECTRON2_DATASETS pointing at a copy of sources/),
with one stand-in: ``numpy.str`` (removed in numpy 1.24, used by prepare_voc.py's np.loadtxt) is
set to ``str``. Recorded per output file: the sha256 of its bytes, its PIL mode and size, and the
decoded label as a PNG (16-bit where needed: a 512x599 16-bit TIFF is too large to commit).
Images the A-847 script re-encodes are recorded by the sha256 of their bytes and of their pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import runpy
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent

# official script -> output folders (under the datasets root) it writes, by spec name
OUTPUTS = {
    "prepare_ade20k_full.py": {"ade847": "ADE20K_2021_17_01/annotations_detectron2/validation",
                               "ade847_images": "ADE20K_2021_17_01/images_detectron2/validation"},
    "prepare_pascal_context_459.py": {"pc459": "VOCdevkit/VOC2010/annotations_detectron2/pc459_val"},
    "prepare_ade20k_150.py": {"ade150": "ADEChallengeData2016/annotations_detectron2/validation"},
    "prepare_pascal_context_59.py": {"pc59": "VOCdevkit/VOC2010/annotations_detectron2/pc59_val"},
    "prepare_voc.py": {"voc20": "VOCdevkit/VOC2012/annotations_detectron2/val",
                       "voc20b": "VOCdevkit/VOC2012/annotations_detectron2_bg/val"},
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def record(folder: Path, out: Path, images: bool) -> dict[str, dict]:
    files = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        with Image.open(path) as image:
            array = np.array(image)
            entry = {"sha256": sha256(path.read_bytes()), "mode": image.mode, "size": list(image.size),
                     "format": image.format, "pixels_sha256": sha256(np.ascontiguousarray(array).tobytes())}
        if not images:
            out.mkdir(parents=True, exist_ok=True)
            dtype = np.uint16 if array.dtype.itemsize > 1 else np.uint8
            Image.fromarray(array.astype(dtype)).save(out / f"{path.stem}.png")
        files[path.name] = entry
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catseg", type=Path, required=True, help="a CAT-Seg checkout at 6d3a188")
    parser.add_argument("--work", type=Path, default=Path("/tmp/in_domain_official"))
    args = parser.parse_args()
    datasets = args.work / "datasets"
    shutil.rmtree(args.work, ignore_errors=True)
    shutil.copytree(HERE / "sources", datasets)
    os.environ["DETECTRON2_DATASETS"] = str(datasets)
    np.str = str  # stand-in: prepare_voc.py's np.loadtxt(..., dtype=np.str) predates numpy 1.24
    expected = HERE / "expected"
    shutil.rmtree(expected, ignore_errors=True)
    manifest = {}
    cwd = Path.cwd()
    try:
        os.chdir(args.catseg)
        for script, outputs in OUTPUTS.items():
            runpy.run_path(str(args.catseg / "datasets" / script), run_name="__main__")
            for name, folder in outputs.items():
                manifest[name] = record(datasets / folder, expected / name, images=name.endswith("_images"))
    finally:
        os.chdir(cwd)
    (expected / "outputs.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"recorded {sum(len(v) for v in manifest.values())} official outputs in {expected}")


if __name__ == "__main__":
    main()
