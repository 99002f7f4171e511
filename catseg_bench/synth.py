"""A synthetic data root: small images and labels in each spec's exact layout.

Every later code path (runner, scoring, demo, tests) can then run without the real datasets. Files go
where the real ones would (``data.image_dir``/``label_dir``, every subset's label folder, the spec's
suffixes, 16-bit labels when ``label_dtype = "uint16"``). Each label holds a few spatially coherent
elliptic blobs of several classes over a background class, plus a thin band of ignore pixels (like
tile padding); image sides vary between 48 and 96 pixels. A spec whose images may lack labels
(``images_without_labels = "skip"``) also gets one unlabelled image, as CWFID has. Specs that share an
image folder (PC-59 and PC-459 read VOC 2010's JPEGImages) name their files after the spec
(``synth_pc59_000``), so each one's images stay its own and the other's are unlabelled images to it.

Output is a pure function of the seed and each spec (one random stream per dataset name, so adding a
spec does not change the others). ``catseg_synth.json`` in the root records what was written; it marks
the folder as synthetic (`bench datasets check` takes the image counts from it instead of the specs'
``num_images``) and lets a later `write_suite` replace its own files but nothing else.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from catseg_bench.errors import BenchError
from catseg_bench.files import read_marker
from catseg_bench.specs import DatasetSpec, load_specs
from model.common.files import atomic_write_json

SYNTH_MANIFEST = "catseg_synth.json"
SYNTH_FORMAT = "catseg-bench-synth"
DEFAULT_IMAGES_PER_SET = 4
MIN_SIDE, MAX_SIDE = 48, 96
_LOSSY_FORMATS = ("JPEG", "WEBP", "MPO")


def read_synth_manifest(data_root: Path) -> dict | None:
    """The manifest of a synthetic data root, or None for a real one."""
    return read_marker(Path(data_root) / SYNTH_MANIFEST, SYNTH_FORMAT, "synthetic-suite manifest",
                       "remove it or choose another folder")


def synthetic_count(data_root: Path, eval_set_name: str) -> int | None:
    """How many image/label pairs `write_suite` wrote for an evaluation set under `data_root`, if it did."""
    manifest = read_synth_manifest(data_root)
    if manifest is None:
        return None
    entry = manifest.get("eval_sets", {}).get(eval_set_name)
    return None if entry is None else int(entry["num_images"])


def _pil_format(spec: DatasetSpec, ext: str, field: str) -> str:
    suffix = "." + ext.rsplit(".", 1)[-1].lower()
    fmt = Image.registered_extensions().get(suffix)
    if fmt is None:
        raise BenchError(f"{spec.path}: field '{field}' ends in '{suffix}', a format synth cannot write")
    return fmt


def _blob_label(rng: np.random.Generator, height: int, width: int, num_classes: int, ignore_index: int) -> np.ndarray:
    """A background class, 2-4 elliptic blobs of other classes, and an ignore band on one edge."""
    present = rng.choice(num_classes, size=min(num_classes, int(rng.integers(2, 5))), replace=False)
    label = np.full((height, width), present[0], dtype=np.int64)
    yy, xx = np.mgrid[0:height, 0:width]
    for cls in present[1:]:
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.15, 0.4) * height, rng.uniform(0.15, 0.4) * width
        label[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0] = cls
    band = int(rng.integers(1, 4))
    edge = int(rng.integers(0, 4))
    if edge == 0:
        label[:band] = ignore_index
    elif edge == 1:
        label[-band:] = ignore_index
    elif edge == 2:
        label[:, :band] = ignore_index
    else:
        label[:, -band:] = ignore_index
    return label


def _render(rng: np.random.Generator, label: np.ndarray, palette: np.ndarray, ignore_index: int) -> np.ndarray:
    """An RGB image whose regions follow the label: one colour per class plus noise; ignore pixels black."""
    safe = np.where(label == ignore_index, 0, label)
    image = palette[safe].astype(np.float64) + rng.normal(0.0, 12.0, size=(*label.shape, 3))
    image[label == ignore_index] = 0.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _clear_previous(root: Path, spec: DatasetSpec, own_prefix: str | None) -> None:
    """Remove the files an earlier run wrote for `spec`: every file of its folders, or in a shared
    image folder (`own_prefix` given) only those named after it."""
    from catseg_bench.data.pairing import files_by_key

    folders = [(spec.data.image_dir, spec.data.image_ext)]
    folders += [(es.label_dir, es.label_ext) for es in spec.eval_sets()]
    for folder, suffix in folders:
        if (root / folder).is_dir():
            for key, path in files_by_key(root / folder, suffix).items():
                if own_prefix is None or key.startswith(own_prefix):
                    path.unlink()


def shared_image_dirs(specs: Iterable[DatasetSpec]) -> set[str]:
    """The image folders that more than one of `specs` reads."""
    counts = Counter(spec.data.image_dir for spec in specs)
    return {folder for folder, count in counts.items() if count > 1}


def write_spec(root: Path, spec: DatasetSpec, images_per_set: int, seed: int, shared_images: bool = False) -> int:
    """Write one dataset's synthetic files under `root`; returns the number of labelled images.

    ``shared_images``: another spec reads the same image folder, so the files are named after this one."""
    image_format = _pil_format(spec, spec.data.image_ext, "data.image_ext")
    label_format = _pil_format(spec, spec.data.label_ext, "data.label_ext")
    if label_format in _LOSSY_FORMATS:
        raise BenchError(f"{spec.path}: field 'data.label_ext' names a lossy format ({label_format}); labels must be lossless")
    label_dtype = np.uint16 if spec.label_dtype == "uint16" else np.uint8
    rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode("utf-8"))])
    eval_sets = spec.eval_sets()
    palette = rng.integers(0, 256, size=(eval_sets[0].num_classes, 3))
    prefix = f"synth_{spec.name}_" if shared_images else "synth_"
    _clear_previous(root, spec, prefix if shared_images else None)
    image_root = root / spec.data.image_dir
    image_root.mkdir(parents=True, exist_ok=True)
    for es in eval_sets:
        (root / es.label_dir).mkdir(parents=True, exist_ok=True)
    unlabelled = 1 if spec.data.images_without_labels == "skip" else 0
    for index in range(images_per_set + unlabelled):
        height, width = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
        key = f"{prefix}{index:03d}"
        labels = [_blob_label(rng, height, width, es.num_classes, es.ignore_index) for es in eval_sets]
        image = Image.fromarray(_render(rng, labels[0], palette, spec.ignore_index))
        image.save(image_root / f"{key}{spec.data.image_ext}", format=image_format)
        if index >= images_per_set:
            continue
        for es, label in zip(eval_sets, labels):
            Image.fromarray(label.astype(label_dtype)).save(root / es.label_dir / f"{key}{es.label_ext}", format=label_format)
    return images_per_set


def write_suite(
    out_dir: Path | str,
    specs: Iterable[DatasetSpec] | Mapping[str, DatasetSpec],
    images_per_set: int = DEFAULT_IMAGES_PER_SET,
    seed: int = 0,
) -> dict[str, int]:
    """Write a synthetic data root for `specs`; returns image/label pairs written per evaluation set.

    `out_dir` must be empty, absent, or an earlier synthetic suite (whose files for these specs are
    replaced; other specs' files stay and stay in the manifest).
    """
    if images_per_set < 1:
        raise BenchError(f"--images must be at least 1, got {images_per_set}")
    root = Path(out_dir)
    manifest = read_synth_manifest(root)
    if manifest is None:
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise BenchError(f"{root}: not empty and not a synthetic suite; choose an empty or new --out folder")
        root.mkdir(parents=True, exist_ok=True)
        manifest = {"format": SYNTH_FORMAT, "version": 1, "eval_sets": {}}
        # Claim the folder before the first file: a run that fails part-way can be rerun into it.
        atomic_write_json(root / SYNTH_MANIFEST, manifest)
    chosen = list(specs.values() if isinstance(specs, Mapping) else specs)
    # Sharing is judged against the built-in specs too, so a set's file names do not depend on which
    # other sets one synthesises with it.
    known = {**load_specs(), **{spec.name: spec for spec in chosen}}
    shared = shared_image_dirs(known.values())
    written: dict[str, int] = {}
    for spec in chosen:
        count = write_spec(root, spec, images_per_set, seed, shared_images=spec.data.image_dir in shared)
        for es in spec.eval_sets():
            written[es.name] = count
            manifest["eval_sets"][es.name] = {
                "dataset": spec.name,
                "num_images": count,
                "seed": seed,
                "spec_hash": spec.spec_hash,
            }
        atomic_write_json(root / SYNTH_MANIFEST, manifest)  # each finished spec is recorded at once
    return written
