"""Check a prepared evaluation set before spending GPU hours on it.

Reports, each as a `Finding` naming the file: missing folders, unpaired images or labels, an image
count other than expected, label values outside the classes and the ignore value, labels whose size
differs from their image, binary labels holding only background and ignore (0/255 masks), unreadable
or truncated files, labels that changed since the set was
prepared, and labels that differ from what the spec records (see :mod:`.labelstats`). Images are
decoded when `decode_images=True` (what `bench datasets check` does unless `--headers-only`), else
only their headers are read; labels are always decoded, in worker processes when there are many.

:func:`inspect_eval_set` also returns the set's label statistics (fingerprint, class histogram) and
the sanity warnings they raise; :func:`check_eval_set` returns the findings alone.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from catseg_bench.data.decode import decode_image, image_size, label_array
from catseg_bench.data.hf_reader import EXPORT_MARKER, ExportedEvalSet, find_export, load_export_rows
from catseg_bench.data.labelstats import (
    LabelStats, binary_ignore_pattern, label_digest, label_warnings, manifest_differences, manifest_path, read_manifest,
    record_differences,
    value_counts,
)
from catseg_bench.data.pairing import scan_pairs
from catseg_bench.data.source import expected_image_count
from catseg_bench.synth import synthetic_count
from catseg_bench.errors import BenchError
from catseg_bench.specs import EvalSet

MISSING_DIR = "missing_dir"
NO_FILES = "no_files"
UNPAIRED_IMAGE = "unpaired_image"
UNPAIRED_LABEL = "unpaired_label"
COUNT = "count"
LABEL_VALUES = "label_values"
SIZE_MISMATCH = "size_mismatch"
BAD_IMAGE = "bad_image"
BAD_LABEL = "bad_label"
BAD_EXPORT = "bad_export"
LABEL_CHANGED = "label_changed"
LABEL_RECORD = "label_record"
LABEL_PATTERN = "label_pattern"  # binary labels holding only background and ignore (0/255 masks)

# Below this many pairs, starting worker processes costs more than it saves.
_SERIAL_BELOW = 64
_MAX_WORKERS = 8


@dataclass(frozen=True)
class Finding:
    eval_set: str
    kind: str
    file: str
    message: str


@dataclass(frozen=True)
class _ExportRow:
    """A row of an export, read in the worker (so bytes are not shipped between processes)."""

    directory: str
    marker_mtime_ns: int  # of the export when the check began; keys the worker's open export
    index: int


@dataclass(frozen=True)
class SetCheck:
    """What checking one evaluation set found: problems, warnings, and its labels' statistics
    (None when a label could not be read)."""

    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: LabelStats | None = None


@dataclass(frozen=True)
class _PairTask:
    key: str
    image: Path | _ExportRow
    image_where: str
    label: Path | _ExportRow
    label_where: str
    num_classes: int
    ignore_index: int
    decode_images: bool


@functools.lru_cache(maxsize=4)
def _export_rows(directory: str, marker_mtime_ns: int):
    """One open export per worker process; the marker's mtime keys out a re-exported folder."""
    return load_export_rows(Path(directory))


def _bytes_of(source: Path | _ExportRow, column: str) -> Path | bytes:
    if isinstance(source, _ExportRow):
        return _export_rows(source.directory, source.marker_mtime_ns)[source.index][column]["bytes"]
    return source


def _present_values(label: np.ndarray) -> np.ndarray:
    if label.dtype == np.uint8:
        return np.flatnonzero(np.bincount(label.ravel(), minlength=256))
    return np.unique(label)


def _strip_where(err: BenchError, where: str) -> str:
    prefix = f"{where}: "
    return err.message[len(prefix):] if err.message.startswith(prefix) else err.message


@dataclass(frozen=True)
class _PairResult:
    problems: list[tuple[str, str, str]]  # (kind, file, message)
    digest: str | None = None  # None when the label could not be read
    counts: list[int] | None = None
    ignored: int = 0


