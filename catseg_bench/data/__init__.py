"""Evaluation data: the MESS-prepared folder layout or a Hugging Face export, decoded and checked.

Public API::

    resolve_data_root(value) -> Path                  # --data-root, else $CATSEG_BENCH_DATA
    open_eval_set(eval_set, data_root) -> EvalSetDataset   # torch Dataset of {"image", "label", "name"}
    check_eval_set(eval_set, data_root, ...) -> list[Finding]
    export_eval_set(eval_set, data_root, to_dir) -> Path   # to_dir/<eval set name>/
    expected_image_count(eval_set, data_root) -> (count, origin)
"""

from catseg_bench.data.check import Finding, check_eval_set
from catseg_bench.data.decode import decode_image, decode_label
from catseg_bench.data.evalsets import EvalSetDataset, FolderEvalSet
from catseg_bench.data.hf_export import export_eval_set
from catseg_bench.data.hf_reader import EXPORT_MARKER, ExportedEvalSet
from catseg_bench.data.source import DATA_ROOT_ENV, expected_image_count, open_eval_set, resolve_data_root

__all__ = [
    "DATA_ROOT_ENV",
    "EXPORT_MARKER",
    "EvalSetDataset",
    "ExportedEvalSet",
    "Finding",
    "FolderEvalSet",
    "check_eval_set",
    "decode_image",
    "decode_label",
    "expected_image_count",
    "export_eval_set",
    "open_eval_set",
    "resolve_data_root",
]
