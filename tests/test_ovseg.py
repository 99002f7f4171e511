"""OVSeg: the mask-prompt rules against hand-computed values, an official-layout checkpoint of the
tiny config loaded through the converter, the segmenter protocol and `bench run` end to end (on a
tiny config standing in for ovseg-l, seeded untrained weights), and the weights tag's licence."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from conftest import REPO_ROOT
from model.maskformer.config import MaskClipConfig
from model.ovseg import conversion
from model.ovseg.config import OVSEG_CONFIGS, OVSEG_L, OVSEG_TINY
from model.ovseg.mask_prompts import crop_masks, encode_with_mask_prompts, patch_masks
from model.zsseg import conversion as zsseg_conversion
from maskformer_family_checks import check_bench_run_on_synthetic_sets, check_untrained_segmenter


def test_crop_masks_and_patch_masks_follow_the_official_rules():
    mask = torch.zeros(6, 8, dtype=torch.bool)
    mask[1:3, 2:7] = True  # box (2, 1, 7, 3): a 2 x 5 cut
    cut = crop_masks(mask[None], MaskClipConfig(crop_size=4))
    assert cut.shape == (1, 1, 4, 4) and cut.dtype == torch.float32 and bool((cut == 1).all())
    ring = torch.zeros(6, 6, dtype=torch.bool)
    ring[0, :] = ring[:, 0] = True  # box = the whole image; only the top row / left column inside
    cut = crop_masks(ring[None], MaskClipConfig(crop_size=6))
    # a patch counts as inside when any of its pixels is (official ceil(avg_pool))
    inside = patch_masks(cut, 3)
    assert inside.shape == (1, 4, 1) and inside.flatten().tolist() == [1.0, 1.0, 1.0, 0.0]


class _Visual(nn.Module):
    """A two-block ViT with the open_clip VisionTransformer attributes the mask prompts use."""

    def __init__(self, width=4, patch=2, grid=2):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.Identity()
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList([nn.Identity(), nn.Identity()])
        self.ln_post = nn.Identity()
        self.proj = nn.Parameter(torch.eye(width))


def test_mask_prompts_replace_the_outside_patches_at_the_prompt_depth():
    """Depth 2 on a 2 x 2 patch grid with identity blocks: what block 2 receives has the outside patch
    replaced by its layer-1 prompt row and the inside patches left as they are."""
    visual = _Visual()
    crops = torch.randn(1, 3, 4, 4)
    crop_mask = torch.ones(1, 1, 4, 4)
    crop_mask[..., 2:, 2:] = 0  # patch 3 (bottom right) outside
    prompts = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(2, 4, 4)
    seen = []
    visual.transformer.resblocks[1] = _Recorder(seen)
    encode_with_mask_prompts(visual, prompts, crops, crop_mask)
    tokens = seen[0]  # input of block 2 = output of block 1, after the depth-1 prompt
    torch.testing.assert_close(tokens[0, 4], prompts[1, 3])  # outside: prompt row of patch 3, layer 1
    patches = visual.conv1(crops).flatten(2).transpose(1, 2)
    torch.testing.assert_close(tokens[0, 1], patches[0, 0])  # inside: the patch token itself


class _Recorder(nn.Module):
    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def forward(self, x):
        self.seen.append(x.clone())
        return x


def test_an_official_checkpoint_of_the_tiny_config_loads_every_tensor_exactly(tmp_path):
    torch.manual_seed(0)
    net = conversion.create_ovseg("ovseg-tiny")
    nn.init.normal_(net.mask_embedding)  # not the zero init, so a lost key would show
    state = conversion.to_official(net.state_dict())
    assert state["clip_adapter.clip_model.visual.mask_embedding"].shape == (3, 196, 64)
    mean = (torch.tensor((0.48145466, 0.4578275, 0.40821073)) * 255.0).reshape(1, 3, 1, 1)
    std = (torch.tensor((0.26862954, 0.26130258, 0.27577711)) * 255.0).reshape(1, 3, 1, 1)
    loss_weights = torch.ones(172)
    loss_weights[-1] = 0.1
    state.update({zsseg_conversion.ADAPTER_MEAN: mean, zsseg_conversion.ADAPTER_STD: std,
                  zsseg_conversion.LOSS_WEIGHTS: loss_weights,
                  "backbone.layers.0.blocks.0.attn.relative_position_index":
                      net.maskformer.backbone.layers[0].blocks[0].attn.relative_position_index})
    torch.save(state, tmp_path / "ovseg.pth")
    loaded = conversion.create_ovseg("ovseg-tiny", checkpoint=tmp_path / "ovseg.pth")
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    del state["clip_adapter.clip_model.visual.mask_embedding"]
    torch.save(state, tmp_path / "missing.pth")
    from model.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="missing keys: clip_adapter.clip_model.visual.mask_embedding"):
        conversion.create_ovseg("ovseg-tiny", checkpoint=tmp_path / "missing.pth")


@pytest.fixture
def tiny_as_l(monkeypatch):
    """ovseg-l built at the tiny config (short side 64) for end-to-end runs."""
    monkeypatch.setitem(OVSEG_CONFIGS, "ovseg-l", dataclasses.replace(OVSEG_TINY, name="ovseg-l", test_short_side=64,
                                                                      test_max_side=256))


def test_the_segmenter_runs_seeded_untrained_weights_and_reports_its_protocol(tiny_as_l):
    from catseg_bench.segmenters.ovseg import OVSegSegmenter

    settings = check_untrained_segmenter(OVSegSegmenter, "ovseg-l")
    assert settings["random_init_seed"] == 3 and settings["ensemble_weight"] == 0.7
    assert settings["mask_threshold"] == 0.4 and settings["short_side"] == 64 and settings["mask_prompt_depth"] == 3


def test_bench_run_end_to_end_on_synthetic_sets(cli, tiny_as_l, tmp_path):
    for settings in check_bench_run_on_synthetic_sets(cli, tmp_path, "ovseg-l", "CC BY-NC 4.0"):
        assert settings["ensemble_weight"] == 0.7


def test_the_registered_config_is_the_mess_protocol():
    assert (OVSEG_L.test_short_side, OVSEG_L.test_max_side) == (640, 2560)
    assert (OVSEG_L.mask_clip.mask_threshold, OVSEG_L.mask_clip.ensemble_weight) == (0.4, 0.7)
    assert OVSEG_L.mask_prompt_depth == 3 and OVSEG_L.clip_grid == 16
    assert OVSEG_L.maskformer.backbone.depths == (2, 2, 18, 2) and OVSEG_L.maskformer.backbone.window_size == 12


def test_runs_find_the_seed_tables_ovseg_row():
    """`bench table --published seed` pairs an `ovseg-l` run with the seed's "OVSeg-L" row."""
    from catseg_bench.tables import match_key

    rows = json.loads((REPO_ROOT / "results" / "published" / "seed_table1.json").read_text())["rows"]
    assert [r["model"] for r in rows if match_key(r["model"]) == match_key("ovseg-l")] == ["OVSeg-L"]
