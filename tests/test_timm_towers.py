"""CAT-Seg on EVA-02-CLIP and SigLIP towers (seed Table 4): configs, dense features, training, CLI.

No weights are downloaded: the L configs are checked against open_clip's and timm's own
definitions built on the meta device; behaviour is checked on the tiny variants, which are the
same timm classes (`catseg_tiny_*`) at tiny widths.
"""

from __future__ import annotations

import json

import pytest
import torch

import model
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite
from model.checkpoint import save_safetensors
from model.timm_towers import _self_only_mask, build_open_clip_towers, encode_image_dense_timm, open_clip_model_config

TABLE4 = ("catseg-eva02-l", "catseg-siglip-l")
TINY = ("catseg-eva02-tiny", "catseg-siglip-tiny")


@pytest.mark.parametrize("name", TABLE4)
def test_table4_configs_describe_open_clips_towers(name):
    import open_clip
    import timm

    config = model.get_config(name)
    towers = config.towers
    cfg = open_clip_model_config(towers)
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    assert cfg["embed_dim"] == config.embed_dim
    assert (text["width"], text["heads"], text["layers"]) == (config.text.width, config.text.heads, config.text.layers)
    assert (text["context_length"], text["vocab_size"]) == (config.text.context_length, config.text.vocab_size)
    with torch.device("meta"):
        trunk = timm.create_model(vision["timm_model_name"], pretrained=False)
    assert trunk.embed_dim == config.vision.width and len(trunk.blocks) == config.vision.layers
    assert trunk.patch_embed.patch_size == (config.vision.patch_size,) * 2
    assert vision["image_size"] == config.clip_resolution and config.feature_size == 24
    assert max(config.guidance_taps) < config.vision.layers - 1
    assert towers.clip_pretrained in open_clip.list_pretrained_tags_by_model(towers.architecture)
    assert "no released CAT-Seg weights" in config.description
    assert model.weights.default_weights(name) is None


def test_eva_value_path_is_the_attention_restricted_to_each_token():
    clip = build_open_clip_towers(model.get_config("catseg-eva02-tiny").towers).eval()
    block = clip.visual.trunk.blocks[-1]
    x = torch.randn(2, 10, 64)
    y = block.norm1(x)
    by_hand = block.attn.proj(block.attn.norm(block.attn.v_proj(y)))
    torch.testing.assert_close(block.attn(y, attn_mask=_self_only_mask(10, y)), by_hand)


def test_siglip_dense_tokens_are_what_its_pooling_head_gives_each_token_alone():
    config = model.get_config("catseg-siglip-tiny")
    clip = build_open_clip_towers(config.towers).eval()
    images = torch.randn(1, 3, 384, 384)
    trunk = clip.visual.trunk
    with torch.no_grad():
        dense, taps = encode_image_dense_timm(clip, config.towers, images, config.guidance_taps)
        tokens = trunk.forward_features(images)
        alone = torch.stack([trunk.attn_pool(tokens[:, i : i + 1]) for i in range(0, 576, 97)], dim=1)
    assert dense.shape == (1, 576, 64) and [t.shape for t in taps] == [(1, 576, 64)] * 2
    torch.testing.assert_close(dense[:, ::97], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_tiny_variants_segment_reload_exactly_and_train_only_q_and_v(name, tmp_path):
    torch.manual_seed(0)
    net = model.create_model(name)
    text = model.encode_classes(net, ["sky", "grass", "brick wall"])
    images = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        logits = net(images, text)
    assert logits.shape == (1, 3, 96, 96) and torch.isfinite(logits).all()
    save_safetensors(net.canonical_state_dict(), net.config, tmp_path / "w.safetensors", None)
    again = model.create_model(name, checkpoint=tmp_path / "w.safetensors")  # built on the meta device
    with torch.no_grad():
        torch.testing.assert_close(again(images, model.encode_classes(again, ["sky", "grass", "brick wall"])), logits,
                                   atol=0, rtol=0)
    net.train()
    net.freeze_for_finetuning()
    trainable = [n for n, p in net.clip.named_parameters() if p.requires_grad]
    assert trainable and all(("original0" in n or "original2" in n or "q_proj.weight" in n or "v_proj.weight" in n)
                             for n in trainable)
    assert net.canonical_state_dict().keys() == model.CATSeg(net.config).state_dict().keys()


def test_models_list_shows_the_table4_architectures(cli):
    result = cli("models", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    for name in TABLE4:
        assert "no released CAT-Seg weights" in rows[name]["description"] and not rows[name].get("weights")
    assert "catseg-eva02-l" in " ".join(cli("models", "list").output.split())


def test_an_untrained_table4_tower_evaluates_like_any_model(cli, tmp_path):
    write_suite(tmp_path / "data", [load_specs()["cwfid"]], images_per_set=1, seed=2)
    result = cli("run", "--model", "catseg-siglip-tiny", "--checkpoint", "none", "--datasets", "cwfid", "--device",
                 "cpu", "--workers", "0", "--published", "none", "--data-root", str(tmp_path / "data"), "--output",
                 str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    saved = read_result(tmp_path / "out" / "catseg-siglip-tiny" / "cwfid.json")
    assert saved.untrained and saved.images_scored == 1


def test_train_demo_runs_on_the_eva02_tower(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("catseg_bench.training.DEMO_HELDOUT_SCENES", 1)  # the plumbing, not the claim
    result = cli("train", "--demo", "--model", "catseg-eva02-tiny", "--output", str(tmp_path / "demo"), "--iters", "1",
                 "--log-period", "1")
    assert result.exit_code == 0, result.output
    assert "catseg-eva02-tiny, trained 1 steps" in result.output
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["model"] == "catseg-eva02-tiny"
    assert cli("train", "--demo", "--model", "catseg-l").exit_code != 0


@pytest.mark.parametrize("name, arch, tag", [("catseg-eva02-l", "EVA02-L-14-336", "merged2b_s6b_b61k"),
                                             ("catseg-siglip-l", "ViT-L-16-SigLIP-384", "webli")])
def test_training_starts_from_the_towers_open_clip_weights(name, arch, tag, monkeypatch):
    import open_clip

    from model.training import clip_init

    calls = []

    def fake_create_model(arch, pretrained=None, cache_dir=None):
        calls.append((arch, pretrained))
        return torch.nn.Linear(1, 1)

    monkeypatch.setattr(open_clip, "create_model", fake_create_model)
    assert clip_init.start_tag(name) == tag
    clip_init.download_openai_clip(name, tag=tag)
    assert calls == [(arch, tag)]
    with pytest.raises(model.CheckpointError, match="no open_clip weights 'openai'"):
        clip_init.download_openai_clip(name)
