"""What the labels of an evaluation set hold: a fingerprint, class histograms, and the warnings they raise.

**Fingerprint.** Each label map gets a digest of its *decoded* array: its pairing key, its shape and
its values as little-endian int64 (so a PNG re-encoded by another library, or stored as 16-bit,
keeps its digest; only the pixels count). The set's fingerprint is the sha256 of the sorted
``key<TAB>digest`` lines, so a changed, added, removed or renamed label changes it.

**Where digests are kept.** A spec records only the set's fingerprint and its pixel counts
(``label_fingerprint``, ``class_pixel_counts``, ``ignore_pixel_count``): small, reviewable, and
enough to prove that a preparation reproduced the recorded data. To say *which* image changed
later, `bench prepare` writes the per-image digests beside the labels, in
``<label_dir>/.bench-label-digests.json`` (a hidden file, never taken for a label), once the set
verified. `bench datasets check` compares the labels on disk with that manifest (naming every
label that changed, appeared or vanished since preparation) and with the spec's record.
A preparation whose result differs from the spec can name the classes whose counts differ, not
the images (the spec holds no per-image digests).

**Sanity warnings** (not errors: a user's split may legitimately lack a class) name the set and
the class: a class of interest that never occurs in the whole split, ignore covering more than
half of all pixels. The one pattern that is never a correct label, a binary set holding only
background and ignore (0/255 masks never divided by 255), is an error instead
(:func:`binary_ignore_pattern`): `bench datasets check` reports it and `bench run` fails that set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from catseg_bench.errors import BenchError
from catseg_bench.files import read_marker
from catseg_bench.specs import EvalSet, LabelRecord
from model.common.files import atomic_write_json

MANIFEST_NAME = ".bench-label-digests.json"
MANIFEST_FORMAT = "catseg-bench/label-digests"
IGNORE_SHARE_WARNING = 0.5


def label_digest(key: str, label: np.ndarray) -> str:
    """sha256 of one decoded label map: its key, its shape and its values (dtype-independent)."""
    digest = hashlib.sha256()
    digest.update(key.encode("utf-8") + b"\0")
    digest.update(("x".join(str(n) for n in label.shape)).encode("ascii") + b"\0")
    digest.update(np.ascontiguousarray(label, dtype="<i8").tobytes())
    return digest.hexdigest()


def set_fingerprint(digests: Mapping[str, str]) -> str:
    """The fingerprint of a whole set from its per-image digests (order-independent)."""
    lines = "".join(f"{key}\t{digests[key]}\n" for key in sorted(digests))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def value_counts(label: np.ndarray, num_classes: int, ignore_index: int) -> tuple[list[int], int]:
    """Pixels of each class 0..K-1 and of the ignore value in one label map."""
    flat = label.ravel()
    counts = np.bincount(flat[(flat >= 0) & (flat < num_classes)].astype(np.int64), minlength=num_classes)
    return [int(c) for c in counts[:num_classes]], int(np.count_nonzero(flat == ignore_index))


@dataclass
class LabelStats:
    """The labels of one evaluation set, summed over its images."""

    num_classes: int
    digests: dict[str, str] = field(default_factory=dict)
    class_pixel_counts: list[int] = field(default_factory=list)
    ignore_pixel_count: int = 0

    def __post_init__(self) -> None:
        if not self.class_pixel_counts:
            self.class_pixel_counts = [0] * self.num_classes

    def add(self, key: str, digest: str, counts: list[int], ignored: int) -> None:
        self.digests[key] = digest
        self.class_pixel_counts = [a + b for a, b in zip(self.class_pixel_counts, counts)]
        self.ignore_pixel_count += ignored

    @property
    def fingerprint(self) -> str:
        return set_fingerprint(self.digests)

    @property
    def total_pixels(self) -> int:
        return sum(self.class_pixel_counts) + self.ignore_pixel_count

    def as_record(self) -> dict:
        """The spec fields that record these labels."""
        return {
            "label_fingerprint": self.fingerprint,
            "class_pixel_counts": list(self.class_pixel_counts),
            "ignore_pixel_count": self.ignore_pixel_count,
        }


def binary_ignore_pattern(eval_set: EvalSet, class_pixel_counts: list[int], ignore_pixel_count: int) -> str | None:
    """The error of a binary set whose labels hold only class 0 and ignore: 0/255 masks never divided
    by 255, which would score every foreground pixel as ignore (never a correct label). None when absent."""
    if eval_set.num_classes != 2 or class_pixel_counts[1] != 0 or ignore_pixel_count == 0:
        return None
    return (
        f"{eval_set.name}: labels hold only class 0 ('{eval_set.class_names[0]}') and ignore "
        f"({eval_set.ignore_index}); 0/255 masks not divided by 255 look like this, and would score "
        f"every '{eval_set.class_names[1]}' pixel as ignore; re-prepare the labels "
        f"(`bench prepare {eval_set.spec.name}`) so that the foreground is class 1"
    )


def label_warnings(eval_set: EvalSet, class_pixel_counts: list[int], ignore_pixel_count: int) -> list[str]:
    """Warnings about a split's class histogram, each naming the set (and the class). The 0/255
    pattern of a binary set is an error, not a warning (:func:`binary_ignore_pattern`)."""
    warnings = []
    total = sum(class_pixel_counts) + ignore_pixel_count
    if total == 0:
        return warnings
    if binary_ignore_pattern(eval_set, class_pixel_counts, ignore_pixel_count) is None:
        for index in eval_set.classes_of_interest:
            if class_pixel_counts[index] == 0:
                warnings.append(
                    f"{eval_set.name}: class {index} '{eval_set.class_names[index]}' (of interest) never occurs "
                    "in the whole split"
                )
    if ignore_pixel_count > IGNORE_SHARE_WARNING * total:
        warnings.append(
            f"{eval_set.name}: {100 * ignore_pixel_count / total:.1f}% of all label pixels hold the ignore value "
            f"{eval_set.ignore_index} (more than half); check the label conversion"
        )
    return warnings


def summarised(warnings: list[str] | tuple[str, ...], where: str) -> list[str]:
    """One set's label warnings as one line: the first, and how many more there are and `where` they
    are listed (a set of synthetic or partly labelled data can raise dozens)."""
    if len(warnings) <= 1:
        return list(warnings)
    return [f"{warnings[0]} (and {len(warnings) - 1} more label warnings for this set; {where})"]


def label_histogram(eval_set: EvalSet, confusion: np.ndarray) -> tuple[list[int], int]:
    """Pixels per class and of ignore in the labels a (K+1)x(K+1) ``[pred, gt]`` confusion matrix scored
    (its column sums; column K: ignore)."""
    gt = np.asarray(confusion).sum(axis=0)
    return [int(c) for c in gt[: eval_set.num_classes]], int(gt[eval_set.num_classes])


def confusion_warnings(eval_set: EvalSet, confusion: np.ndarray) -> list[str]:
    """:func:`label_warnings` of the labels a result's confusion matrix scored."""
    return label_warnings(eval_set, *label_histogram(eval_set, confusion))


