"""Parity with the official OVSeg code (the MESS fork) on the fixture of tests/data/ovseg (its README
says how the official code was run: formula weights, the 480 x 637 formula image, a reduced L,
float64 and float32).

Our model loads the same formula weights (the official key list) through the real converter
(`convert_official`) and runs the whole-image protocol on the same image:

* float32, end to end: the final scores within the official code's own float32-vs-float64 spread
  (recorded in the fixture) of both official runs, every proposal's validity, and the argmax equal
  to the official one wherever its top-2 margin exceeds that spread (and off by at most the pixels
  the fixture counts as undecided elsewhere);
* float64, in parts (the whole float64 pipeline takes minutes on a CPU): text features (1e-10),
  MaskFormer class logits and mask logits (1e-6), the mask-prompted CLIP logits of the first
  proposals (1e-6), and the final scores composed from our float64 MaskFormer outputs and the
  official float64 CLIP logits (1e-5).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TEST_DATA
from formula_weights import make_image, ovseg_keys, ovseg_state_dict
from model.maskformer.clip_classifier import ensemble, masked_crops
from model.maskformer.inference import class_probabilities, masks_at_image_size, normalized_padded, resize_scores
from model.maskformer.inference import semantic_scores
from model.ovseg import conversion
from model.zsseg import inference  # OVSeg runs ZSSeg's protocol
from model.ovseg.config import OVSEG_L
from model.ovseg.mask_prompts import crop_masks, encode_with_mask_prompts
from model.ovseg.modeling import OVSeg

FIXTURE = TEST_DATA / "ovseg"
FLOAT64_TOLERANCE = 1e-5
# What make_fixture.py keeps: every 8th score (float64) / 16th (float32) pixel, every 4th mask logit.
SCORE_STRIDE, FP32_SCORE_STRIDE, MASK_STRIDE = 8, 16, 4
FLOAT64_CROPS = 3  # proposals whose CLIP logits are recomputed in float64


def fixture() -> tuple[dict, dict]:
    path = FIXTURE / "ovseg_l_reduced.npz"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with np.load(path) as npz:
        arrays = dict(npz)
    return arrays, json.loads((FIXTURE / "ovseg_l_reduced_run.json").read_text())


def reduced_config(run: dict):
    """OVSeg-L with the fixture's reductions (README section 4.2), read from its run log."""
    mf = OVSEG_L.maskformer
    return dataclasses.replace(
        OVSEG_L, name="ovseg-l",
        maskformer=dataclasses.replace(
            mf, backbone=dataclasses.replace(mf.backbone, depths=tuple(run["cfg_swin"]["DEPTHS"])),
            predictor=dataclasses.replace(mf.predictor, num_queries=run["cfg_mask_former"]["NUM_OBJECT_QUERIES"])),
        vision=dataclasses.replace(OVSEG_L.vision, layers=run["clip_layers"][0]),
        text=dataclasses.replace(OVSEG_L.text, layers=run["clip_layers"][1]))


@pytest.fixture(scope="module")
def case():
    arrays, run = fixture()
    keys = ovseg_keys("l_reduced")
    assert len(keys) == run["num_keys"]
    config = reduced_config(run)
    official = {k: torch.from_numpy(v) for k, v in ovseg_state_dict(keys).items()}
    net = conversion.ovseg_with_state(config, conversion.convert_official(official, config, "formula weights"))
    image = make_image(*run["image_hw"], seed=0)
    resized = inference.prepare_image(net, image)
    assert list(resized.shape[:2]) == arrays["resized_hw"].tolist()
    names = [str(n) for n in arrays["class_names"]]
    return arrays, run, net, image, resized, names


def test_float32_end_to_end_stays_within_the_official_float32_spread(case):
    """Measured with 2 threads: scores 6.8e-5 of the 1.1e-4 spread, argmax identical."""
    arrays, run, net, image, resized, names = case
    net.float()
    with torch.no_grad():
        text = net.class_embeddings(names)
        parts = inference.predict_parts(net, resized, text)
    scores = resize_scores(parts["scores"], image.shape[:2]).double()
    spread = float(arrays["spread_fp32_fp64"])
    assert spread == run["spreads"]["scores_fp32_vs_fp64_max_abs"] > 0
    np.testing.assert_array_equal(parts["valid"].numpy(), arrays["valid_fp64"])
    strided = scores[:, ::FP32_SCORE_STRIDE, ::FP32_SCORE_STRIDE].numpy()
    assert strided.shape == arrays["scores_fp32"].shape
    assert np.abs(strided - arrays["scores_fp32"]).max() <= spread
    assert np.abs(scores[:, ::SCORE_STRIDE, ::SCORE_STRIDE].numpy() - arrays["scores_fp64"]).max() <= spread
    np.testing.assert_allclose(text.numpy(), arrays["text_features_fp32"][:-1], rtol=0, atol=1e-6)
    # CLIP logits carry CLIP's float32 noise times the temperature 100: the official float32 runs
    # differ from float64 by up to 1.4e-3 (1 thread); ours lands at the same 1.4e-3 (1 thread) or
    # 5.7e-4 (2 threads). An intermediate, so held to 1.5x that spread; the scores above to 1x.
    clip_spread = run["spreads"]["clip_cls_fp32_vs_fp64_max_abs"]
    assert np.abs(parts["clip_logits"].numpy() - arrays["clip_cls_fp64"][:, :-1]).max() <= 1.5 * clip_spread
    labels = scores.argmax(dim=0).numpy()
    decided = arrays["margin_fp64"] > spread
    assert decided.mean() > 0.99
    official = arrays["argmax_fp64"]
    np.testing.assert_array_equal(labels[::SCORE_STRIDE, ::SCORE_STRIDE][decided],
                                  official[::SCORE_STRIDE, ::SCORE_STRIDE][decided])
    assert (labels != official).sum() <= run["spreads"]["pixels_with_margin_below_spread"]
    assert len(np.unique(official)) > 1  # two classes win pixels: the argmax check means something


