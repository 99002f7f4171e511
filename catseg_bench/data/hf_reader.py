"""Reading a Hugging Face `datasets` copy of an evaluation set (written by `catseg_bench.data.hf_export`).

Folder convention: ``<dir>/<eval set name>/`` holds what ``Dataset.save_to_disk`` writes plus
``catseg_bench_export.json``, the marker that says which evaluation set and spec hash the copy came
from. `catseg_bench.data.open_eval_set` reads such folders transparently (an export wins over the
MESS folder layout).
"""

from __future__ import annotations

from pathlib import Path

from catseg_bench.data.evalsets import EvalSetDataset
from catseg_bench.errors import BenchError
from catseg_bench.files import read_marker
from catseg_bench.specs import EvalSet

EXPORT_MARKER = "catseg_bench_export.json"
EXPORT_FORMAT = "catseg-bench-hf-export"
EXPORT_VERSION = 1


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
