"""Evaluation sets as torch Datasets: the common interface, and the MESS folder layout.

An item is ``{"image": uint8 (H, W, 3), "label": int64 (H, W), "name": key}``. Scoring code that
needs only labels calls `read_label(i)` and never decodes the image. Datasets hold only paths and
names, so they pickle cheaply into DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from catseg_bench.data.decode import decode_image, decode_label
from catseg_bench.data.pairing import require_pairs, scan_pairs
from catseg_bench.errors import BenchError
from catseg_bench.specs import EvalSet


class EvalSetDataset(Dataset):
    """One evaluation set, wherever it is stored. Subclasses read the bytes; this class decodes them."""

    source_kind = "abstract"

    def __init__(self, eval_set: EvalSet, names: list[str]):
        self.eval_set = eval_set
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        image, label = self.read_image(index), self.read_label(index)
        if label.shape != image.shape[:2]:
            raise BenchError(
                f"{self.label_location(index)}: label is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
                f"{self.image_location(index)} is {image.shape[1]}x{image.shape[0]}; labels must have their image's "
                f"size (re-prepare the dataset; `bench datasets check {self.eval_set.spec.name}` lists every such pair)"
            )
        return {"image": image, "label": label, "name": self.names[index]}

    def read_image(self, index: int) -> np.ndarray:
        return decode_image(self.image_source(index), self.image_location(index))

    def read_label(self, index: int) -> np.ndarray:
        return decode_label(self.label_source(index), self.label_location(index))

    def image_source(self, index: int) -> Path | bytes:
        """The image file (path) or its stored bytes."""
        raise NotImplementedError

    def label_source(self, index: int) -> Path | bytes:
        raise NotImplementedError

    def image_path(self, index: int) -> Path | None:
        """The image file on disk; None when the set is read from a Hugging Face export."""
        raise NotImplementedError

    def label_path(self, index: int) -> Path | None:
        raise NotImplementedError

    def image_location(self, index: int) -> str:
        """Where the image is, for messages: a path, or ``export_dir[name]``."""
        raise NotImplementedError

    def label_location(self, index: int) -> str:
        raise NotImplementedError


class FolderEvalSet(EvalSetDataset):
    """The MESS-prepared layout under a data root, read as it is (see `catseg_bench.data.pairing`)."""

    source_kind = "folder"

    def __init__(self, eval_set: EvalSet, data_root: Path):
        scan = require_pairs(eval_set, scan_pairs(eval_set, Path(data_root)))
        super().__init__(eval_set, scan.keys)
        self.data_root = Path(data_root)
        self.image_root = scan.image_root
        self.label_root = scan.label_root
        self._images = scan.images
        self._labels = scan.labels
        self.skipped_images = scan.images_without_labels

    def image_source(self, index: int) -> Path:
        return self._images[index]

    def label_source(self, index: int) -> Path:
        return self._labels[index]

    def image_path(self, index: int) -> Path:
        return self._images[index]

    def label_path(self, index: int) -> Path:
        return self._labels[index]

    def image_location(self, index: int) -> str:
        return str(self._images[index])

    def label_location(self, index: int) -> str:
        return str(self._labels[index])
