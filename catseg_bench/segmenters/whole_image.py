"""The shared shell of segmenters whose model package runs one whole image per forward (SAN, ZSSeg
and the two-stage MaskFormer family): build the net (seeded random weights for `--checkpoint none`),
embed the classes once per set, resize in the DataLoader workers, predict labels or scores per image
in the chosen precision.

A subclass names its model package (`model_package`, exporting `prepare_image`, `predict_labels`,
`predict_scores`), builds its net (`create_net`), turns class names into what its predict
functions take (`class_inputs`) and lists the settings that change its numbers (`settings`).
`MaskFormerSegmenter` does the first two, and the settings they share, for the MaskFormer family.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from catseg_bench.errors import BenchError
from catseg_bench.segmenters import check_precision
from catseg_bench.segmenters.catseg import UNTRAINED, RegisteredWeights
from model.weights import DEFAULT_TAG_ALIAS

if TYPE_CHECKING:
    import numpy as np
    import torch


class WholeImageSegmenter(RegisteredWeights):
    model_package: str  # e.g. "model.san"

    def __init__(self, variant: str, *, checkpoint: str | None = None, device: Any = "cpu", precision: str = "fp32",
                 seed: int = 0):
        import torch

        from model.checkpoint import CheckpointError

        check_precision(precision)
        source = DEFAULT_TAG_ALIAS if checkpoint is None else checkpoint
        self.untrained = source == UNTRAINED
        self.init_seed = seed if self.untrained else None  # random but seeded: same network in every process
        self.device = torch.device(device)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net = self.create_net(variant, None if self.untrained else source, self.device)
        except CheckpointError as err:
            raise BenchError(f"{variant}: {err}") from None
        self.model_id = variant
        self.checkpoint_sha256 = self.net.checkpoint_sha256
        self.precision = precision
        self.classes: torch.Tensor | None = None

    def create_net(self, variant: str, checkpoint: str | None, device: torch.device):
        raise NotImplementedError

    def class_inputs(self, class_names: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _common_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"precision": self.precision}
        if self.init_seed is not None:
            settings["random_init_seed"] = self.init_seed
        return settings

    def _package(self):
        return importlib.import_module(self.model_package)

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        with self._precision():
            self.classes = self.class_inputs(list(class_names))

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        return self._package().prepare_image(self.net, image)

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        predict_labels = self._package().predict_labels
        with self._precision():
            return [predict_labels(self.net, image, self.classes, size).cpu() for image, size in zip(images, original_sizes)]

    def predict_scores(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Per-class semantic scores (T, H, W) float32 (sums over the mask proposals of class
        probability x mask probability; not normalised over classes)."""
        predict_scores = self._package().predict_scores
        with self._precision():
            return [predict_scores(self.net, image, self.classes, size).float().cpu()
                    for image, size in zip(images, original_sizes)]

    def _precision(self):
        from model.inference import precision_context

        return precision_context(self.device, self.precision)


class MaskFormerSegmenter(WholeImageSegmenter):
    """The two-stage MaskFormer family (ZSSeg, OVSeg, ZegFormer): the net is built by the package's
    `create_function` and embeds the class names itself; its config's `maskformer` part gives the
    settings they share (`_maskformer_settings`)."""

    create_function: str  # e.g. "create_zsseg", in `model_package`

    def create_net(self, variant: str, checkpoint: str | None, device: torch.device):
        return getattr(self._package(), self.create_function)(variant, checkpoint=checkpoint, device=device)

    def class_inputs(self, class_names: list[str]) -> torch.Tensor:
        """The class text embeddings, as the net's predict functions take them."""
        return self.net.class_embeddings(class_names)

    def _maskformer_settings(self) -> dict[str, Any]:
        config = self.net.config
        maskformer = config.maskformer
        return {
            "protocol": "whole image",
            "short_side": config.test_short_side,
            "max_side": config.test_max_side,
            "size_divisibility": maskformer.size_divisibility,
            "num_queries": maskformer.predictor.num_queries,
            "pixel_mean": list(maskformer.pixel_mean),
            "pixel_std": list(maskformer.pixel_std),
        }
