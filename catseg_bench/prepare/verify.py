"""The check a freshly prepared dataset must pass before it is marked done: `bench datasets check`."""

from __future__ import annotations

from pathlib import Path

from catseg_bench.data.check import SetCheck, inspect_eval_set
from catseg_bench.errors import BenchError
from catseg_bench.specs import DatasetSpec, builtin_specs_dir


def verify_prepared(spec: DatasetSpec, data_root: Path, workers: int | None = None) -> dict[str, SetCheck]:
    """Each evaluation set of `spec` under `data_root`, checked with its images decoded.

    A BenchError names the first problem found (unpaired files, a count other than the spec's
    num_images, label values outside the classes, image/label size mismatches, truncated images,
    labels whose fingerprint or pixel counts differ from the spec's record).
    """
    checks = {}
    for eval_set in spec.eval_sets():
        check = inspect_eval_set(eval_set, data_root, expected_count=spec.num_images, workers=workers, decode_images=True)
        if check.findings:
            first = check.findings[0]
            more = f" (and {len(check.findings) - 1} more; run `{check_command(spec)}`)" if len(check.findings) > 1 else ""
            raise BenchError(f"{first.file}: {first.message}{more}")
        checks[eval_set.name] = check
    return checks


def check_command(spec: DatasetSpec) -> str:
    """The `bench datasets check` line for `spec`, with `--specs` when its file is not a built-in one
    (a training set or a user's spec, which `bench datasets` does not load by default)."""
    folder = spec.path.parent
    if folder.resolve() == builtin_specs_dir().resolve():
        return f"bench datasets check {spec.name}"
    return f"bench datasets check {spec.name} --specs {folder}"
