"""The training sample stream: which image each step sees, augmented reproducibly.

Training consumes one endless stream of *positions* 0, 1, 2, ...: step `s` of a global batch `B`
takes positions `s*B ... s*B + B - 1`, and with `W` processes rank `r` takes the `r`-th slice of
`B/W` of them. Position `p` is image `perm_e[p mod N]` of epoch `e = p // N`, where `perm_e` is a
permutation seeded by (seed, e), and its augmentation draws from a generator seeded by (seed, p).
A sample therefore depends only on the seed and its position: resuming at step `s` continues with
exactly the batches an uninterrupted run would have seen, whatever the number of data-loader
workers, and without saving any data-loader state.
"""

from __future__ import annotations

from typing import Iterator, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from model.training.augment import AugmentConfig, augment

_PERMUTATION_STREAM = 0
_AUGMENT_STREAM = 1


class SampleSource(Protocol):
    """Image/label pairs: `read_image(i)` (H, W, 3) uint8 RGB, `read_label(i)` (H, W) integer train IDs.

    `catseg_bench.data.EvalSetDataset` is one; the synthetic demo set is another.
    """

    def __len__(self) -> int: ...

    def read_image(self, index: int) -> np.ndarray: ...

    def read_label(self, index: int) -> np.ndarray: ...


class TrainingDataError(ValueError):
    """A training image or label that cannot be used (wrong values or sizes); names the file."""


class AugmentedStream(Dataset):
    """Map-style dataset over stream positions: item `p` is the augmented sample at position `p`."""

    def __init__(self, source: SampleSource, config: AugmentConfig, num_classes: int, seed: int):
        if len(source) == 0:
            raise TrainingDataError("the training set is empty")
        self.source = source
        self.config = config
        self.num_classes = num_classes
        self.seed = seed
        self._permutation: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return 2**62  # endless; positions are addressed by the sampler

    def sample_index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.source))
        if self._permutation is None or self._permutation[0] != epoch:
            rng = np.random.default_rng([self.seed, _PERMUTATION_STREAM, epoch])
            self._permutation = (epoch, rng.permutation(len(self.source)))
        return int(self._permutation[1][offset])

    def _where(self, index: int) -> str:
        locate = getattr(self.source, "label_location", None)
        return locate(index) if callable(locate) else f"training sample {index}"

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.sample_index(position)
        image = self.source.read_image(index)
        label = np.asarray(self.source.read_label(index)).astype(np.int64)
        if image.shape[:2] != label.shape:
            raise TrainingDataError(
                f"{self._where(index)}: label size {label.shape} differs from its image {image.shape[:2]}; re-prepare it"
            )
        bad = (label < 0) | ((label >= self.num_classes) & (label != self.config.ignore_index))
        if bad.any():
            values = np.unique(label[bad])[:5].tolist()
            raise TrainingDataError(
                f"{self._where(index)}: label values {values} are neither train IDs 0..{self.num_classes - 1} "
                f"nor ignore {self.config.ignore_index}; re-run the dataset preparation"
            )
        rng = np.random.default_rng([self.seed, _AUGMENT_STREAM, position])
        image, label = augment(image, label, self.config, rng)
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(label)


class StreamSampler(Sampler[int]):
    """The positions this rank reads for steps `start_step ... end_step - 1`, in order."""

    def __init__(self, start_step: int, end_step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by the {world_size} processes")
        self.start_step, self.end_step = start_step, end_step
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size

    @property
    def per_rank(self) -> int:
        return self.batch_size // self.world_size

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.per_rank

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.end_step):
            first = step * self.batch_size + self.rank * self.per_rank
            yield from range(first, first + self.per_rank)
