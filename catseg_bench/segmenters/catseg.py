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

    def __init__(self, variant: str, compile: bool = False, all_classes: bool = False, *, checkpoint: str | None = None,
                 device: Any = "cpu", precision: str = "fp32", mode: str = "sliding", seed: int = 0):
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
        # Above pad_len (256) classes the official inference scores only each view's top 256
        # (model.aggregator.Aggregator.class_limit); all_classes=true lifts that: not the official
        # protocol, so it is part of the settings and off by default.
        self.all_classes = all_classes
        if all_classes:
            self.net.aggregator.class_limit = None
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
        if self.all_classes:
            settings["all_classes"] = True
        return settings

    def set_warnings(self) -> list[str]:
        """What a reader of this set's number must know about how it was made: above 256 classes
        (A-847, PC-459) each view scores only its 256 most CLIP-similar classes."""
        limit, count = self.net.aggregator.class_limit, int(self.class_embeds.shape[0])
        if limit is None or count <= limit:
            return []
        return [f"{self.model_id} scored at most {limit} of the {count} classes per view: each view keeps the {limit} "
                f"classes most similar to it under CLIP and gives the others probability ~0, as the official CAT-Seg "
                f"inference does (its {count}-class numbers are made so); --model-args all_classes=true scores every "
                f"class (not the official protocol)"]

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
