"""ZegFormer: the official key layout (checkpoint + OpenAI CLIP file) through our converter, refusals
that name the key, the crop boxes against hand-computed ones, the segmenter protocol and `bench run`
end to end (on a tiny config standing in for zegformer-b, seeded untrained weights)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from formula_weights import zegformer_clip_keys, zegformer_keys
from catseg_bench.errors import BenchError
from model.checkpoint import CheckpointError, check_keys
from model.zegformer import conversion
from model.zegformer.config import ZEGFORMER_B, ZEGFORMER_CONFIGS, ZEGFORMER_TINY
from model.zegformer.crops import mask_boxes, masked_box_crops
from model.zegformer.modeling import class_prompts
from maskformer_family_checks import check_bench_run_on_synthetic_sets, check_untrained_segmenter


def loss_weights(n: int = 157) -> torch.Tensor:
    value = torch.ones(n)
    value[-1] = conversion.NO_OBJECT_WEIGHT
    return value


def official_meta_states(**changes) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The official ZegFormer-B checkpoint (keys.json) and OpenAI ViT-B/16 file (keys_clip.json) as
    meta tensors (shapes only), the loss weights real; `changes` edit the checkpoint."""
    ckpt = {k: loss_weights(v[0]) if k == conversion.LOSS_WEIGHTS else torch.empty(v, device="meta")
            for k, v in zegformer_keys().items()}
    for key, value in changes.items():
        if value is None:
            del ckpt[key]
        else:
            ckpt[key] = value
    clip = {k: torch.empty(v, device="meta") for k, v in zegformer_clip_keys().items()
            if k not in conversion.OPENAI_NON_WEIGHTS}
    return ckpt, clip


def test_the_official_key_layout_round_trips_through_our_model():
    """keys.json + keys_clip.json: every key and shape the official test-time model loads
    (tests/data/zegformer/README.md)."""
    ckpt, clip = official_meta_states()
    ours = conversion.expected_shapes(ZEGFORMER_B)
    mapped = {k: tuple(v.shape) for k, v in conversion.convert_official(ckpt, clip, "zegformer.pth").items()}
    assert mapped == ours  # every official key lands on one of ours, with its shape, and nothing is left
    back_ckpt, back_clip = conversion.to_official({k: torch.empty(s, device="meta") for k, s in ours.items()})
    assert {k: tuple(v.shape) for k, v in back_ckpt.items()} == {
        k: tuple(v.shape) for k, v in ckpt.items() if k != conversion.LOSS_WEIGHTS}
    assert {k: tuple(v.shape) for k, v in back_clip.items()} == {k: tuple(v.shape) for k, v in clip.items()}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"backbone.res5.2.conv3.norm.running_var": None}, "missing keys: backbone.res5.2.conv3.norm.running_var"),
        ({"sem_seg_head.predictor.bg_feature": None}, "missing keys: sem_seg_head.predictor.bg_feature"),
        ({"sem_seg_head.predictor.extra": torch.zeros(1)}, "unexpected keys: sem_seg_head.predictor.extra"),
        ({"sem_seg_head.predictor.projection_layer.weight": torch.zeros(600, 256)},
         r"wrong shapes: sem_seg_head.predictor.projection_layer.weight \(600, 256\) \(expected \(512, 256\)\)"),
        ({conversion.LOSS_WEIGHTS: torch.ones(157)}, "criterion.empty_weight is not the constant"),
    ],
)
def test_official_checkpoints_that_do_not_fit_are_refused_naming_the_official_key(changes, message):
    ckpt, clip = official_meta_states(**changes)
    with pytest.raises(CheckpointError, match=message):
        ours = conversion.convert_official(ckpt, clip, "zegformer.pth")
        check_keys(ours, conversion.expected_shapes(ZEGFORMER_B), "zegformer-b", "zegformer.pth",
                   conversion.ours_to_official, conversion.guess_variant)


def test_a_checkpoint_without_its_clip_file_is_refused_naming_the_clip_keys():
    ckpt, _ = official_meta_states()
    ours = conversion.convert_official(ckpt, None, "zegformer.pth")
    with pytest.raises(CheckpointError, match="missing keys: sem_seg_head.predictor.clip_model.positional_embedding"):
        check_keys(ours, conversion.expected_shapes(ZEGFORMER_B), "zegformer-b", "zegformer.pth",
                   conversion.ours_to_official, conversion.guess_variant)


def write_tiny_official_files(folder):
    """A random zegformer-tiny as the official checkpoint (zegformer.pth) and OpenAI CLIP file (clip.pt)."""
    torch.manual_seed(0)
    net = conversion.create_zegformer("zegformer-tiny", clip_weights=None)
    ckpt, clip = conversion.to_official(net.state_dict())
    ckpt[conversion.LOSS_WEIGHTS] = loss_weights()
    clip = {k: v.half() for k, v in clip.items()}  # the OpenAI file is float16
    clip.update({"input_resolution": torch.tensor(64), "context_length": torch.tensor(77),
                 "vocab_size": torch.tensor(49408)})
    torch.save({"model": ckpt}, folder / "zegformer.pth")
    torch.save(clip, folder / "clip.pt")
    return net


def test_an_official_checkpoint_and_clip_file_of_the_tiny_config_load_every_tensor_exactly(tmp_path):
    net = write_tiny_official_files(tmp_path)
    loaded = conversion.create_zegformer("zegformer-tiny", checkpoint=tmp_path / "zegformer.pth",
                                         clip_weights=tmp_path / "clip.pt")
    for key, value in net.state_dict().items():
        expected = value.half().float() if key.startswith("clip.") and value.is_floating_point() else value
        assert torch.equal(loaded.state_dict()[key], expected), key
    assert loaded.checkpoint_sha256 is not None
    with pytest.raises(CheckpointError, match="do not exist"):
        conversion.create_zegformer("zegformer-tiny", checkpoint=tmp_path / "zegformer.pth",
                                    clip_weights=tmp_path / "absent.pt")


