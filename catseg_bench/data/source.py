"""Where an evaluation set lives under a data root, and how many images it should hold."""

from __future__ import annotations

import os
from pathlib import Path

from catseg_bench.data.evalsets import EvalSetDataset, FolderEvalSet
from catseg_bench.data.hf_reader import ExportedEvalSet, find_export, read_export_marker
from catseg_bench.errors import BenchError
from catseg_bench.specs import EvalSet
from catseg_bench.synth import synthetic_count
from model.common.files import user_path

DATA_ROOT_ENV = "CATSEG_BENCH_DATA"


def resolve_data_root(value: str | Path | None) -> Path:
    """The data root: `--data-root` if given, else $CATSEG_BENCH_DATA; it must be an existing folder."""
    origin = "--data-root"
    if value is None or str(value) == "":
        value = os.environ.get(DATA_ROOT_ENV) or None
        origin = f"${DATA_ROOT_ENV}"
    if value is None:
        raise BenchError(
            f"no data root: pass --data-root DIR or set {DATA_ROOT_ENV}=DIR (the folder holding the prepared datasets)"
        )
    root = user_path(value)
    if not root.is_dir():
        raise BenchError(f"{root}: data root given by {origin} is not an existing folder")
    return root


def open_eval_set(eval_set: EvalSet, data_root: str | Path) -> EvalSetDataset:
    """The evaluation set under `data_root`: its Hugging Face export if there is one, else the MESS layout."""
    root = Path(data_root)
    export = find_export(eval_set, root)
    if export is not None:
        return ExportedEvalSet(eval_set, export)
    return FolderEvalSet(eval_set, root)


def expected_image_count(eval_set: EvalSet, data_root: str | Path) -> tuple[int, str]:
    """How many image/label pairs the set should have, and why: an export's own record, a synthetic
    suite's manifest, or the spec's ``num_images``."""
    root = Path(data_root)
    marker = read_export_marker(root / eval_set.name)
    if marker is not None and isinstance(marker.get("expected_count"), int):
        return marker["expected_count"], f"export marker in {root / eval_set.name}"
    synthetic = synthetic_count(root, eval_set.name)
    if synthetic is not None:
        return synthetic, f"synthetic suite manifest in {root}"
    return eval_set.spec.num_images, f"num_images in {eval_set.spec.path.name}"
