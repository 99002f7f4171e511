"""CAT-Seg from `model/`: patch inference of the paper, argmax over the sigmoid probabilities.

One registered name per architecture config (`catseg-b`, `catseg-l`, `catseg-tiny`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.errors import BenchError
from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters import check_precision
from model.configs import CONFIGS
from model.weights import DEFAULT_TAG_ALIAS, default_weights, tags_default_first, weights_licences

if TYPE_CHECKING:
    import numpy as np
    import torch

UNTRAINED = "none"  # --checkpoint none: explicitly untrained (random, seeded) weights


class RegisteredWeights:
    """What `bench models list` shows of a segmenter whose weights tags live in `model.weights`."""

    @staticmethod
    def weights_tags(variant: str) -> list[str]:
        """The variant's published weights tags, its default first."""
        return tags_default_first(variant)

    @staticmethod
    def weights_licences(variant: str) -> dict[str, str]:
        """Tag -> licence of the variant's published weights."""
        return weights_licences(variant)


class CatSegSegmenter(RegisteredWeights):
    """CAT-Seg (CVPR 2024): the paper's patch inference on open_clip towers."""

    def __init__(self, variant: str, compile: bool = False, *, checkpoint: str | None = None, device: Any = "cpu",
                 precision: str = "fp32", mode: str = "sliding", seed: int = 0):
        import torch

        import model as catseg_model
        from model.inference import MODES

        check_precision(precision)
        if mode not in MODES:
            raise BenchError(f"--mode {mode}: choose one of {', '.join(MODES)}")
        source = default_checkpoint(variant) if checkpoint is None else checkpoint
        self.untrained = source == UNTRAINED
        # Untrained weights are random but seeded: every process (torchrun ranks, a resumed run)
        # builds the same network, and the seed is part of the result's settings.
        self.init_seed = seed if self.untrained else None
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net = catseg_model.create_model(
                    variant, checkpoint=None if self.untrained else source, device=torch.device(device)
                )
        except catseg_model.CheckpointError as err:
            raise BenchError(f"{variant}: {err}") from None
        self.net.eval()
        self.compiled = compile
        if compile:  # torch.compile of the per-class aggregator and decoder (`--model-args compile=true`)
            from model.inference import compile_for_inference

            compile_for_inference(self.net)
        self.model_id = variant
        self.checkpoint_sha256 = self.net.checkpoint_sha256
        self.precision = precision
        self.mode = mode
        self.class_embeds: torch.Tensor | None = None

    def settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"mode": self.mode, "precision": self.precision}
        if self.init_seed is not None:
            settings["random_init_seed"] = self.init_seed
        if self.compiled:
            settings["compile"] = True
        return settings

    def auto_batch_size(self, image_size: tuple[int, int]) -> int:
        """Images per forward for `--batch-size auto` (measured on CUDA, 1 on the CPU)."""
        from model.inference import auto_batch_size

        return auto_batch_size(self.net, self.class_embeds, image_size, mode=self.mode, precision=self.precision)

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        from model.catseg import encode_classes

        self.class_embeds = encode_classes(self.net, list(class_names))

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        from model.inference import resize_short_side

        return resize_short_side(image)

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        from model.inference import predict_labels

        return predict_labels(
            self.net, images, self.class_embeds, mode=self.mode, precision=self.precision, original_sizes=original_sizes
        )

    def predict_scores(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """Per-class sigmoid probabilities (T, H, W) float32 at the original sizes."""
        from model.inference import predict_probs

        probs = predict_probs(self.net, images, self.class_embeds, mode=self.mode, precision=self.precision,
                              original_sizes=original_sizes)
        return [p.float().cpu() for p in probs]


def default_checkpoint(variant: str) -> str:
    """What a run without --checkpoint loads: the official weights, or untrained weights for a
    variant that has none published (catseg-tiny)."""
    return DEFAULT_TAG_ALIAS if default_weights(variant) is not None else UNTRAINED


for _name, _config in CONFIGS.items():
    register_segmenter(_name, description=_config.description, variant=_name)(CatSegSegmenter)