def test_boxes_are_the_official_inclusive_ones_and_flat_masks_crop_the_whole_image():
    masks = torch.zeros(4, 6, 8, dtype=torch.bool)
    masks[0, 1:3, 2:7] = True  # rows 1-2, columns 2-6
    masks[1, 4, 1:5] = True  # one row: zero area
    masks[3, 0, 0] = masks[3, 5, 7] = True  # two corner pixels: the whole extent
    boxes = mask_boxes(masks)
    assert boxes.tolist() == [[2, 1, 6, 2], [0, 0, 8, 6], [0, 0, 8, 6], [0, 0, 7, 5]]
    image = torch.full((3, 6, 8), 2.0, dtype=torch.float64)
    crops = masked_box_crops(image, masks[:1], 4)
    assert crops.shape == (1, 3, 4, 4)
    # RoIAlign, aligned, box (2, 1, 6, 2): x from 1.5 to 5.5 in 4 bins of 1 -> samples at the pixel
    # centres 2..5 (inside the mask); y from 0.5 to 1.5 in bins of 0.25 -> samples at 0.625, 0.875,
    # 1.125, 1.375, bilinear between row 0 (outside: 0) and rows 1-2 (2).
    expected = torch.tensor([1.25, 1.75, 2.0, 2.0], dtype=torch.float64)[:, None].expand(4, 4)
    torch.testing.assert_close(crops[0, 0], expected, rtol=0, atol=1e-12)


def test_names_with_a_comma_are_several_variants_in_every_template():
    assert class_prompts("sky", ("a {}.", "the {}")) == ["a sky.", "the sky"]
    assert class_prompts("tree, bush", ("a {}.",)) == ["a tree.", "a bush."]
    assert class_prompts("a,b", ("{}",)) == ["a,b"]  # only ", " splits


@pytest.fixture
def tiny_as_b(monkeypatch):
    """zegformer-b built at the tiny config (short side 64) for end-to-end runs."""
    monkeypatch.setitem(ZEGFORMER_CONFIGS, "zegformer-b", dataclasses.replace(
        ZEGFORMER_TINY, name="zegformer-b", test_short_side=64, test_max_side=256))


def test_the_segmenter_runs_seeded_untrained_weights_and_reports_its_protocol(tiny_as_b):
    from catseg_bench.segmenters.zegformer import ZegFormerSegmenter

    settings = check_untrained_segmenter(ZegFormerSegmenter, "zegformer-b", ("sky", "tree, bush", "road"))
    assert settings["random_init_seed"] == 3 and settings["mask_threshold"] == 0.5 and settings["short_side"] == 64


def test_clip_fp16_through_the_registry_casts_what_openais_loader_casts(tiny_as_b):
    from catseg_bench.registry import build_segmenter

    segmenter = build_segmenter("zegformer-b", {"clip_fp16": "true"}, checkpoint="none")
    clip = segmenter.net.clip
    assert segmenter.settings()["clip_fp16"] is True
    halved = {name for name, p in clip.named_parameters() if p.dtype == torch.float16}
    assert {"visual.conv1.weight", "visual.proj", "text_projection", "transformer.resblocks.0.attn.in_proj_weight",
            "transformer.resblocks.0.attn.out_proj.bias", "visual.transformer.resblocks.0.mlp.c_fc.weight"} <= halved
    assert not halved & {"token_embedding.weight", "positional_embedding", "visual.class_embedding",
                         "visual.positional_embedding", "ln_final.weight", "visual.ln_pre.bias", "logit_scale"}
    assert segmenter.net.bg_feature.dtype == torch.float32  # the MaskFormer stays float32
    segmenter.set_classes(("sky", "tree, bush"))
    assert segmenter.classes.dtype == torch.float32
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    scores = segmenter.predict_scores([segmenter.prepare_image(image)], [(40, 50)])[0]
    assert scores.shape == (2, 40, 50) and torch.isfinite(scores).all()
    assert build_segmenter("zegformer-b", checkpoint="none").settings()["clip_fp16"] is False


def test_the_segmenter_reads_a_local_clip_file_given_as_a_model_arg(tiny_as_b, tmp_path, monkeypatch):
    from catseg_bench.registry import build_segmenter

    net = write_tiny_official_files(tmp_path)
    monkeypatch.setenv("ZEG_CLIP_DIR", str(tmp_path))  # the path is expanded as a user's
    segmenter = build_segmenter("zegformer-b", {"clip_weights": "$ZEG_CLIP_DIR/clip.pt"},
                                checkpoint=str(tmp_path / "zegformer.pth"))
    expected = net.state_dict()["clip.visual.proj"].half().float()
    assert torch.equal(segmenter.net.state_dict()["clip.visual.proj"], expected)
    with pytest.raises(BenchError, match="absent.pt"):
        build_segmenter("zegformer-b", {"clip_weights": str(tmp_path / "absent.pt")},
                        checkpoint=str(tmp_path / "zegformer.pth"))


def test_bench_run_end_to_end_on_synthetic_sets(cli, tiny_as_b, tmp_path):
    for settings in check_bench_run_on_synthetic_sets(cli, tmp_path, "zegformer-b", "CC BY-NC 4.0"):
        assert settings["crop_size"] == 64
