"""ZSSeg: the official key layout through our converter, refusals that name the key, the ensemble
and crop rules against hand-computed values, the segmenter protocol and `bench run` end to end
(on a tiny config standing in for zsseg-b, seeded untrained weights)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from model.checkpoint import CheckpointError
from model.maskformer.clip_classifier import ensemble, expand_box, mask_box, masked_crops
from model.maskformer.config import MaskClipConfig
from model.zsseg import conversion
from model.zsseg.config import ZSSEG_B, ZSSEG_CONFIGS, ZSSEG_TINY
from formula_weights import zsseg_keys
from maskformer_family_checks import check_bench_run_on_synthetic_sets, check_untrained_segmenter

CONSTANTS = (conversion.ADAPTER_MEAN, conversion.ADAPTER_STD, conversion.LOSS_WEIGHTS)


def constant(key: str, shape) -> torch.Tensor:
    if key == conversion.LOSS_WEIGHTS:
        value = torch.ones(shape)
        value[-1] = conversion.NO_OBJECT_WEIGHT
        return value
    from model.maskformer.clip_classifier import CLIP_PIXEL_MEAN_UNIT, CLIP_PIXEL_STD_UNIT

    unit = CLIP_PIXEL_MEAN_UNIT if key == conversion.ADAPTER_MEAN else CLIP_PIXEL_STD_UNIT
    return (torch.tensor(unit) * 255.0).reshape(shape)


def official_meta_state(**changes) -> dict[str, torch.Tensor]:
    """The official ZSSeg-B state dict (keys.json) as meta tensors (shapes only), constants real."""
    state = {k: constant(k, v) if k in CONSTANTS else torch.empty(v, device="meta") for k, v in zsseg_keys().items()}
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    return state


def test_the_official_key_layout_round_trips_through_our_model():
    """keys.json: every key and shape of the official state dict (tests/data/zsseg/README.md)."""
    official = {k: tuple(v) for k, v in zsseg_keys().items()}
    assert set(CONSTANTS) <= set(official)
    ours = conversion.expected_shapes(ZSSEG_B)
    mapped = {conversion.official_to_ours(k): s for k, s in official.items() if k not in CONSTANTS}
    assert mapped == ours  # every official key lands on one of ours, with its shape, and nothing is left
    back = {conversion.ours_to_official(k): s for k, s in ours.items()}
    assert back == {k: v for k, v in official.items() if k not in CONSTANTS}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"backbone.res5.2.conv3.norm.running_var": None}, "missing keys: backbone.res5.2.conv3.norm.running_var"),
        ({"sem_seg_head.predictor.extra": torch.zeros(1)}, "unexpected keys: sem_seg_head.predictor.extra"),
        ({"sem_seg_head.predictor.query_embed.weight": torch.zeros(99, 256)},
         r"wrong shapes: sem_seg_head.predictor.query_embed.weight \(99, 256\) \(expected \(100, 256\)\)"),
        ({conversion.ADAPTER_MEAN: torch.zeros(1, 3, 1, 1)}, "clip_adapter.pixel_mean is not the constant buffer"),
        ({conversion.LOSS_WEIGHTS: torch.ones(157)}, "criterion.empty_weight is not the constant buffer"),
    ],
)
def test_official_checkpoints_that_do_not_fit_are_refused_naming_the_official_key(changes, message):
    from model.checkpoint import check_keys

    state = official_meta_state(**changes)
    with pytest.raises(CheckpointError, match=message):
        ours = conversion.convert_official(state, ZSSEG_B, "model_final.pth")
        check_keys(ours, conversion.expected_shapes(ZSSEG_B), "zsseg-b", "model_final.pth",
                   conversion.ours_to_official, conversion.guess_variant)


def test_an_official_checkpoint_of_the_tiny_config_loads_every_tensor_exactly(tmp_path):
    torch.manual_seed(0)
    net = conversion.create_zsseg("zsseg-tiny")
    state = conversion.to_official(net.state_dict())
    state.update({k: constant(k, s) for k, s in ((conversion.ADAPTER_MEAN, (1, 3, 1, 1)),
                                                  (conversion.ADAPTER_STD, (1, 3, 1, 1)),
                                                  (conversion.LOSS_WEIGHTS, (157,)))})
    torch.save(state, tmp_path / "model_final.pth")
    loaded = conversion.create_zsseg("zsseg-tiny", checkpoint=tmp_path / "model_final.pth")
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.checkpoint_sha256 is not None


def test_boxes_crops_and_the_ensemble_follow_the_official_rules():
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[1:3, 2:7] = True
    assert mask_box(mask) == (2, 1, 7, 3)  # end exclusive, as BitMasks.get_bounding_boxes
    assert expand_box((2, 1, 7, 3), 1.0) == (2, 1, 7, 3) and expand_box((2, 1, 7, 3), 2.0) == (0, 0, 9, 4)
    image = torch.full((3, 6, 8), 200.0, dtype=torch.float64)
    crops = masked_crops(image, mask[None], MaskClipConfig(crop_size=5))
    assert crops.shape == (1, 3, 5, 5)
    # a fully masked crop of a flat image stays flat: (200 - mean) / std in every channel
    expected = (200.0 - torch.tensor([122.7709383, 116.7460125, 104.09373615])) / torch.tensor(
        [68.5005327, 66.6321579, 70.3231630])
    torch.testing.assert_close(crops[0, :, 2, 2], expected.double(), rtol=0, atol=1e-5)
    probs = torch.tensor([[0.64, 0.36], [0.25, 0.75]], dtype=torch.float64)
    clip = torch.log(torch.tensor([[0.25, 0.75]], dtype=torch.float64))  # softmax -> 0.25, 0.75
    out = ensemble(probs, clip, torch.tensor([True, False]), 0.5)
    expected = torch.tensor([[0.8 * 0.5, 0.6 * 0.75**0.5], [0.5, 0.75**0.5]], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)  # invalid row: CLIP probability 1


@pytest.fixture
def tiny_as_b(monkeypatch):
    """zsseg-b built at the tiny config (short side 64) for end-to-end runs."""
    monkeypatch.setitem(ZSSEG_CONFIGS, "zsseg-b", dataclasses.replace(ZSSEG_TINY, name="zsseg-b", test_short_side=64,
                                                                      test_max_side=256))


def test_the_segmenter_runs_seeded_untrained_weights_and_reports_its_protocol(tiny_as_b):
    from catseg_bench.segmenters.zsseg import ZSSegSegmenter

    settings = check_untrained_segmenter(ZSSegSegmenter, "zsseg-b")
    assert settings["random_init_seed"] == 3 and settings["ensemble_weight"] == 0.5
    assert settings["mask_threshold"] == 0.5 and settings["short_side"] == 64


def test_bench_run_end_to_end_on_synthetic_sets(cli, tiny_as_b, tmp_path):
    for settings in check_bench_run_on_synthetic_sets(cli, tmp_path, "zsseg-b", "MIT"):
        assert settings["ensemble_weight"] == 0.5


def test_a_web_page_instead_of_the_google_drive_file_is_refused_in_one_line(tmp_path, monkeypatch):
    from model import checkpoint
    from model.zsseg.weights import GDRIVE_URL

    def fake_download(url, dest, sha256=None, **kwargs):
        assert url == GDRIVE_URL
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("<!DOCTYPE html><html>Google Drive can't scan this file for viruses</html>")

    monkeypatch.setattr(checkpoint, "download", fake_download)
    with pytest.raises(CheckpointError) as err:
        conversion.create_zsseg("zsseg-b", checkpoint="official", cache_dir=tmp_path)
    text = str(err.value)
    assert "\n" not in text and "answered with a web page, not model_final.pth" in text and "--checkpoint PATH" in text
    assert not list((tmp_path / "downloads").rglob("uc"))  # removed, so the next try downloads again
