"""Training-free CLIP segmenters (model/training_free) against the official code, plus their parts.

The parity fixtures in tests/data/training_free were produced by each method's official
implementation on a tiny formula-filled CLIP (see the README there); `tests/training_free_tiny.py`
rebuilds the same weights and inputs.
"""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch

from model.training_free import TrainingFreeCLIP, TowerWeightsError, load_tower, method_config, resize_for_method
from model.training_free.dense import gaussian_bias
from model.training_free.methods import METHODS
from model.training_free.segment import rescaled_shape
from model.training_free.templates import template_set

from conftest import TEST_DATA
from training_free_tiny import CLASS_NAMES, ORIGINAL_SIZE, input_image, tiny_loaded_clip

FIXTURES = TEST_DATA / "training_free"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tiny_clip():
    return tiny_loaded_clip()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_matches_official_code(tiny_clip, method):
    expected = np.load(FIXTURES / f"{method}.npz")
    segmenter = TrainingFreeCLIP(tiny_clip, open_clip.get_tokenizer("ViT-B-16"), method_config(method))
    text = segmenter.encode_classes(CLASS_NAMES)
    np.testing.assert_allclose(text.numpy(), expected["text_embeds"], atol=TOLERANCE, rtol=0)

    logits = segmenter.image_logits(input_image(method), text, ORIGINAL_SIZE)
    probs = segmenter.probabilities(logits)
    np.testing.assert_allclose(logits[:, ::4, ::4].numpy(), expected["logits"], atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(probs[:, ::4, ::4].numpy(), expected["probs"], atol=TOLERANCE, rtol=0)
    labels = segmenter.labels(probs).numpy()
    top2 = probs.topk(2, dim=0).values
    decided = (top2[0] - top2[1]).numpy() > TOLERANCE
    assert decided.mean() > 0.99
    np.testing.assert_array_equal(labels[decided], expected["argmax"][decided])


def test_pamr_matches_official_naclip(tiny_clip):
    """NACLIP with its constructor's PAMR (10 steps, dilations 8 and 16)."""
    expected = np.load(FIXTURES / "naclip_pamr.npz")
    method = method_config("naclip").with_knobs(pamr_steps=10)
    segmenter = TrainingFreeCLIP(tiny_clip, open_clip.get_tokenizer("ViT-B-16"), method)
    text = segmenter.encode_classes(CLASS_NAMES)
    probs = segmenter.probabilities(segmenter.image_logits(input_image("naclip"), text, ORIGINAL_SIZE))
    np.testing.assert_allclose(probs[:, ::4, ::4].numpy(), expected["probs"], atol=TOLERANCE, rtol=0)
    unrefined = np.load(FIXTURES / "naclip.npz")["argmax"]
    assert (expected["argmax"] != unrefined).sum() > 100  # PAMR moves labels: the test can tell it ran
    np.testing.assert_array_equal(segmenter.labels(probs).numpy(), expected["argmax"])


def test_defaults_are_the_official_ones():
    sclip, naclip, clearclip, maskclip = (METHODS[name] for name in ("sclip", "naclip", "clearclip", "maskclip"))
    assert (sclip.short_side, sclip.crop, sclip.stride, sclip.logit_scale) == (336, 224, 112, 40.0)
    assert (naclip.short_side, naclip.crop, naclip.stride, naclip.logit_scale, naclip.gaussian_std) == (336, 224, 112, 40.0, 5.0)
    assert (clearclip.short_side, clearclip.crop, clearclip.stride, clearclip.logit_scale) == (448, 448, 224, 50.0)
    assert (maskclip.short_side, maskclip.crop, maskclip.mlp_activation, maskclip.layer_norm_eps) == (512, 0, "gelu", 1e-6)
    assert all(m.prob_threshold == 0.0 for m in METHODS.values())
    assert len(template_set("openai_imagenet")) == 80 and template_set("openai_imagenet")[0] == "a bad photo of a {}."
    assert template_set("maskclip")[:80] == template_set("openai_imagenet")
    assert template_set("maskclip")[80:] == (
        "there is a {} in the scene.", "there is the {} in the scene.", "this is a {} in the scene.",
        "this is the {} in the scene.", "this is one {} in the scene.",
    )


def test_rescaled_shape_follows_mmcv_keep_ratio():
    assert rescaled_shape(120, 160, 336, 2048) == (336, 448)  # short side to 336
    assert rescaled_shape(160, 120, 448, 2048) == (597, 448)  # 160 * 448 / 120 = 597.33
    assert rescaled_shape(100, 3000, 336, 2048) == (68, 2048)  # the long side caps the scale: 100 * 2048 / 3000 = 68.3


def test_resize_for_method_sizes_and_values():
    image = np.full((60, 80, 3), 7, np.uint8)
    image[:, :40] = 200
    resized = resize_for_method(image, METHODS["sclip"])
    assert resized.shape == (336, 448, 3) and resized.dtype == np.uint8
    assert resized[0, 0, 0] == 200 and resized[-1, -1, 2] == 7
    # An image already at the method's size is passed through untouched.
    assert resize_for_method(resized, METHODS["sclip"]) is resized
    with pytest.raises(ValueError, match="RGB uint8"):
        resize_for_method(image.astype(np.float32), METHODS["sclip"])


def test_gaussian_bias_by_hand():
    bias = gaussian_bias((2, 3), std=2.0)
    assert bias.shape == (7, 7)
    assert torch.all(bias[0] == 0) and torch.all(bias[:, 0] == 0)
    # Patch (0, 0) is token 1, patch (1, 2) is token 6: squared distance 1 + 4.
    assert bias[1, 6].item() == pytest.approx(math.exp(-5 / 8), rel=1e-6)
    assert bias[3, 3].item() == 1.0


def test_method_knobs_are_validated():
    with pytest.raises(ValueError, match="window_padding"):
        METHODS["sclip"].with_knobs(window_padding="edge")
    with pytest.raises(ValueError, match="prob_threshold"):
        METHODS["sclip"].with_knobs(prob_threshold=2.0)
    with pytest.raises(ValueError, match="unknown training-free method"):
        method_config("segformer")


def test_probability_threshold_sends_unsure_pixels_to_class_zero(tiny_clip):
    segmenter = TrainingFreeCLIP(tiny_clip, open_clip.get_tokenizer("ViT-B-16"), METHODS["sclip"].with_knobs(prob_threshold=0.6))
    probs = torch.tensor([[[0.1, 0.5]], [[0.7, 0.2]], [[0.2, 0.3]]])
    assert segmenter.labels(probs).tolist() == [[1, 0]]


def test_random_open_clip_tower_uses_the_tags_activation():
    tower = load_tower("ViT-B-16", "openai", checkpoint="none")
    assert tower.untrained and tower.weights_sha256 is None
    assert isinstance(tower.clip.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert len(tower.clip.visual.transformer.resblocks) == 12
    again = load_tower("ViT-B-16", "openai", checkpoint="none")
    assert torch.equal(tower.clip.visual.proj, again.clip.visual.proj)  # seeded: every process builds the same


def test_missing_download_is_one_line(monkeypatch):
    def offline(config, *args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files,\nand they are not cached")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(TowerWeightsError) as err:
        load_tower("ViT-B-16", "openai")
    message = str(err.value)
    assert "\n" not in message
    assert "timm/vit_base_patch16_clip_224.openai" in message and "--checkpoint" in message


def test_unknown_model_or_tag_names_the_choices():
    with pytest.raises(TowerWeightsError, match="not an open_clip model name"):
        load_tower("ViT-Q-99", "openai")
    with pytest.raises(TowerWeightsError, match="its tags: .*openai"):
        load_tower("ViT-B-16", "openaii")


def test_local_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(TowerWeightsError, match="no such file"):
        load_tower("ViT-B-16", "openai", checkpoint=str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    torch.save({"visual.proj": torch.zeros(3)}, bad)
    with pytest.raises(TowerWeightsError) as err:
        load_tower("ViT-B-16", "openai", checkpoint=str(bad))
    assert str(err.value).startswith(f"{bad}: not an open_clip state dict for ViT-B-16") and "\n" not in str(err.value)