def record_differences(eval_set: EvalSet, stats: LabelStats) -> list[str]:
    """How `stats` differ from what the spec records for `eval_set` (empty when they agree or nothing is recorded)."""
    record: LabelRecord = eval_set.recorded_labels
    where = eval_set.spec.path.name
    out = []
    if record.class_pixel_counts is not None and tuple(stats.class_pixel_counts) != record.class_pixel_counts:
        changed = [
            f"class {i} '{eval_set.class_names[i]}' has {have} pixels, {where} records {want}"
            for i, (have, want) in enumerate(zip(stats.class_pixel_counts, record.class_pixel_counts))
            if have != want
        ]
        out.append("; ".join(changed))
    if record.ignore_pixel_count is not None and stats.ignore_pixel_count != record.ignore_pixel_count:
        out.append(f"{stats.ignore_pixel_count} ignore pixels, {where} records {record.ignore_pixel_count}")
    if record.fingerprint is not None and stats.fingerprint != record.fingerprint:
        out.append(f"label fingerprint {stats.fingerprint[:16]}… differs from label_fingerprint {record.fingerprint[:16]}… in {where}")
    return out


def manifest_path(eval_set: EvalSet, data_root: Path) -> Path:
    return Path(data_root) / eval_set.label_dir / MANIFEST_NAME


def write_manifest(eval_set: EvalSet, data_root: Path, stats: LabelStats) -> Path:
    """Keep the per-image digests beside the labels, so a later check can name a changed label."""
    path = manifest_path(eval_set, data_root)
    atomic_write_json(path, {
        "format": MANIFEST_FORMAT,
        "eval_set": eval_set.name,
        **stats.as_record(),
        "images": dict(sorted(stats.digests.items())),
    })
    return path


def read_manifest(eval_set: EvalSet, data_root: Path) -> dict[str, str] | None:
    """The per-image digests written at preparation time; None when there is no manifest."""
    path = manifest_path(eval_set, data_root)
    fix = "delete it and rerun `bench prepare`"
    document = read_marker(path, MANIFEST_FORMAT, "label digest manifest", fix)
    if document is None:
        return None
    images = document.get("images")
    if not isinstance(images, dict):
        raise BenchError(f"{path}: label digest manifest without an 'images' table; {fix}")
    return {str(k): str(v) for k, v in images.items()}


def manifest_differences(reference: Mapping[str, str], digests: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, what happened) for each label that changed, appeared or vanished since the manifest."""
    out = []
    for key in sorted(reference.keys() | digests.keys()):
        if key not in digests:
            out.append((key, "label was there when the set was prepared and is gone now"))
        elif key not in reference:
            out.append((key, "label was not there when the set was prepared"))
        elif reference[key] != digests[key]:
            out.append((key, "label pixels changed since the set was prepared"))
    return out
