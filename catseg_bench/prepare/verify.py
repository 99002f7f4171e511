"""The check a freshly prepared dataset must pass before it is marked done.

`verify_prepared` is the one place to swap in `bench datasets check` (catseg_bench.data) once that
is in the tree; until then it counts image/label pairs the way MESS's ``load_sem_seg`` pairs them:
files of one folder (not recursive) ending with the spec's suffix, matched by name without it.
"""

from __future__ import annotations

import os
from pathlib import Path

from catseg_bench.errors import BenchError
from catseg_bench.specs import DatasetSpec


def _keys(folder: Path, suffix: str) -> set[str]:
    if not folder.is_dir():
        return set()
    return {n[: -len(suffix)] for n in os.listdir(folder) if n.endswith(suffix) and not n.startswith(".")}


def verify_prepared(spec: DatasetSpec, data_root: Path, workers: int | None = None) -> dict[str, int]:
    """Pairs per evaluation set of `spec` under `data_root`; a BenchError unless each equals num_images."""
    counts = {}
    for eval_set in spec.eval_sets():
        images = _keys(Path(data_root) / eval_set.image_dir, eval_set.image_ext)
        labels = _keys(Path(data_root) / eval_set.label_dir, eval_set.label_ext)
        unpaired = labels - images
        if spec.data.images_without_labels != "skip":
            unpaired |= images - labels
        if unpaired:
            raise BenchError(f"{eval_set.name}: files without a partner under {eval_set.image_dir} / {eval_set.label_dir}, "
                             f"e.g. {sorted(unpaired)[:3]}")
        pairs = len(images & labels)
        if pairs != spec.num_images:
            raise BenchError(f"{eval_set.name}: {pairs} image/label pairs, expected {spec.num_images} ({spec.path.name})")
        counts[eval_set.name] = pairs
    return counts