def _inspect_pair(task: _PairTask) -> _PairResult:
    """Problems and label statistics of one image/label pair; runs in a worker process."""
    problems = []
    image_hw = None
    try:
        image = _bytes_of(task.image, "image")
        if task.decode_images:
            image_hw = decode_image(image, task.image_where).shape[:2]
        else:
            image_hw = image_size(image, task.image_where)
    except BenchError as err:
        problems.append((BAD_IMAGE, task.image_where, _strip_where(err, task.image_where)))
    try:
        label = label_array(_bytes_of(task.label, "label"), task.label_where)
    except BenchError as err:
        problems.append((BAD_LABEL, task.label_where, _strip_where(err, task.label_where)))
        return _PairResult(problems)
    values = _present_values(label)
    bad = [int(v) for v in values if not (0 <= v < task.num_classes or v == task.ignore_index)]
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        problems.append((
            LABEL_VALUES,
            task.label_where,
            f"label values {shown} are outside the classes 0..{task.num_classes - 1} and the ignore value {task.ignore_index}",
        ))
    if image_hw is not None and tuple(label.shape) != tuple(image_hw):
        problems.append((
            SIZE_MISMATCH,
            task.label_where,
            f"label is {label.shape[1]}x{label.shape[0]} (WxH) but its image {task.image_where} is {image_hw[1]}x{image_hw[0]}",
        ))
    counts, ignored = value_counts(label, task.num_classes, task.ignore_index)
    return _PairResult(problems, label_digest(task.key, label), counts, ignored)


Progress = Callable[[int, int], None]
"""Called with (pairs done, pairs in all) while a set is checked."""


