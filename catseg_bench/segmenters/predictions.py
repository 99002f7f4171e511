"""A folder of saved predictions as a segmenter: `bench score` runs through the same runner as
`bench run` (resume, torchrun sharding, atomic writes) and writes the same result files.

Predictions are single-channel PNGs of class indices (8-bit, or 16-bit for more than 256 classes),
at the label's resolution, named like the labels: ``<pred_dir>/<key>.png`` where ``key`` is the
label's path relative to the spec's label folder with the spec's label suffix removed (the name
`bench run --save-predictions` uses). For a composite dataset (PAXRay-4) each subset has its own
folder, ``<pred_dir>/<subset>/`` (``lungs/``) or ``<pred_dir>/<eval set>/`` (``paxray4.lungs/``,
the layout `bench run` writes); ``flat=True`` reads one subset's PNGs from ``<pred_dir>/`` itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from catseg_bench.errors import BenchError
from catseg_bench.registry import register_segmenter
from catseg_bench.specs import EvalSet
from model.common.files import user_path

_SHOWN = 5


def read_prediction_png(path: Path) -> np.ndarray:
    """A prediction PNG as an integer array; anything but a single-channel index image is an error."""
    from catseg_bench.data.decode import index_array

    try:
        with Image.open(path) as img:
            array = index_array(img)
            if array is not None:
                return array
            mode = img.mode
    except FileNotFoundError:
        raise BenchError(f"{path}: prediction file not found") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise BenchError(f"{path}: prediction is not a readable PNG ({err}); re-export it") from None
    raise BenchError(
        f"{path}: prediction is a {mode} image; predictions must be single-channel PNGs of class indices "
        "(8-bit, or 16-bit for more than 256 classes), not colour renderings"
    )


def prediction_dir(pred_root: Path, eval_set: EvalSet, flat: bool) -> Path:
    """Where the predictions of `eval_set` are (see the module docstring)."""
    if eval_set.subset is None or flat:
        return pred_root
    for candidate in (pred_root / eval_set.subset, pred_root / eval_set.name):
        if candidate.is_dir():
            return candidate
    raise BenchError(
        f"{pred_root}: no folder '{eval_set.subset}/' or '{eval_set.name}/' with the predictions of subset "
        f"{eval_set.subset} of {eval_set.spec.name}; put each subset's PNGs in its own folder"
    )


def _files_digest(folder: Path) -> str:
    """sha256 over every PNG's relative path, size and modification time (a stat per file, no reading)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.png")):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@register_segmenter("predictions")
class PredictionFolder:
    """Scores saved prediction PNGs (class indices, named like the labels) from a folder."""

    checkpoint_sha256 = None

    def __init__(self, pred_dir: Path, model_id: str | None = None, flat: bool = False):
        self.pred_dir = user_path(pred_dir)
        if not self.pred_dir.is_dir():
            raise BenchError(f"{self.pred_dir}: the predictions folder (--pred / pred_dir) is not a folder")
        self.model_id = model_id or self.pred_dir.resolve().name
        self.flat = flat
        self.current: Path | None = None
        self.files_digest = _files_digest(self.pred_dir)

    def settings(self) -> dict[str, Any]:
        # The files' digest makes a result stale (redone, the old one kept aside) when the
        # predictions changed since it was scored; unchanged files resume an interrupted run.
        return {"scored_from": "prediction PNGs", "predictions": str(self.pred_dir.resolve()),
                "files_digest": self.files_digest}

    def begin_eval_set(self, eval_set: EvalSet, names: list[str]) -> None:
        """Find the set's folder and check that every image has its prediction before scoring any."""
        folder = prediction_dir(self.pred_dir, eval_set, self.flat)
        missing = [name for name in names if not (folder / f"{name}.png").is_file()]
        if missing:
            shown = ", ".join(f"{name}.png" for name in missing[:_SHOWN])
            raise BenchError(
                f"{folder}: {len(missing)} of {len(names)} predictions of {eval_set.name} are missing (e.g. {shown}); "
                "name each PNG like its label: <label path without the label suffix>.png"
            )
        self.current = folder

    def prediction_location(self, name: str) -> str:
        """The file of an image's prediction, for messages."""
        assert self.current is not None, "begin_eval_set() comes first"
        return str(self.current / f"{name}.png")

    def read_prediction(self, name: str) -> np.ndarray:
        return read_prediction_png(Path(self.prediction_location(name)))
