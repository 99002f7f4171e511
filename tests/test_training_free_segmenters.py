"""The training-free segmenters in the harness: settings, weights, errors, and a run end to end.

The end-to-end run swaps the open_clip ViT-B-16 for the tiny formula-filled CLIP of the parity
fixtures (`tests/training_free_tiny.py`), so that 80 prompt templates per class stay cheap on a CPU.
"""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch

import catseg_bench.training_free as training_free
from catseg_bench.errors import BenchError
from catseg_bench.training_free import MaskCLIPSegmenter, NACLIPSegmenter, SCLIPSegmenter
from model.training_free import LoadedTower

from training_free_tiny import tiny_loaded_clip


@pytest.fixture
def tiny_tower(monkeypatch):
    """Every segmenter built in the test gets the tiny CLIP (random-weights semantics)."""
    calls = []

    def load(name, pretrained, checkpoint, device, init_seed):
        calls.append((name, pretrained, checkpoint))
        return LoadedTower(tiny_loaded_clip(), open_clip.get_tokenizer("ViT-B-16"), None, checkpoint == "none")

    monkeypatch.setattr(training_free, "load_tower", load)
    return calls


def test_settings_hold_every_number_changing_knob(tiny_tower):
    segmenter = NACLIPSegmenter(checkpoint="none", stride=100, pamr_steps=3, gaussian_std=4.0)
    settings = segmenter.settings()
    assert tiny_tower == [("ViT-B-16", "openai", "none")]
    assert segmenter.model_id == "naclip" and segmenter.untrained and segmenter.checkpoint_sha256 is None
    expected = {
        "method": "naclip", "clip": "ViT-B-16", "pretrained": "openai", "weights": "random", "weights_sha256": None,
        "last_block": "naclip", "templates": "openai_imagenet", "logit_scale": 40.0, "short_side": 336,
        "long_side": 2048, "crop": 224, "stride": 100, "gaussian_std": 4.0, "pamr_steps": 3,
        "pamr_dilations": [8, 16], "prob_threshold": 0.0, "precision": "fp32", "random_init_seed": 0,
    }
    assert {key: settings[key] for key in expected} == expected
    assert len(settings["templates_sha256"]) == 16
    json.dumps(settings)  # result files store it


def test_templates_hash_tells_the_sets_apart(tiny_tower):
    maskclip = MaskCLIPSegmenter(checkpoint="none").settings()
    sclip = SCLIPSegmenter(checkpoint="none").settings()
    assert maskclip["templates_sha256"] != sclip["templates_sha256"]
    assert (maskclip["crop"], maskclip["mlp_activation"], maskclip["layer_norm_eps"]) == (0, "gelu", 1e-6)
    assert "gaussian_std" not in sclip and "pamr_dilations" not in sclip


def test_bad_knob_is_one_line_before_loading_weights(tiny_tower):
    with pytest.raises(BenchError, match=r"--model-args for sclip: crop must be >= 0") as err:
        SCLIPSegmenter(crop=-5)
    assert "\n" not in str(err.value) and tiny_tower == []
    with pytest.raises(BenchError, match="--precision fp16"):
        SCLIPSegmenter(precision="fp16")


def test_missing_open_clip_download_is_one_bench_error(monkeypatch):
    def offline(config, *args, **kwargs):
        raise OSError("Failed to download file (open_clip_pytorch_model.bin)\nLast error: offline")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(BenchError) as err:
        SCLIPSegmenter()
    message = str(err.value)
    assert "\n" not in message and "ViT-B-16/openai" in message and "timm/vit_base_patch16_clip_224.openai" in message


def test_prepare_and_predict_at_the_original_size(tiny_tower):
    segmenter = SCLIPSegmenter(checkpoint="none")
    segmenter.set_classes(("sky", "tree", "road"))
    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    prepared = segmenter.prepare_image(image)
    assert prepared.shape == (336, 470, 3)
    (labels,) = segmenter.predict([prepared], [(50, 70)])
    assert labels.shape == (50, 70) and labels.dtype == torch.int64
    assert 0 <= labels.min() and labels.max() <= 2
