"""A Hugging Face `datasets` copy of an evaluation set: export, detect, read.

Folder convention: ``<dir>/<eval set name>/`` (e.g. ``exports/cwfid/``, ``exports/paxray4.lungs/``) holds
what ``Dataset.save_to_disk`` writes plus ``catseg_bench_export.json``, the marker that says which
evaluation set and spec hash the copy came from. A data root holding such folders is read
transparently by `catseg_bench.data.open_eval_set` (an export wins over the MESS folder layout).

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
from catseg_bench.errors import BenchError
from catseg_bench.files import read_marker
from model.common.files import atomic_write_json
from catseg_bench.specs import EvalSet

EXPORT_MARKER = "catseg_bench_export.json"
EXPORT_FORMAT = "catseg-bench-hf-export"
EXPORT_VERSION = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Rows buffered before a write: a few full-size images, not hundreds.
_WRITER_BATCH_SIZE = 16


def export_dir(root: Path, eval_set: EvalSet) -> Path:
    return Path(root) / eval_set.name


def read_export_marker(directory: Path) -> dict | None:
    """The marker of an export folder, or None when `directory` is not one."""
    return read_marker(Path(directory) / EXPORT_MARKER, EXPORT_FORMAT, "export marker",
                       "re-export with `bench datasets export`")


def find_export(eval_set: EvalSet, data_root: Path) -> Path | None:
    """The export folder of `eval_set` under `data_root`, checked against the current spec; None if absent."""
    directory = export_dir(data_root, eval_set)
    marker = read_export_marker(directory)
    if marker is None:
        return None
    if marker.get("eval_set") != eval_set.name:
        raise BenchError(
            f"{directory / EXPORT_MARKER}: export of '{marker.get('eval_set')}' found where '{eval_set.name}' belongs; "
            "rename the folder or re-export"
        )
    if marker.get("spec_hash") != eval_set.spec_hash:
        raise BenchError(
            f"{directory / EXPORT_MARKER}: exported with spec hash {marker.get('spec_hash')}, but {eval_set.spec.path} "
            f"now hashes to {eval_set.spec_hash} (classes or layout changed); re-export with "
            f"`bench datasets export {eval_set.name} --to {Path(data_root)}`"
        )
    return directory


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

    from catseg_bench.data.source import expected_image_count, open_eval_set

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


def load_export_rows(directory: Path):
    """The export's rows with ``image``/``label`` left as ``{"bytes", "path"}`` (memory-mapped, not decoded)."""
    import datasets

    try:
        table = datasets.load_from_disk(str(directory))
    except (OSError, ValueError) as err:
        raise BenchError(f"{directory}: unreadable Hugging Face export ({err}); re-export it") from None
    raw = datasets.Image(decode=False)
    return table.cast_column("image", raw).cast_column("label", raw)


class ExportedEvalSet(EvalSetDataset):
    """An evaluation set read from its Hugging Face export (same items as the folder layout)."""

    source_kind = "export"

    def __init__(self, eval_set: EvalSet, directory: Path):
        self.directory = Path(directory)
        self.marker = read_export_marker(self.directory)
        self._table = None
        super().__init__(eval_set, list(self._rows()["name"]))

    def _rows(self):
        if self._table is None:
            self._table = load_export_rows(self.directory)
        return self._table

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_table"] = None  # reopened (memory-mapped) in each worker
        return state

    def image_source(self, index: int) -> bytes:
        return self._rows()[index]["image"]["bytes"]

    def label_source(self, index: int) -> bytes:
        return self._rows()[index]["label"]["bytes"]

    def image_path(self, index: int) -> None:
        return None

    def label_path(self, index: int) -> None:
        return None

    def image_location(self, index: int) -> str:
        return f"{self.directory}[{self.names[index]}] image"

    def label_location(self, index: int) -> str:
        return f"{self.directory}[{self.names[index]}] label"
