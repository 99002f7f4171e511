"""Writing a Hugging Face `datasets` copy of an evaluation set (`bench datasets export`).

Folder convention: ``<dir>/<eval set name>/`` (e.g. ``exports/cwfid/``, ``exports/paxray4.lungs/``) holds
what ``Dataset.save_to_disk`` writes plus ``catseg_bench_export.json``, the marker that says which
evaluation set and spec hash the copy came from; `catseg_bench.data.hf_reader` reads it back.

Columns: ``name`` (the pairing key), ``image`` and ``label`` (``datasets.Image`` features holding
bytes). Images keep the original file's bytes; labels are PNG bytes (the original file when it is a
PNG, else re-encoded losslessly), so a round trip gives identical arrays.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from catseg_bench.data.decode import encode_label_png, label_array
from catseg_bench.data.evalsets import EvalSetDataset
from catseg_bench.data.hf_reader import EXPORT_FORMAT, EXPORT_MARKER, EXPORT_VERSION, export_dir, read_export_marker
from catseg_bench.data.source import expected_image_count, open_eval_set
from catseg_bench.errors import BenchError
from catseg_bench.specs import EvalSet
from model.common.files import atomic_write_json

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Rows buffered before a write: a few full-size images, not hundreds.
_WRITER_BATCH_SIZE = 16


def _label_png_bytes(source: EvalSetDataset, index: int) -> bytes:
    raw = source.label_source(index)
    data = raw if isinstance(raw, bytes) else Path(raw).read_bytes()
    if data.startswith(_PNG_SIGNATURE):
        return data
    return encode_label_png(label_array(data, source.label_location(index)))


def _export_rows(source: EvalSetDataset, root: str):
    for index, name in enumerate(source.names):
        image = source.image_source(index)
        image_bytes = image if isinstance(image, bytes) else Path(image).read_bytes()
        image_path = source.image_path(index)
        label_path = source.label_path(index)
        yield {
            "name": name,
            "image": {"bytes": image_bytes, "path": os.path.relpath(image_path, root) if image_path else None},
            "label": {"bytes": _label_png_bytes(source, index), "path": os.path.relpath(label_path, root) if label_path else None},
        }


def _features():
    import datasets

    return datasets.Features({"name": datasets.Value("string"), "image": datasets.Image(), "label": datasets.Image()})


def export_eval_set(eval_set: EvalSet, data_root: Path, to_dir: Path) -> Path:
    """Write `to_dir/<eval set name>/` from the set under `data_root`; returns that folder.

    The folder is replaced atomically, and only if it is an earlier export (never other data).
    """
    import datasets


    source = open_eval_set(eval_set, data_root)
    expected, _ = expected_image_count(eval_set, data_root)
    target = export_dir(to_dir, eval_set)
    if target.exists() and read_export_marker(target) is None:
        raise BenchError(f"{target}: exists and is not a catseg-bench export; choose another --to folder")
    Path(to_dir).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{eval_set.name}.export-", dir=to_dir))
    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        table = datasets.Dataset.from_generator(
            _export_rows,
            features=_features(),
            gen_kwargs={"source": source, "root": str(data_root)},
            cache_dir=str(work / "cache"),
            fingerprint=uuid.uuid4().hex,
            writer_batch_size=_WRITER_BATCH_SIZE,
        )
        staged = work / "export"
        table.save_to_disk(str(staged))
        del table
        marker = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "eval_set": eval_set.name,
            "dataset": eval_set.spec.name,
            "subset": eval_set.subset,
            "spec_hash": eval_set.spec_hash,
            "class_names": list(eval_set.class_names),
            "ignore_index": eval_set.ignore_index,
            "num_images": len(source),
            "expected_count": expected,
            "source_kind": source.source_kind,
        }
        atomic_write_json(staged / EXPORT_MARKER, marker)
        if target.exists():
            os.replace(target, work / "previous")
        os.replace(staged, target)
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
        shutil.rmtree(work, ignore_errors=True)
    return target
