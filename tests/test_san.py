"""SAN: the official-checkpoint converter, the whole-image protocol and the segmenter (san-tiny,
random weights, CPU). Parity with the official code is in test_san_parity.py."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from catseg_bench.errors import BenchError
from model.checkpoint import CheckpointError, check_keys
from model.clip_towers import causal_text_mask
from model.san import conversion, inference
from model.san.config import SAN_B, SAN_L
from model.san.modeling import SAN
from formula_weights import san_keys


@pytest.fixture(scope="module")
def tiny() -> SAN:
    torch.manual_seed(0)
    return conversion.create_san("san-tiny")


def official_file(net: SAN, path, **changes):
    """`net`'s weights saved in the official layout, with the two computed buffers."""
    state = conversion.to_official(net.state_dict(), net.config)
    state[conversion.TEXT_MASK] = causal_text_mask(net.config.text.context_length)
    weights = torch.ones(172)
    weights[-1] = conversion.NO_OBJECT_WEIGHT
    state[conversion.LOSS_WEIGHTS] = weights
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    torch.save(state, path)
    return path


@pytest.mark.parametrize("config, size", [(SAN_B, "b"), (SAN_L, "l")], ids=["san-b", "san-l"])
def test_the_official_key_layout_round_trips_through_our_model(config, size):
    """keys_{b,l}.json: every key and shape of the official state dict (tests/data/san/README.md)."""
    official = {k: tuple(v) for k, v in san_keys(size).items()}
    computed = {conversion.TEXT_MASK, conversion.LOSS_WEIGHTS}
    assert computed <= set(official)
    ours = conversion.expected_shapes(config)
    mapped = {conversion.official_to_ours(k, config): shape for k, shape in official.items() if k not in computed}
    assert mapped == ours  # every official key lands on one of ours, with its shape, and nothing is left over
    back = {conversion.ours_to_official(k, config): shape for k, shape in ours.items()}
    assert back == {k: v for k, v in official.items() if k not in computed}
    start = config.recognition_start
    rec_blocks = {k.split(".")[2] for k in official if k.startswith("clip_rec_head.resblocks.")}
    assert rec_blocks == {str(i) for i in range(config.vision.layers - start)}  # renumbered from 0


def test_an_official_checkpoint_loads_every_tensor_exactly(tiny, tmp_path):
    path = official_file(tiny, tmp_path / "san_tiny.pth")
    net = conversion.create_san("san-tiny", checkpoint=path)
    for key, value in tiny.state_dict().items():
        assert torch.equal(net.state_dict()[key], value), key
    assert net.checkpoint_sha256 is not None and torch.equal(net.clip.attn_mask, tiny.clip.attn_mask)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"clip_rec_head.ln_post.bias": None}, "missing keys: clip_rec_head.ln_post.bias"),
        ({"side_adapter_network.extra": torch.zeros(1)}, "unexpected keys: side_adapter_network.extra"),
        ({"side_adapter_network.query_embed": torch.zeros(1, 9, 32)},
         r"wrong shapes: side_adapter_network.query_embed \(1, 9, 32\) \(expected \(1, 10, 32\)\)"),
        ({conversion.TEXT_MASK: torch.zeros(77, 77)}, "ov_classifier.attn_mask is not the official buffer"),
        ({conversion.LOSS_WEIGHTS: torch.ones(172)}, "criterion.empty_weight is not the official buffer"),
    ],
)
def test_checkpoints_that_do_not_fit_are_refused_naming_the_official_key(tiny, tmp_path, changes, message):
    path = official_file(tiny, tmp_path / "bad.pth", **changes)
    with pytest.raises(CheckpointError, match=message):
        conversion.create_san("san-tiny", checkpoint=path)


def test_a_checkpoint_of_the_other_size_is_refused_by_name():
    with torch.device("meta"):
        b = SAN(SAN_B)
    state = conversion.convert_official(conversion.to_official(b.state_dict(), SAN_B), SAN_L, "san_b.pth")
    with pytest.raises(CheckpointError, match="holds a san-b model, not san-l: choose --model san-b"):
        check_keys(state, conversion.expected_shapes(SAN_L), "san-l", "san_b.pth", None, conversion.guess_variant)


def test_without_cached_weights_offline_the_segmenter_fails_in_one_line(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from catseg_bench.segmenters.san import SANSegmenter

    def offline(**kwargs):
        raise LocalEntryNotFoundError("cannot reach the Hub\nand the file is not cached")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(BenchError) as err:
        SANSegmenter("san-b")
    text = str(err.value)
    assert "\n" not in text
    assert "https://huggingface.co/Mendel192/san/resolve/main/san_vit_b_16.pth" in text
    assert "--checkpoint PATH" in text and "--checkpoint none" in text


def reference_scores(net: SAN, image: np.ndarray, classifier: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The official postprocess, step by step: resize to the padded size, crop, resize, sigmoid, compose."""
    probs, masks = inference.mask_predictions(net, image, classifier)
    h, w = image.shape[:2]
    padded = (h + -h % 32, w + -w % 32)
    up = F.interpolate(masks[None], size=padded, mode="bilinear", align_corners=False)[0][:, :h, :w]
    full = F.interpolate(up[None], size=size, mode="bilinear", align_corners=False)[0]
    return torch.einsum("qc,qhw->chw", probs, full.sigmoid())


def test_the_folded_postprocess_equals_the_official_resize_crop_resize(tiny):
    size = (37, 53)
    net64 = copy.deepcopy(tiny).double()
    net64.config = dataclasses.replace(tiny.config, test_short_side=100)  # a small image, for speed
    original = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    image = inference.prepare_image(net64, original)
    assert image.shape == (100, 143, 3)  # padded to 128 x 160: the crop is exercised on both axes
    classifier = net64.classifier(net64.class_embeddings(["a", "b", "c"]))
    scores = inference.predict_scores(net64, image, classifier, size)
    torch.testing.assert_close(scores, reference_scores(net64, image, classifier, size), rtol=0, atol=1e-12)
    inference.BAND_BYTES, saved = 4096, inference.BAND_BYTES  # many bands of a few rows
    try:
        labels = inference.predict_labels(net64, image, classifier, size)
    finally:
        inference.BAND_BYTES = saved
    assert torch.equal(labels, scores.argmax(dim=0))


def test_the_segmenter_runs_seeded_untrained_weights_and_reports_its_protocol():
    from catseg_bench.segmenters.san import SANSegmenter

    seg = SANSegmenter("san-tiny", checkpoint="none", seed=3)
    assert seg.untrained and seg.checkpoint_sha256 is None
    settings = seg.settings()
    assert settings["random_init_seed"] == 3 and settings["clip_scale"] == 0.5
    assert (settings["short_side"], settings["max_side"], settings["size_divisibility"]) == (640, 2560, 32)
    again = SANSegmenter("san-tiny", checkpoint="none", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(seg.net.state_dict().values(), again.net.state_dict().values()))
    seg.set_classes(("sky", "tree"))
    original = np.random.default_rng(0).integers(0, 256, (50, 30, 3), dtype=np.uint8)
    image = seg.prepare_image(original)
    assert image.shape == (1067, 640, 3)  # detectron2's int(x + 0.5) rounding
    labels = seg.predict([image], [(50, 30)])[0]
    scores = seg.predict_scores([image], [(50, 30)])[0]
    assert labels.shape == (50, 30) and labels.dtype == torch.int64 and scores.shape == (2, 50, 30)
    assert torch.equal(labels, scores.argmax(dim=0))
