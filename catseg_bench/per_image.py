"""Per-image pixel counts of an evaluation set: what the bootstrap resamples.

For every image and class c, three int64 counts under the MESS rule of
:mod:`catseg_bench.metrics`: ``tp`` (predicted c where the label is c), ``pred`` (predicted c on a
labelled pixel: predictions on ignore pixels never count) and ``gt`` (labelled c). Summed over the
images they are exactly the confusion matrix's diagonal, its row sums without the ignore column and
its column sums (:func:`margins`), so every dataset-level score can be recomputed from any multiset
of images.

File: ``<out_dir>/<eval set>.per_image.npz`` beside the result JSON (:func:`per_image_path`), written
atomically. Most classes are absent from most images, so only the (image, class) pairs with a
non-zero count are stored: ``image`` and ``class`` indices with their ``tp``, ``pred`` and ``gt``,
plus ``names`` (the images, in sample order) and ``num_classes``. Result files written before these
files existed stay valid; they just have no per-image statistics.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix
from model.common.files import atomic_write_bytes

PER_IMAGE_SUFFIX = ".per_image.npz"
PER_IMAGE_FORMAT = "catseg-bench/per-image"
PER_IMAGE_VERSION = 1
TP, PRED, GT = 0, 1, 2  # rows of one image's (3, K) counts


def per_image_path(out_dir: Path | str, eval_set: str) -> Path:
    return Path(out_dir) / f"{eval_set}{PER_IMAGE_SUFFIX}"


def margins(confusion: np.ndarray) -> np.ndarray:
    """The (3, K) ``tp``, ``pred``, ``gt`` counts of a (K+1)×(K+1) ``[pred, gt]`` confusion matrix.

    ``pred`` leaves out column K (ignore pixels), ``gt`` keeps row K: the same margins as
    :func:`catseg_bench.metrics.compute_scores`.
    """
    matrix = np.asarray(confusion)
    k = matrix.shape[0] - 1
    return np.stack([np.diagonal(matrix)[:k], matrix[:k, :k].sum(axis=1), matrix[:, :k].sum(axis=0)]).astype(np.int64)


def image_confusion(pred, gt, num_classes: int, ignore_index: int, device="cpu", *, image: str = "?",
                    label: str | None = None) -> ConfusionMatrix:
    """The confusion matrix of one image (checked as :meth:`ConfusionMatrix.update` checks it, errors
    naming `image` and the `label` file); merge it into the set's matrix and keep its :func:`margins`
    as the image's counts."""
    single = ConfusionMatrix(num_classes, ignore_index, device)
    single.update(pred, gt, image=image, label=label)
    return single


class PerImageRecorder:
    """Collects the counts of one image after another (cheap appends; :meth:`stats` stacks them)."""

    def __init__(self, num_classes: int, start: "PerImageStats | None" = None):
        self.num_classes = num_classes
        self._names: list[str] = list(start.names) if start else []
        self._rows: list[np.ndarray] = list(start.counts) if start else []

    def __len__(self) -> int:
        return len(self._names)

    def add(self, name: str, confusion: np.ndarray) -> None:
        self._names.append(name)
        self._rows.append(margins(confusion))

    def stats(self) -> "PerImageStats":
        if not self._rows:
            return PerImageStats.empty(self.num_classes)
        return PerImageStats(tuple(self._names), np.stack(self._rows))


@dataclass(frozen=True)
class PerImageStats:
    """``counts[i]`` is image ``names[i]``'s (3, K) ``tp``/``pred``/``gt`` row block."""

    names: tuple[str, ...]
    counts: np.ndarray  # (N, 3, K) int64

    def __post_init__(self) -> None:
        if self.counts.ndim != 3 or self.counts.shape[1] != 3 or self.counts.shape[0] != len(self.names):
            raise ValueError(f"counts of shape {self.counts.shape} do not fit {len(self.names)} images (N, 3, K)")

    @classmethod
    def empty(cls, num_classes: int) -> "PerImageStats":
        return cls((), np.zeros((0, 3, num_classes), dtype=np.int64))

    @property
    def num_classes(self) -> int:
        return self.counts.shape[2]

    @property
    def tp(self) -> np.ndarray:
        return self.counts[:, TP]

    @property
    def pred(self) -> np.ndarray:
        return self.counts[:, PRED]

    @property
    def gt(self) -> np.ndarray:
        return self.counts[:, GT]

    def totals(self) -> np.ndarray:
        """The (3, K) sums over the images: :func:`margins` of the set's confusion matrix."""
        return self.counts.sum(axis=0)

    def matches(self, confusion: np.ndarray) -> bool:
        """Whether these counts add up to `confusion`'s margins (same classes, same pixels)."""
        expected = margins(confusion)
        return expected.shape == (3, self.num_classes) and bool(np.array_equal(self.totals(), expected))

    def concat(self, other: "PerImageStats") -> "PerImageStats":
        return PerImageStats(self.names + other.names, np.concatenate([self.counts, other.counts]))

    def reordered(self, names: Sequence[str], where: str) -> "PerImageStats":
        """The same images in the order of `names` (which must be exactly this set's images)."""
        if tuple(names) == self.names:
            return self
        position = {name: i for i, name in enumerate(self.names)}
        if len(position) != len(names) or any(n not in position for n in names):
            raise BenchError(f"{where}: the two runs did not score the same images; compare runs of the same eval set")
        return PerImageStats(tuple(names), self.counts[[position[n] for n in names]])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The sparse arrays of the file format (also embedded in a run's partial state)."""
        image, klass = np.nonzero(self.counts.any(axis=1))
        values = self.counts[image, :, klass]
        return {
            "format": np.array(PER_IMAGE_FORMAT),
            "version": np.array(PER_IMAGE_VERSION),
            "names": np.array(self.names, dtype=str),
            "num_classes": np.array(self.num_classes, dtype=np.int64),
            "image": image.astype(np.int64),
            "class": klass.astype(np.int64),
            "tp": values[:, TP].astype(np.int64),
            "pred": values[:, PRED].astype(np.int64),
            "gt": values[:, GT].astype(np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays, where: str) -> "PerImageStats":
        try:
            if str(arrays["format"]) != PER_IMAGE_FORMAT or int(arrays["version"]) != PER_IMAGE_VERSION:
                raise BenchError(f"{where}: not a {PER_IMAGE_FORMAT} v{PER_IMAGE_VERSION} file; re-run the evaluation")
            names = tuple(str(n) for n in arrays["names"])
            counts = np.zeros((len(names), 3, int(arrays["num_classes"])), dtype=np.int64)
            image, klass = arrays["image"], arrays["class"]
            for row, key in ((TP, "tp"), (PRED, "pred"), (GT, "gt")):
                counts[image, row, klass] = arrays[key]
        except (KeyError, ValueError, IndexError) as err:
            raise BenchError(f"{where}: damaged per-image statistics ({err}); re-run the evaluation") from None
        return cls(names, counts)

    def save(self, path: Path | str) -> Path:
        atomic_write_bytes(Path(path), self.to_bytes())
        return Path(path)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.to_arrays())
        return buffer.getvalue()


def load_per_image(path: Path | str) -> PerImageStats:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return PerImageStats.from_arrays(arrays, str(path))
    except FileNotFoundError:
        raise BenchError(f"{path}: per-image statistics are missing; re-run this evaluation to get them") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise BenchError(f"{path}: unreadable per-image statistics ({err}); re-run the evaluation") from None
