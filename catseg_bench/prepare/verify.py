"""The check a freshly prepared dataset must pass before it is marked done: `bench datasets check`."""

from __future__ import annotations

from pathlib import Path

from catseg_bench.data import check_eval_set, open_eval_set
from catseg_bench.errors import BenchError
from catseg_bench.specs import DatasetSpec


def verify_prepared(spec: DatasetSpec, data_root: Path, workers: int | None = None) -> dict[str, int]:
    """Pairs per evaluation set of `spec` under `data_root`.

    A BenchError names the first problem `check_eval_set` finds (unpaired files, a count other than
    the spec's num_images, label values outside the classes, image/label size mismatches).
    """
    counts = {}
    for eval_set in spec.eval_sets():
        findings = check_eval_set(eval_set, data_root, expected_count=spec.num_images, workers=workers)
        if findings:
            first = findings[0]
            more = f" (and {len(findings) - 1} more; run `bench datasets check {spec.name}`)" if len(findings) > 1 else ""
            raise BenchError(f"{first.file}: {first.message}{more}")
        counts[eval_set.name] = len(open_eval_set(eval_set, data_root))
    return counts
