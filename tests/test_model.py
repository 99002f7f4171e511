"""CAT-Seg architecture: registry, official parameter counts, the tiny variant end to end, and
the pieces whose numerics were rearranged for speed checked against their plain definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import model
from model import inference
from model.aggregator import ClassAggregation, cost_volume, linear_attention, shifted_window_mask
from model.catseg import CATSeg
from model.configs import CONFIGS
from model.inference import _merge_sliding, _sliding_views, resized_shape
from model.text import class_prompts, first_synonym, tokenize


@pytest.fixture(scope="module")
def tiny() -> CATSeg:
    torch.manual_seed(0)
    return model.create_model("catseg-tiny")


def meta_model(name: str) -> CATSeg:
    with torch.device("meta"):
        return CATSeg(model.get_config(name))


def n_params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def test_registry_lists_every_variant_and_rejects_unknown_names():
    assert model.list_models() == ["catseg-b", "catseg-eva02-l", "catseg-eva02-tiny", "catseg-l", "catseg-siglip-l",
                                   "catseg-siglip-tiny", "catseg-tiny"]
    with pytest.raises(ValueError, match="catseg-b, catseg-eva02-l, .*, catseg-tiny"):
        model.get_config("catseg-h")


@pytest.mark.parametrize(
    "name, total, clip, trainable",
    [
        # totals from the official key lists; trainable = q/v of both towers + the new modules
        ("catseg-b", 154_289_378, 149_620_737, 12 * 2 * 768**2 + 12 * 2 * 512**2 + 2_308_961 + 2_359_680),
        ("catseg-l", 433_726_946, 427_944_193, 24 * 2 * 1024**2 + 12 * 2 * 768**2 + 2_636_641 + 3_146_112),
    ],
)
def test_official_variants_build_with_the_official_parameter_counts(name, total, clip, trainable):
    net = meta_model(name)
    assert n_params(net) == total
    assert n_params(net.clip) == clip
    net.freeze_for_finetuning()
    assert n_params(net) == total  # the q/k/v split does not add parameters
    assert n_params(net, trainable_only=True) == trainable


def test_every_variant_has_a_consistent_config():
    for config in CONFIGS.values():
        assert config.feature_size == 24 and config.logit_size == 96
        assert config.feature_size % config.window_size == 0
        assert max(config.guidance_taps) < config.vision.layers - 1  # taps precede the dense last block
        assert all(d % 16 == 0 for d in config.decoder_dims)  # GroupNorm(d // 16)


@pytest.mark.parametrize("num_classes", [1, 2, 300])
def test_tiny_forward_gives_logits_for_every_class(tiny, num_classes):
    names = [f"thing {i}" for i in range(num_classes)]
    text = model.encode_classes(tiny, names)
    assert text.shape == (num_classes, 32)
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(num_classes))
    images = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        logits = tiny(images, text)
    assert logits.shape == (1, num_classes, 96, 96)
    assert torch.isfinite(logits).all()
    kept = (logits != -100).flatten(2).all(dim=-1)  # classes a window kept have real logits everywhere
    pad_len = tiny.config.pad_len  # 256 for B and L
    assert int(kept.sum()) == min(num_classes, pad_len)
    if num_classes > pad_len:
        # the dropped classes are -100 everywhere; the kept ones are those a smaller
        # vocabulary of exactly these classes would give (the class block is order-free)
        assert ((logits == -100).flatten(2).all(dim=-1) == ~kept).all()
        with torch.no_grad():
            subset = tiny(images, text[kept[0]])
        torch.testing.assert_close(logits[:, kept[0]], subset, atol=1e-4, rtol=1e-4)


def test_top_classes_are_the_best_matching_ones(tiny):
    text = model.encode_classes(tiny, [f"thing {i}" for i in range(300)])
    images = torch.randn(1, 3, 384, 384)
    captured = {}
    hook = tiny.aggregator.register_forward_hook(lambda m, args, out: captured.update(args=args, out=out))
    with torch.no_grad():
        tiny(images, text)
    hook.remove()
    img_feats, text_in = captured["args"][:2]
    best = cost_volume(img_feats, text_in).flatten(2).amax(-1)[0]
    selected = captured["out"][1][0]
    assert sorted(selected.tolist()) == sorted(best.topk(tiny.config.pad_len).indices.tolist())


def test_training_forward_pools_classes_and_trains_only_q_and_v(tiny):
    net = model.create_model("catseg-tiny")
    before = net.canonical_state_dict()
    net.freeze_for_finetuning()
    after = net.canonical_state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    net.train()
    tokens = net.tokenize(["sky", "road", "tree"])
    text = net.text_embeddings(["sky", "road", "tree"])
    torch.testing.assert_close(net.text_embeddings(tokens), text)
    logits = net(torch.randn(2, 3, 384, 384), tokens)  # token ids: encoded with gradients; pool 2
    assert logits.shape == (2, 3, 96, 96)
    F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits)).backward()
    for tower in (net.clip.visual.transformer, net.clip.transformer):
        qkv = tower.resblocks[0].attn.parametrizations.in_proj_weight
        assert qkv.original0.grad is not None and qkv.original0.grad.abs().sum() > 0  # q
        assert qkv.original1.grad is None  # k stays frozen
        assert qkv.original2.grad is not None and qkv.original2.grad.abs().sum() > 0  # v
        assert tower.resblocks[0].attn.in_proj_bias.grad is None
    assert net.clip.token_embedding.weight.grad is None
    assert net.aggregator.layers[0].attention.padding_tokens.grad is not None
    with torch.no_grad():
        pooled_1 = net(torch.zeros(1, 3, 384, 384), text, pool_size=1)
        pooled_2 = net(torch.zeros(1, 3, 384, 384), text, pool_size=2)
    assert not torch.allclose(pooled_1, pooled_2)


def test_text_cache_is_per_class_list_and_emptied_by_training(tiny):
    first = model.encode_classes(tiny, ["sky", "road"])
    assert model.encode_classes(tiny, ["sky", "road"]) is first
    assert model.encode_classes(tiny, ["road", "sky"]) is not first
    tiny.train()
    tiny.eval()
    again = model.encode_classes(tiny, ["sky", "road"])
    assert again is not first
    torch.testing.assert_close(again, first)


def test_prompts_use_the_template_and_the_first_synonym():
    assert first_synonym("sofa, couch, lounge") == "sofa"
    assert first_synonym("building,edifice") == "building,edifice"  # only ', ' separates synonyms
    assert class_prompts(["traffic light", "building, edifice"], "A photo of a {} in the scene") == [
        "A photo of a traffic light in the scene",
        "A photo of a building in the scene",
    ]
    tokens = tokenize(["A photo of a bed  in the scene", "a photo of a bed in the scene"], 77)
    assert tokens.shape == (2, 77)
    assert torch.equal(tokens[0], tokens[1])  # lower-cased, whitespace collapsed
    assert tokens[0, 0] == 49406 and 49407 in tokens[0].tolist()


def test_class_block_equals_its_plain_definition():
    """Padding tokens in closed form and split q/k products = concatenate, pad to 256, attend."""
    torch.manual_seed(1)
    block = ClassAggregation(dim=16, guidance_dim=8, num_heads=4, pad_len=10)
    with torch.no_grad():
        block.padding_tokens.normal_()
        block.padding_guidance.normal_()
    x = torch.randn(2, 16, 3, 4, 4)
    guidance = torch.randn(2, 3, 8)

    def plain(x, guidance, pool):
        b, e, t, h, w = x.shape
        p = F.avg_pool2d(x.reshape(b, e * t, h, w), pool) if pool > 1 else x.reshape(b, e * t, h, w)
        hp, wp = p.shape[-2:]
        seq = p.reshape(b, e, t, hp * wp).permute(0, 3, 2, 1).reshape(b * hp * wp, t, e)
        g = guidance.repeat_interleave(hp * wp, dim=0)
        seq = torch.cat([seq, block.padding_tokens.expand(seq.shape[0], 7, e)], 1)
        g = torch.cat([g, block.padding_guidance.expand(seq.shape[0], 7, 8)], 1)
        att = block.attention
        n = block.norm1(seq)
        q = att.q(torch.cat([n, g], -1)).unflatten(-1, (4, 4))
        k = att.k(torch.cat([n, g], -1)).unflatten(-1, (4, 4))
        v = att.v(n).unflatten(-1, (4, 4))
        qf, kf = F.elu(q) + 1, F.elu(k) + 1
        num = torch.einsum("nlhd,nshd,nshv->nlhv", qf, kf, v)
        den = torch.einsum("nlhd,nshd->nlh", qf, kf)[..., None]
        seq = seq + (num / den).flatten(-2)
        seq = seq + block.MLP(block.norm2(seq))
        out = seq[:, :t].reshape(b, hp, wp, t, e).permute(0, 4, 3, 1, 2).reshape(b, e * t, hp, wp)
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True).reshape(b, e, t, h, w)
        return x + out

    with torch.no_grad():
        for pool in (1, 2):
            torch.testing.assert_close(block(x, guidance, pool), plain(x, guidance, pool), atol=1e-5, rtol=1e-5)


def test_linear_attention_padding_in_closed_form_equals_explicit_padding():
    torch.manual_seed(2)
    q, k, v = (torch.randn(3, 5, 2, 2, 4) for _ in range(3))  # (B, classes, positions, heads, d)
    k_pad, v_pad = torch.randn(2, 4), torch.randn(2, 4)
    explicit = linear_attention(
        q, torch.cat([k, k_pad.expand(3, 6, 2, 2, 4)], 1), torch.cat([v, v_pad.expand(3, 6, 2, 2, 4)], 1), length=11
    )
    torch.testing.assert_close(linear_attention(q, k, v, length=11, pad=(k_pad, v_pad, 6)), explicit)


def test_shift_mask_separates_the_regions_rolled_together():
    mask = shifted_window_mask(24, 12, 6)
    assert mask.shape == (4, 144, 144)
    assert set(mask.unique().tolist()) == {0.0, -100.0}
    assert (mask[0] == 0).all()  # the top-left window holds one region
    assert int((mask[3] == 0).sum()) == 4 * 36 * 36  # the last window mixes four 6x6-token regions


@pytest.mark.parametrize(
    "size, expected",
    [((480, 640), (640, 853)), ((640, 480), (853, 640)), ((1000, 1000), (640, 640)), ((100, 1000), (256, 2560)),
     ((333, 500), (640, 961))],
)
def test_test_time_resize_follows_detectron2(size, expected):
    assert resized_shape(*size) == expected


def test_sliding_views_tile_the_640_grid_and_add_a_global_view():
    image = torch.arange(3 * 640 * 640, dtype=torch.float32).reshape(3, 640, 640)
    views = _sliding_views(image, 384)
    assert views.shape == (5, 3, 384, 384)
    assert torch.equal(views[0], image[:, :384, :384])
    assert torch.equal(views[1], image[:, :384, 256:])
    assert torch.equal(views[2], image[:, 256:, :384])
    assert torch.equal(views[3], image[:, 256:, 256:])


def test_sliding_merge_averages_overlaps_then_weighs_the_global_view_equally():
    values = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.9])  # windows 0-3, then the global view
    logits = torch.logit(values).view(5, 1, 1, 1).expand(5, 1, 96, 96)
    merged = _merge_sliding(logits, 384)[0]

    def expect(*windows):
        return (sum(values[i] for i in windows) / len(windows) + 0.9) / 2

    torch.testing.assert_close(merged[0, 0], expect(0))
    torch.testing.assert_close(merged[0, 300], expect(0, 1))
    torch.testing.assert_close(merged[300, 0], expect(0, 2))
    torch.testing.assert_close(merged[300, 300], expect(0, 1, 2, 3))
    torch.testing.assert_close(merged[639, 639], expect(3))


def test_sliding_merge_runs_over_class_chunks_with_the_same_values(monkeypatch):
    """At 847 classes the merge must not build full-size (T, 640, 640) temporaries: every
    resized map stays within the chunk budget, and the result equals merging all classes at once."""
    classes, chunk_classes = 40, 7
    budget = chunk_classes * 640 * 640 * 4
    logits = torch.randn(5, classes, 96, 96, generator=torch.Generator().manual_seed(0)) * 4
    at_once = _merge_sliding(logits, 384, max_bytes=classes * 640 * 640 * 4)
    largest = []
    interpolate = inference.F.interpolate

    def recording(*args, **kwargs):
        out = interpolate(*args, **kwargs)
        largest.append(out.numel() * out.element_size())
        return out

    monkeypatch.setattr(inference.F, "interpolate", recording)
    chunked = _merge_sliding(logits, 384, max_bytes=budget)
    assert max(largest) <= budget
    assert len(largest) == 6 * -(-classes // chunk_classes)  # 4 windows + global view + its resize, per chunk
    assert torch.equal(chunked, at_once)


def test_batched_images_give_the_same_probabilities_as_single_ones(tiny):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (200, 300, 3), dtype=np.uint8), rng.integers(0, 256, (320, 240, 3), dtype=np.uint8)]
    text = model.encode_classes(tiny, ["a", "b", "c"])
    together = model.predict_probs(tiny, images, text)  # 10 views in one forward
    alone = [model.predict_probs(tiny, [image], text, max_views=5)[0] for image in images]
    for probs, single, image in zip(together, alone, images):
        assert probs.shape == (3, *image.shape[:2]) and probs.dtype == torch.float32
        torch.testing.assert_close(probs, single, atol=1e-5, rtol=0)
        assert ((probs > 0) & (probs < 1)).all()


def test_whole_mode_and_bf16_run_at_the_original_size(tiny):
    image = np.random.default_rng(1).integers(0, 256, (150, 170, 3), dtype=np.uint8)
    text = model.encode_classes(tiny, ["a", "b"])
    whole = model.predict_probs(tiny, [image], text, mode="whole")[0]
    assert whole.shape == (2, 150, 170)
    (labels,) = model.predict_labels(tiny, [image], text, mode="whole")
    assert torch.equal(labels, whole.argmax(0))
    fp32 = model.predict_probs(tiny, [image], text)[0]
    bf16 = model.predict_probs(tiny, [image], text, precision="bf16")[0]
    assert bf16.dtype == torch.float32
    assert (bf16 - fp32).abs().max() < 0.05
    with pytest.raises(ValueError, match="mode"):
        model.predict_probs(tiny, [image], text, mode="tiles")
    with pytest.raises(ValueError, match="precision"):
        model.predict_probs(tiny, [image], text, precision="fp8")