def _run(tasks: list[_PairTask], workers: int | None, progress: Progress | None) -> list[_PairResult]:
    if workers is None:
        workers = 1 if len(tasks) < _SERIAL_BELOW else min(os.cpu_count() or 1, _MAX_WORKERS)
    results = []
    if workers <= 1:
        for task in tasks:
            results.append(_inspect_pair(task))
            if progress:
                progress(len(results), len(tasks))
        return results
    chunksize = max(1, min(64, len(tasks) // (workers * 4)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(_inspect_pair, tasks, chunksize=chunksize):
            results.append(result)
            if progress:
                progress(len(results), len(tasks))
    return results


def _folder_tasks(eval_set: EvalSet, root: Path, findings: list[Finding], decode_images: bool) -> list[_PairTask] | None:
    scan = scan_pairs(eval_set, root)
    for folder in scan.missing_dirs:
        findings.append(Finding(eval_set.name, MISSING_DIR, str(folder), f"folder does not exist; prepare with `bench prepare {eval_set.spec.name}` or fix --data-root"))
    if scan.missing_dirs:
        return None
    for path in scan.labels_without_images:
        findings.append(Finding(eval_set.name, UNPAIRED_LABEL, str(path), f"label has no image '<name>{eval_set.image_ext}' under {scan.image_root}"))
    if eval_set.spec.data.images_without_labels != "skip":
        for path in scan.images_without_labels:
            findings.append(Finding(eval_set.name, UNPAIRED_IMAGE, str(path), f"image has no label '<name>{eval_set.label_ext}' under {scan.label_root}"))
    if not scan.keys:
        findings.append(Finding(eval_set.name, NO_FILES, str(scan.image_root), f"no '*{eval_set.image_ext}' image pairs with a '*{eval_set.label_ext}' label under {scan.label_root}"))
    return [
        _PairTask(key, image, str(image), label, str(label), eval_set.num_classes, eval_set.ignore_index, decode_images)
        for key, image, label in zip(scan.keys, scan.images, scan.labels)
    ]


def _export_tasks(eval_set: EvalSet, directory: Path, decode_images: bool) -> list[_PairTask]:
    exported = ExportedEvalSet(eval_set, directory)
    mtime = (directory / EXPORT_MARKER).stat().st_mtime_ns
    rows = [_ExportRow(str(directory), mtime, i) for i in range(len(exported))]
    return [
        _PairTask(exported.names[i], row, exported.image_location(i), row, exported.label_location(i),
                  eval_set.num_classes, eval_set.ignore_index, decode_images)
        for i, row in enumerate(rows)
    ]


def inspect_eval_set(
    eval_set: EvalSet,
    data_root: str | Path,
    *,
    expected_count: int | None = None,
    workers: int | None = None,
    decode_images: bool = False,
    progress: Progress | None = None,
) -> SetCheck:
    """Every problem found with `eval_set` under `data_root` (a MESS layout or an export), the
    sanity warnings of its labels, and their statistics.

    `expected_count` overrides the expected number of pairs (default: see `expected_image_count`).
    `workers`: processes decoding labels (default: one per core, up to 8, for 64 pairs or more).
    The spec's recorded fingerprint and pixel counts are compared only where the whole real split is
    expected (`num_images` pairs, not a synthetic suite).
    """
    root = Path(data_root)
    findings: list[Finding] = []
    try:
        export = find_export(eval_set, root)
    except BenchError as err:
        return SetCheck([Finding(eval_set.name, BAD_EXPORT, str(root / eval_set.name), err.message)])
    if export is not None:
        tasks = _export_tasks(eval_set, export, decode_images)
    else:
        tasks = _folder_tasks(eval_set, root, findings, decode_images)
        if tasks is None:
            return SetCheck(findings)
    if expected_count is None:
        expected_count, origin = expected_image_count(eval_set, root)
    else:
        origin = "the expected count given"
    if len(tasks) != expected_count:
        where = export if export is not None else root / eval_set.image_dir
        findings.append(Finding(eval_set.name, COUNT, str(where), f"{len(tasks)} image/label pairs, expected {expected_count} ({origin})"))
    stats: LabelStats | None = LabelStats(eval_set.num_classes)
    for task, result in zip(tasks, _run(tasks, workers, progress)):
        findings.extend(Finding(eval_set.name, kind, file, message) for kind, file, message in result.problems)
        if result.digest is None or stats is None:
            stats = None
            continue
        stats.add(task.key, result.digest, result.counts, result.ignored)
    if stats is None or not tasks:
        return SetCheck(findings, [], None)
    # The spec's record describes the whole real split: not a synthetic suite, nor a part of the split.
    compare_record = expected_count == eval_set.spec.num_images and synthetic_count(root, eval_set.name) is None
    findings.extend(_label_changes(eval_set, root, export, tasks, stats, compare_record))
    pattern = binary_ignore_pattern(eval_set, stats.class_pixel_counts, stats.ignore_pixel_count)
    if pattern is not None:
        findings.append(Finding(eval_set.name, LABEL_PATTERN, str(export or root / eval_set.label_dir),
                                pattern.removeprefix(f"{eval_set.name}: ")))
    return SetCheck(findings, label_warnings(eval_set, stats.class_pixel_counts, stats.ignore_pixel_count), stats)


def _label_changes(
    eval_set: EvalSet, root: Path, export: Path | None, tasks: list[_PairTask], stats: LabelStats, compare_record: bool
) -> list[Finding]:
    """Labels that differ from the manifest written at preparation, and from the spec's record."""
    findings = []
    reference = read_manifest(eval_set, root) if export is None else None
    if reference is not None:
        where = {task.key: task.label_where for task in tasks}
        label_root = root / eval_set.label_dir
        for key, what in manifest_differences(reference, stats.digests):
            file = where.get(key, str(label_root / f"{key}{eval_set.label_ext}"))
            findings.append(Finding(eval_set.name, LABEL_CHANGED, file, f"{what} ({manifest_path(eval_set, root).name})"))
    if compare_record:
        for difference in record_differences(eval_set, stats):
            findings.append(Finding(
                eval_set.name, LABEL_RECORD, str(export or root / eval_set.label_dir),
                f"{difference}; the prepared labels are not the ones the spec describes (re-prepare them)",
            ))
    return findings


def check_eval_set(
    eval_set: EvalSet,
    data_root: str | Path,
    *,
    expected_count: int | None = None,
    workers: int | None = None,
    decode_images: bool = False,
) -> list[Finding]:
    """The findings of :func:`inspect_eval_set`; [] if none."""
    return inspect_eval_set(
        eval_set, data_root, expected_count=expected_count, workers=workers, decode_images=decode_images
    ).findings