def test_float64_reproduces_the_official_float64_run(case):
    """Measured: text 1e-16, class logits 1e-14, mask logits 0, CLIP logits 2e-14, scores 8e-15."""
    arrays, _, net, image, resized, names = case
    net.double()
    with torch.no_grad():
        text = net.class_embeddings(names)
        x = normalized_padded(resized, net.config.maskformer.pixel_mean, net.config.maskformer.pixel_std,
                              net.config.maskformer.size_divisibility, net.dtype, net.device)
        classifier = net.classifier(text)
        logits, masks = net(x, classifier)
        mask_probs = masks_at_image_size(masks[0], x.shape[-2:], resized.shape[:2]).sigmoid()
        pixels = torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1))).double()
        first = mask_probs[:FLOAT64_CROPS] > net.config.mask_clip.mask_threshold
        crops = masked_crops(pixels, first, net.config.mask_clip)
        embeds = encode_with_mask_prompts(net.clip.visual, net.mask_embedding, crops,
                                          crop_masks(first, net.config.mask_clip))
        clip_logits = net.config.mask_clip.temperature * F.normalize(embeds, dim=-1) @ text.T
    np.testing.assert_allclose(classifier.numpy(), arrays["text_features_fp64"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(logits[0].numpy(), arrays["mask_cls_fp64"], rtol=0, atol=1e-6)
    strided = masks[0][:, ::MASK_STRIDE, ::MASK_STRIDE].numpy()
    np.testing.assert_allclose(strided, arrays["mask_logits_fp64"], rtol=0, atol=1e-6)
    assert arrays["valid_fp64"][:FLOAT64_CROPS].all()
    np.testing.assert_allclose(clip_logits.numpy(), arrays["clip_cls_fp64"][:FLOAT64_CROPS, :-1], rtol=0, atol=1e-6)
    valid = torch.from_numpy(arrays["valid_fp64"])
    official_clip = torch.from_numpy(arrays["clip_cls_fp64"][:, :-1])
    probs = ensemble(class_probabilities(logits[0]), official_clip, valid, net.config.mask_clip.ensemble_weight)
    scores = resize_scores(semantic_scores(probs, mask_probs), image.shape[:2])
    strided = scores[:, ::SCORE_STRIDE, ::SCORE_STRIDE].numpy()
    np.testing.assert_allclose(strided, arrays["scores_fp64"], rtol=0, atol=FLOAT64_TOLERANCE)


def test_official_key_list_converts_onto_every_key_of_ovseg_l():
    """The full official OVSeg-L key list (954 keys) maps onto our OVSeg-L with every shape, and a
    missing or an extra key is refused by name."""
    from model.checkpoint import CheckpointError, check_keys

    keys = ovseg_keys("l")
    assert len(keys) == 954
    meta = {k: torch.empty(shape, device="meta") for k, shape in keys.items()}
    computed = {k: v for k, v in meta.items() if conversion._is_computed(k)}
    learned = {k: v for k, v in meta.items() if k not in computed}
    ours = {conversion.official_to_ours(k): v for k, v in learned.items()}
    expected = conversion.expected_shapes(OVSEG_L)
    check_keys(ours, expected, "ovseg-l", "formula key list")  # every key, every shape
    assert len(computed) == 3 + sum(OVSEG_L.maskformer.backbone.depths)
    with pytest.raises(CheckpointError, match="missing keys: clip_adapter.clip_model.visual.mask_embedding"):
        dropped = {k: v for k, v in ours.items() if k != "mask_embedding"}
        check_keys(dropped, expected, "ovseg-l", "formula key list", conversion.ours_to_official)
    with pytest.raises(CheckpointError, match="unexpected keys: sem_seg_head.predictor.extra"):
        extra = dict(ours, **{"maskformer.predictor.extra": torch.empty(1, device="meta")})
        check_keys(extra, expected, "ovseg-l", "formula key list", conversion.ours_to_official)


def test_a_wrong_computed_buffer_is_refused():
    from model.checkpoint import CheckpointError

    config = OVSEG_L
    key = "backbone.layers.0.blocks.0.attn.relative_position_index"
    with pytest.raises(CheckpointError, match=key):
        conversion.convert_official({key: torch.zeros(144, 144, dtype=torch.int64)}, config, "a file")
    with pytest.raises(CheckpointError, match="clip_adapter.pixel_mean"):
        conversion.convert_official({"clip_adapter.pixel_mean": torch.zeros(1, 3, 1, 1)}, config, "a file")


def test_model_is_built_from_the_config(case):
    _, _, net, *_ = case
    assert isinstance(net, OVSeg)
    assert tuple(net.mask_embedding.shape) == (3, 256, 1024)
