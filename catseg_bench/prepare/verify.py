"""The check a freshly prepared dataset must pass before it is marked done: `bench datasets check`."""

from __future__ import annotations

from pathlib import Path

from catseg_bench.data import check_eval_set
from catseg_bench.errors import BenchError
from catseg_bench.specs import DatasetSpec, builtin_specs_dir


def verify_prepared(spec: DatasetSpec, data_root: Path, workers: int | None = None) -> dict[str, int]:
    """Pairs per evaluation set of `spec` under `data_root`: `num_images` each, once checked.

    A BenchError names the first problem `check_eval_set` finds (unpaired files, a count other than
    the spec's num_images, label values outside the classes, image/label size mismatches).
    """
    counts = {}
    for eval_set in spec.eval_sets():
        findings = check_eval_set(eval_set, data_root, expected_count=spec.num_images, workers=workers)
        if findings:
            first = findings[0]
            more = f" (and {len(findings) - 1} more; run `{check_command(spec)}`)" if len(findings) > 1 else ""
            raise BenchError(f"{first.file}: {first.message}{more}")
        counts[eval_set.name] = spec.num_images  # the check found exactly this many pairs
    return counts


def check_command(spec: DatasetSpec) -> str:
    """The `bench datasets check` line for `spec`, with `--specs` when its file is not a built-in one
    (a training set or a user's spec, which `bench datasets` does not load by default)."""
    folder = spec.path.parent
    if folder.resolve() == builtin_specs_dir().resolve():
        return f"bench datasets check {spec.name}"
    return f"bench datasets check {spec.name} --specs {folder}"
