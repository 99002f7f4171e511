"""Pair the images and labels of an evaluation set in the MESS-prepared layout.

As in MESS's ``load_sem_seg``, a file's *key* is its path relative to the image (or label) folder with
the spec's suffix stripped (``image_ext``/``label_ext``, which may be a whole name ending such as
``_rgb_anon.png``; matching is case-sensitive, so ``.PNG`` only matches ``.PNG``). Images and labels
pair by key and are ordered by key. Folders are searched recursively; hidden files and folders
(``.DS_Store``, macOS ``._*`` copies) are not data, and a label folder nested inside the image folder
(or the reverse) is not searched for the other kind.

Unlike MESS, which silently falls back to the intersection when the counts differ, an unpaired file is
an error naming it, except images without labels when the spec says ``images_without_labels = "skip"``
(CWFID keeps all 60 field images beside the 21 labelled test images).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from catseg_bench.errors import BenchError
from catseg_bench.specs import EvalSet

_SHOWN_FILES = 5


@dataclass
class PairScan:
    """What is on disk for one evaluation set: the pairs, and every file that did not pair."""

    image_root: Path
    label_root: Path
    keys: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    labels: list[Path] = field(default_factory=list)
    images_without_labels: list[Path] = field(default_factory=list)
    labels_without_images: list[Path] = field(default_factory=list)
    missing_dirs: list[Path] = field(default_factory=list)


def files_by_key(root: Path, suffix: str, skip_dirs: tuple[Path, ...] = ()) -> dict[str, Path]:
    """Files under `root` whose name ends with `suffix`, by relative path without the suffix."""
    found: dict[str, Path] = {}
    skipped = {os.path.normpath(d) for d in skip_dirs}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and os.path.normpath(os.path.join(dirpath, d)) not in skipped
        )
        for filename in filenames:
            if filename.startswith(".") or not filename.endswith(suffix) or filename == suffix:
                continue
            path = Path(dirpath) / filename
            key = path.relative_to(root).as_posix()[: -len(suffix)]
            found[key] = path
    return found


def scan_pairs(eval_set: EvalSet, data_root: Path) -> PairScan:
    """Pair files by key; never raises for what it finds (see `require_pairs`)."""
    image_root = Path(data_root) / eval_set.image_dir
    label_root = Path(data_root) / eval_set.label_dir
    scan = PairScan(image_root, label_root)
    scan.missing_dirs = [d for d in (image_root, label_root) if not d.is_dir()]
    if scan.missing_dirs:
        return scan
    images = files_by_key(image_root, eval_set.image_ext, skip_dirs=(label_root,))
    labels = files_by_key(label_root, eval_set.label_ext, skip_dirs=(image_root,))
    scan.keys = sorted(images.keys() & labels.keys())
    scan.images = [images[k] for k in scan.keys]
    scan.labels = [labels[k] for k in scan.keys]
    scan.images_without_labels = [images[k] for k in sorted(images.keys() - labels.keys())]
    scan.labels_without_images = [labels[k] for k in sorted(labels.keys() - images.keys())]
    return scan


def _some(paths: list[Path], root: Path) -> str:
    shown = ", ".join(p.relative_to(root).as_posix() for p in paths[:_SHOWN_FILES])
    more = len(paths) - _SHOWN_FILES
    return shown + (f" and {more} more" if more > 0 else "")


def require_pairs(eval_set: EvalSet, scan: PairScan) -> PairScan:
    """The scan, if it can be evaluated; else a BenchError naming the folder or the unpaired files."""
    where = f"{eval_set.name} ({eval_set.spec.path.name})"
    if scan.missing_dirs:
        raise BenchError(
            f"{scan.missing_dirs[0]}: folder of {where} does not exist; prepare the dataset "
            f"(`bench prepare {eval_set.spec.name}`) or pass the right --data-root"
        )
    if scan.labels_without_images:
        raise BenchError(
            f"{scan.label_root}: {len(scan.labels_without_images)} label(s) of {where} have no image "
            f"'<name>{eval_set.image_ext}' under {scan.image_root}: {_some(scan.labels_without_images, scan.label_root)}; "
            "remove them or fix the spec's data.image_ext"
        )
    if scan.images_without_labels and eval_set.spec.data.images_without_labels != "skip":
        raise BenchError(
            f"{scan.image_root}: {len(scan.images_without_labels)} image(s) of {where} have no label "
            f"'<name>{eval_set.label_ext}' under {scan.label_root}: {_some(scan.images_without_labels, scan.image_root)}; "
            "remove them, fix the spec's data.label_ext, or set data.images_without_labels = \"skip\""
        )
    if not scan.keys:
        raise BenchError(
            f"{scan.image_root}: no '*{eval_set.image_ext}' image with a '*{eval_set.label_ext}' label under "
            f"{scan.label_root} for {where}; check the folders and the spec's data.image_ext/label_ext"
        )
    return scan
