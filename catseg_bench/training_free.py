"""Training-free CLIP baselines as segmenters: MaskCLIP, SCLIP, ClearCLIP and NACLIP.

Each runs a plain open_clip CLIP (`clip=ViT-B-16`, `pretrained=openai` by default; any open_clip
ViT name and tag) with its method's defaults from `model.training_free.METHODS`; the keyword
arguments change one knob each, and every knob is in `settings()`. `checkpoint` is the run's
--checkpoint: None uses the tag's own weights (open_clip / huggingface cache), "none" builds
random weights (the result is marked untrained), a path loads a local open_clip state dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from catseg_bench.errors import BenchError
from model.inference import PRECISIONS
from model.training_free import METHODS, TowerWeightsError, TrainingFreeCLIP, load_tower, resize_for_method
from model.training_free.templates import templates_sha256

RANDOM_INIT_SEED = 0


class TrainingFreeSegmenter:
    """One training-free method on one open_clip tower; argmax over its softmax probabilities."""

    def __init__(self, name: str, knobs: dict[str, Any], clip: str, pretrained: str, device: torch.device,
                 precision: str, checkpoint: str | None):
        try:
            method = METHODS[name].with_knobs(**knobs)
        except ValueError as err:
            raise BenchError(f"--model-args for {name}: {err}") from None
        if precision not in PRECISIONS:
            raise BenchError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}")
        try:
            tower = load_tower(clip, pretrained, checkpoint, device=device, init_seed=RANDOM_INIT_SEED)
        except TowerWeightsError as err:
            raise BenchError(str(err)) from None
        self.net = TrainingFreeCLIP(tower.clip, tower.tokenizer, method).to(device).eval()
        self.model_id = method.name
        self.checkpoint_sha256 = tower.weights_sha256
        self.untrained = tower.untrained
        self.clip_name = clip
        self.pretrained = pretrained
        self.weights = "random" if tower.untrained else ("tag" if checkpoint is None else "file")
        self.device = device
        self.precision = precision
        self.class_embeds: torch.Tensor | None = None

    def settings(self) -> dict[str, Any]:
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
        if self.untrained:
            settings["random_init_seed"] = RANDOM_INIT_SEED
        return settings

    def set_classes(self, class_names: tuple[str, ...]) -> None:
        with self._autocast():
            self.class_embeds = self.net.encode_classes(list(class_names)).float()

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        return resize_for_method(image, self.net.method)

    def predict(self, images: list[np.ndarray], original_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        labels = []
        for image, size in zip(images, original_sizes):
            with self._autocast():
                logits = self.net.image_logits(image, self.class_embeds, size)
            labels.append(self.net.labels(self.net.probabilities(logits.float())).cpu())
        return labels

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")


class MaskCLIPSegmenter(TrainingFreeSegmenter):
    """MaskCLIP (ECCV 2022): value embeddings of the last block, whole-image inference."""

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["maskclip"].short_side, crop: int = METHODS["maskclip"].crop,
                 stride: int = METHODS["maskclip"].stride, logit_scale: float = METHODS["maskclip"].logit_scale,
                 prob_threshold: float = METHODS["maskclip"].prob_threshold,
                 device: torch.device = torch.device("cpu"), precision: str = "fp32", checkpoint: str | None = None):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold)
        super().__init__("maskclip", knobs, clip, pretrained, device, precision, checkpoint)


class SCLIPSegmenter(TrainingFreeSegmenter):
    """SCLIP (ECCV 2024): correlative self-attention in the last block; PAMR only if pamr_steps > 0."""

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["sclip"].short_side, crop: int = METHODS["sclip"].crop,
                 stride: int = METHODS["sclip"].stride, logit_scale: float = METHODS["sclip"].logit_scale,
                 prob_threshold: float = METHODS["sclip"].prob_threshold, pamr_steps: int = 0,
                 device: torch.device = torch.device("cpu"), precision: str = "fp32", checkpoint: str | None = None):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold, pamr_steps=pamr_steps)
        super().__init__("sclip", knobs, clip, pretrained, device, precision, checkpoint)


class ClearCLIPSegmenter(TrainingFreeSegmenter):
    """ClearCLIP (ECCV 2024): self-self attention, no residual and no MLP in the last block."""

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["clearclip"].short_side, crop: int = METHODS["clearclip"].crop,
                 stride: int = METHODS["clearclip"].stride, logit_scale: float = METHODS["clearclip"].logit_scale,
                 prob_threshold: float = METHODS["clearclip"].prob_threshold,
                 device: torch.device = torch.device("cpu"), precision: str = "fp32", checkpoint: str | None = None):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold)
        super().__init__("clearclip", knobs, clip, pretrained, device, precision, checkpoint)


class NACLIPSegmenter(TrainingFreeSegmenter):
    """NACLIP (WACV 2025): key-key attention plus a Gaussian neighbourhood, no residual and no MLP in
    the last block; PAMR only if pamr_steps > 0 (NACLIP's own constructor default is 10)."""

    def __init__(self, clip: str = "ViT-B-16", pretrained: str = "openai",
                 short_side: int = METHODS["naclip"].short_side, crop: int = METHODS["naclip"].crop,
                 stride: int = METHODS["naclip"].stride, logit_scale: float = METHODS["naclip"].logit_scale,
                 prob_threshold: float = METHODS["naclip"].prob_threshold, pamr_steps: int = 0,
                 gaussian_std: float = METHODS["naclip"].gaussian_std,
                 device: torch.device = torch.device("cpu"), precision: str = "fp32", checkpoint: str | None = None):
        knobs = dict(short_side=short_side, crop=crop, stride=stride, logit_scale=logit_scale,
                     prob_threshold=prob_threshold, pamr_steps=pamr_steps, gaussian_std=gaussian_std)
        super().__init__("naclip", knobs, clip, pretrained, device, precision, checkpoint)
