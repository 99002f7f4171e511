"""What the runner evaluates: a segmenter turns a batch of images into class-index maps.

To evaluate another model, write a class with the same four members as :class:`CatSegSegmenter`
and add it to :func:`build_segmenter`; the runner, resume, scoring and tables need nothing else.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

import model as catseg_model
from catseg_bench.errors import BenchError
from model.common.device import PRECISIONS
from model.inference import MODES, predict_labels, resize_short_side


class Segmenter(Protocol):
    model_id: str
    checkpoint_sha256: str | None

    def settings(self) -> dict[str, Any]:
        """Everything about inference that changes the numbers (part of a result's identity)."""

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        """Prepare for one evaluation set's vocabulary (e.g. embed the class names once)."""

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        """Per-image CPU work (e.g. the test-time resize); runs in the DataLoader workers."""

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Class indices (H, W) int64 for each prepared image, at its original size."""


class CatSegSegmenter:
    """CAT-Seg from `model/`: patch inference of the paper, argmax over the sigmoid probabilities."""

    def __init__(self, name: str, checkpoint: str | None, device: torch.device, precision: str, mode: str,
                 init_seed: int = 0):
        if precision not in PRECISIONS:
            raise BenchError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        if mode not in MODES:
            raise BenchError(f"--mode {mode}: choose one of {', '.join(MODES)}")
        # Without a checkpoint the weights are random but seeded: every process (torchrun ranks, a
        # resumed run) builds the same network, and the seed is part of the result's settings.
        self.init_seed = init_seed if checkpoint is None else None
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                self.net = catseg_model.create_model(name, checkpoint=checkpoint, device=device)
        except catseg_model.CheckpointError as err:
            raise BenchError(str(err)) from None
        self.net.eval()
        self.model_id = name
        self.checkpoint_sha256 = self.net.checkpoint_sha256
        self.precision = precision
        self.mode = mode
        self.class_embeds: torch.Tensor | None = None

    def settings(self) -> dict[str, Any]:
        settings = {"mode": self.mode, "precision": self.precision}
        if self.init_seed is not None:
            settings["random_init_seed"] = self.init_seed
        return settings

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        self.class_embeds = catseg_model.encode_classes(self.net, list(class_names))

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        return resize_short_side(image)

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        return predict_labels(
            self.net, images, self.class_embeds, mode=self.mode, precision=self.precision, original_sizes=original_sizes
        )


def build_segmenter(
    name: str, checkpoint: str | None, device: torch.device, precision: str, mode: str, init_seed: int = 0
) -> Segmenter:
    if name in catseg_model.list_models():
        return CatSegSegmenter(name, checkpoint, device, precision, mode, init_seed)
    known = ", ".join([*catseg_model.list_models(), "random"])
    raise BenchError(f"--model {name}: unknown model; choose one of {known}")
