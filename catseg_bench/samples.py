"""Qualitative samples (`bench run --save-samples N`): a few images per set with label and prediction.

The N images of a set are chosen by name alone (the N smallest sha256 digests of the image names), so
the choice is the same in every run, under any torchrun sharding and after a resume, and two models
show the same images. Each sample is one file, ``<result dir>/samples/<eval set>/<digest>.npz``,
written atomically as soon as its image is scored: a thumbnail (longest side at most
:data:`THUMBNAIL_SIDE`, the label and prediction shrunk with nearest-neighbour sampling) and what
produced it (spec hash, model, checkpoint, settings). Readers keep only the samples of the run a
result file describes (:func:`load_samples`).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from catseg_bench.results import Result, canonical_settings
from model.common.files import atomic_write_bytes

SAMPLES_DIR = "samples"
THUMBNAIL_SIDE = 256


@dataclass(frozen=True)
class Sample:
    name: str
    image: np.ndarray  # (h, w, 3) uint8
    label: np.ndarray  # (h, w) int64, the ignore value kept
    prediction: np.ndarray  # (h, w) int64


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def choose_samples(names: Sequence[str], count: int) -> set[str]:
    """The `count` names with the smallest sha256 digests."""
    return set(sorted(names, key=_digest)[:count])


def samples_dir(result_dir: Path | str, eval_set: str) -> Path:
    return Path(result_dir) / SAMPLES_DIR / eval_set


def _shrink(array: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    if array.ndim == 2:
        return np.asarray(Image.fromarray(array.astype(np.int32), mode="I").resize(size, resample)).astype(np.int64)
    return np.asarray(Image.fromarray(array).resize(size, resample))


def thumbnail(image: np.ndarray, label: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, ...]:
    """The three arrays at most THUMBNAIL_SIDE on the longest side (labels by nearest neighbour)."""
    height, width = label.shape
    scale = min(1.0, THUMBNAIL_SIDE / max(height, width))
    if scale == 1.0:
        return image, label.astype(np.int64), prediction.astype(np.int64)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return (_shrink(image, size, Image.Resampling.BILINEAR), _shrink(label, size, Image.Resampling.NEAREST),
            _shrink(prediction, size, Image.Resampling.NEAREST))


def save_sample(
    result_dir: Path | str,
    eval_set: str,
    name: str,
    *,
    image: np.ndarray,
    label: np.ndarray,
    prediction: np.ndarray,
    provenance: Mapping[str, Any],
) -> Path:
    """Write one sample; `provenance` holds ``spec_hash``, ``model_id``, ``checkpoint_sha256``, ``settings``."""
    small_image, small_label, small_prediction = thumbnail(image, np.asarray(label), np.asarray(prediction))
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        name=np.array(name),
        provenance=np.array(json.dumps(_provenance_key(provenance))),
        image=small_image.astype(np.uint8),
        label=small_label,
        prediction=small_prediction,
    )
    path = samples_dir(result_dir, eval_set) / f"{_digest(name)[:24]}.npz"
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _provenance_key(provenance: Mapping[str, Any]) -> list:
    return [provenance["spec_hash"], provenance["model_id"], provenance["checkpoint_sha256"],
            canonical_settings(provenance["settings"])]


def load_samples(result: Result) -> list[Sample]:
    """The samples saved by the run that wrote `result`, sorted by image name (unreadable files and
    samples of other runs are left out)."""
    folder = samples_dir(result.path.parent, result.eval_set)
    wanted = json.dumps(_provenance_key({"spec_hash": result.spec_hash, "model_id": result.model_id,
                                         "checkpoint_sha256": result.checkpoint_sha256, "settings": result.settings}))
    samples = []
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["provenance"]) != wanted:
                    continue
                samples.append(Sample(str(saved["name"]), saved["image"], saved["label"], saved["prediction"]))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            continue
    return sorted(samples, key=lambda s: s.name)
