"""Training-free CLIP baselines as segmenters: `maskclip`, `sclip`, `clearclip`, `naclip`.

Each runs a plain open_clip CLIP (`clip=ViT-B-16`, `pretrained=openai` by default; any open_clip
ViT name and tag) with its method's defaults from `model.training_free.METHODS`; the keyword
arguments change one knob each, and every knob is in `settings()`. `checkpoint` is the run's
--checkpoint: None uses the tag's own weights (open_clip / huggingface cache), "none" builds
random weights seeded by `seed` (the result is marked untrained), a path loads a local open_clip
state dict. Importing this module loads no torch (the method table is plain data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catseg_bench.errors import BenchError
from catseg_bench.registry import register_segmenter
from catseg_bench.segmenters import check_precision
from model.training_free.methods import METHODS

if TYPE_CHECKING:
    import numpy as np
    import torch


class TrainingFreeSegmenter:
    """One training-free method on one open_clip tower; argmax over its softmax probabilities."""

    def __init__(self, name: str, knobs: dict[str, Any], clip: str, pretrained: str, device: Any, precision: str,
                 checkpoint: str | None, seed: int):
        import torch

        from model.training_free import TowerWeightsError, TrainingFreeCLIP, load_tower

        try:
            method = METHODS[name].with_knobs(**knobs)
        except ValueError as err:
            raise BenchError(f"--model-args for {name}: {err}") from None
        check_precision(precision)
        self.device = torch.device(device)
        try:
            tower = load_tower(clip, pretrained, checkpoint, device=self.device, init_seed=seed)
        except TowerWeightsError as err:
            raise BenchError(str(err)) from None
        self.net = TrainingFreeCLIP(tower.clip, tower.tokenizer, method).to(self.device).eval()
        self.model_id = name
        self.checkpoint_sha256 = tower.weights_sha256
        self.untrained = tower.untrained
        self.init_seed = seed if tower.untrained else None
        self.clip_name = clip
        self.pretrained = pretrained
        self.weights = "random" if tower.untrained else ("tag" if checkpoint is None else "file")
        self.precision = precision
        self.class_embeds: torch.Tensor | None = None

    def settings(self) -> dict[str, Any]:
        from model.training_free.templates import templates_sha256

        method = self.net.method.as_settings()
        settings = {
            "method": method.pop("name"),
            "clip": self.clip_name,
            "pretrained": self.pretrained,
            "weights": self.weights,
            "weights_sha256": self.checkpoint_sha256,
            **method,
            "templates_sha256": templates_sha256(self.net.templates),
            "class_queries": "each class name verbatim, one query",
            "precision": self.precision,
        }
        if self.init_seed is not None:
            settings["random_init_seed"] = self.init_seed
        return settings

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        with self._autocast():
            self.class_embeds = self.net.encode_classes(list(class_names)).float()

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        from model.training_free import resize_for_method

        return resize_for_method(image, self.net.method)

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        labels = []
        for image, size in zip(images, original_sizes):
            with self._autocast():
                logits = self.net.image_logits(image, self.class_embeds, size)
            labels.append(self.net.labels(self.net.probabilities(logits.float())).cpu())
        return labels

    def _autocast(self):
        """bf16 autocast, or TF32 matmuls for tf32 on CUDA (`model.inference.precision_context`)."""
        from model.inference import precision_context

        return precision_context(self.device, self.precision)


@register_segmenter("maskclip")
class MaskCLIPSegmenter(TrainingFreeSegmenter):
    """MaskCLIP (ECCV 2022), training-free: value embeddings of CLIP's last block, whole image."""

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["maskclip"].short_side, crop: int = METHODS["maskclip"].crop,
                 stride: int = METHODS["maskclip"].stride, logit_scale: float = METHODS["maskclip"].logit_scale,
                 prob_threshold: float = METHODS["maskclip"].prob_threshold, *, device: Any = "cpu",
                 precision: str = "fp32", checkpoint: str | None = None, seed: int = 0):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold)
        super().__init__("maskclip", knobs, clip, pretrained, device, precision, checkpoint, seed)


@register_segmenter("sclip")
class SCLIPSegmenter(TrainingFreeSegmenter):
    """SCLIP (ECCV 2024), training-free: correlative self-attention in CLIP's last block."""

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["sclip"].short_side, crop: int = METHODS["sclip"].crop,
                 stride: int = METHODS["sclip"].stride, logit_scale: float = METHODS["sclip"].logit_scale,
                 prob_threshold: float = METHODS["sclip"].prob_threshold, pamr_steps: int = 0, *, device: Any = "cpu",
                 precision: str = "fp32", checkpoint: str | None = None, seed: int = 0):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold, pamr_steps=pamr_steps)
        super().__init__("sclip", knobs, clip, pretrained, device, precision, checkpoint, seed)


@register_segmenter("clearclip")
class ClearCLIPSegmenter(TrainingFreeSegmenter):
    """ClearCLIP (ECCV 2024), training-free: self-self attention, no residual and no MLP in the last block."""

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["clearclip"].short_side, crop: int = METHODS["clearclip"].crop,
                 stride: int = METHODS["clearclip"].stride, logit_scale: float = METHODS["clearclip"].logit_scale,
                 prob_threshold: float = METHODS["clearclip"].prob_threshold, *, device: Any = "cpu",
                 precision: str = "fp32", checkpoint: str | None = None, seed: int = 0):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold)
        super().__init__("clearclip", knobs, clip, pretrained, device, precision, checkpoint, seed)


@register_segmenter("naclip")
class NACLIPSegmenter(TrainingFreeSegmenter):
    """NACLIP (WACV 2025), training-free: key-key attention plus a Gaussian neighbourhood in the last block.

    PAMR runs only with pamr_steps > 0 (NACLIP's own constructor default is 10).
    """

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["naclip"].short_side, crop: int = METHODS["naclip"].crop,
                 stride: int = METHODS["naclip"].stride, logit_scale: float = METHODS["naclip"].logit_scale,
                 prob_threshold: float = METHODS["naclip"].prob_threshold, pamr_steps: int = 0,
                 gaussian_std: float = METHODS["naclip"].gaussian_std, *, device: Any = "cpu",
                 precision: str = "fp32", checkpoint: str | None = None, seed: int = 0):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold, pamr_steps=pamr_steps, gaussian_std=gaussian_std)
        super().__init__("naclip", knobs, clip, pretrained, device, precision, checkpoint, seed)
