"""Per-image progress of an interrupted evaluation, persisted so a rerun continues where it stopped.

The state of one eval set (per rank under torchrun) is its partial confusion matrix, the per-image
counts and label digests of the images done so far and how many of its samples are done, saved atomically every few
images. It is only reused when the run key (spec hash, model, checkpoint, settings) and the digest
of the ordered sample names still match, so the resumed confusion matrix (and per-image counts)
equal those of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catseg_bench.errors import BenchError
from catseg_bench.per_image import PerImageStats
from model.common.files import atomic_write_bytes

_PER_IMAGE_PREFIX = "per_image_"


@dataclass
class PartialState:
    run_key: str
    names_digest: str
    done: int
    confusion: np.ndarray
    seconds: float
    per_image: PerImageStats | None = None  # None in states saved before per-image counts existed
    label_digests: tuple[str, ...] | None = None  # of the images done (None in states saved before they were kept)


def names_digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def partial_path(result_dir: Path, eval_set: str, rank: int = 0, world_size: int = 1) -> Path:
    return Path(result_dir) / f".{eval_set}.partial-{rank}of{world_size}.npz"


def load_partial(path: Path, run_key: str, digest: str) -> PartialState | None:
    """The saved state at `path` if it belongs to this run, else None (a foreign or damaged state is
    ignored: the set is then evaluated from its first image)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            state = PartialState(
                run_key=str(saved["run_key"]),
                names_digest=str(saved["names_digest"]),
                done=int(saved["done"]),
                confusion=saved["confusion"].astype(np.int64),
                seconds=float(saved["seconds"]),
                per_image=_per_image(saved, path),
                label_digests=tuple(str(d) for d in saved["label_digests"]) if "label_digests" in saved.files else None,
            )
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, BenchError):
        return None
    if state.run_key != run_key or state.names_digest != digest:
        return None
    counts = state.per_image
    if counts is not None and (len(counts.names) != state.done or not counts.matches(state.confusion)):
        return None  # per-image counts that do not describe the saved matrix: start the set again
    if state.label_digests is not None and len(state.label_digests) != state.done:
        return None
    return state


def _per_image(saved, path: Path) -> PerImageStats | None:
    arrays = {key[len(_PER_IMAGE_PREFIX):]: saved[key] for key in saved.files if key.startswith(_PER_IMAGE_PREFIX)}
    return PerImageStats.from_arrays(arrays, str(path)) if arrays else None


def save_partial(path: Path, state: PartialState) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        run_key=np.array(state.run_key),
        names_digest=np.array(state.names_digest),
        done=np.array(state.done),
        confusion=state.confusion,
        seconds=np.array(state.seconds),
        **({} if state.label_digests is None else {"label_digests": np.array(state.label_digests, dtype="<U64")}),
        **({} if state.per_image is None else
           {f"{_PER_IMAGE_PREFIX}{key}": value for key, value in state.per_image.to_arrays().items()}),
    )
    atomic_write_bytes(path, buffer.getvalue())


def clear_partial(path: Path) -> None:
    path.unlink(missing_ok=True)
