"""The speed and memory paths of CAT-Seg inference against their plain definitions.

Exact (torch.equal) wherever the fast path promises the same numbers: the chunked arg-max, the
one-view-at-a-time sliding merge, tf32 on the CPU, the reassembly of cache-sized chunks. Within
float rounding where arithmetic was rearranged or matrix products change shape: the one-gather
Swin windows with scaled_dot_product_attention, the split decoder conv and the composed upsampling
kernel, the chunked stages, the elu feature map, the trimmed text context (the b12 parity tests
check all of them against the official code).
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import model
from model import inference
from model.aggregator import SpatialAggregation, _elu1, window_partition
from model.catseg import CATSeg
from model.clip_towers import encode_image_dense
from model.chunks import items_per_chunk, reuse_freed_cpu_memory, run_chunked
from model.decoder import UpStage, upsample_then_conv
from model.inference import (
    _merge_sliding,
    auto_batch_size,
    default_precision,
    largest_batch,
    precision_context,
    predict_labels,
    predict_probs,
    upsampled_argmax,
)


@pytest.fixture(scope="module")
def tiny() -> CATSeg:
    torch.manual_seed(0)
    return model.create_model("catseg-tiny")


def full_argmax(probs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(probs[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0)


@pytest.mark.parametrize("max_bytes", [1, 3 * 50 * 70 * 4, 2**30])  # one class per chunk, 3 per chunk, all at once
def test_chunked_argmax_equals_the_full_argmax(max_bytes):
    probs = torch.rand(10, 17, 23, generator=torch.Generator().manual_seed(0))
    assert torch.equal(upsampled_argmax(probs, (50, 70), max_bytes), full_argmax(probs, (50, 70)))


def test_chunked_argmax_resolves_ties_and_nans_like_torch_argmax():
    probs = torch.zeros(7, 4, 4)
    probs[2] = probs[5] = 0.5  # a tie across chunks: the first index wins
    probs[3, 0, 0] = probs[6, 0, 0] = 0.9  # a tie at one pixel
    probs[4, 1, 1] = probs[6, 1, 1] = float("nan")  # NaN counts as the maximum, first NaN wins
    expected = full_argmax(probs, (4, 4))
    assert expected[0, 0] == 3 and expected[1, 1] == 4 and expected[3, 3] == 2
    for max_bytes in (1, 2 * 16 * 4, 3 * 16 * 4, 2**30):  # 1, 2, 3 classes per chunk, all at once
        assert torch.equal(upsampled_argmax(probs, (4, 4), max_bytes), expected)


def test_sliding_merge_one_view_at_a_time_equals_upsampling_all_views_together():
    logits = torch.randn(5, 6, 96, 96, generator=torch.Generator().manual_seed(1))
    probs = F.interpolate(logits, size=(384, 384), mode="bilinear", align_corners=False).sigmoid()
    total, count = torch.zeros(6, 640, 640), torch.zeros(1, 640, 640)
    for index, (y, x) in enumerate([(0, 0), (0, 256), (256, 0), (256, 256)]):
        total[:, y : y + 384, x : x + 384] += probs[index]
        count[:, y : y + 384, x : x + 384] += 1
    global_probs = F.interpolate(probs[-1:], size=(640, 640), mode="bilinear", align_corners=False)[0]
    assert torch.equal(_merge_sliding(logits, 384), (total / count + global_probs) / 2)


def test_labels_are_exactly_the_argmax_of_the_probabilities(tiny):
    image = np.random.default_rng(3).integers(0, 256, (700, 500, 3), dtype=np.uint8)
    text = model.encode_classes(tiny, [f"class {i}" for i in range(6)])
    (probs,) = predict_probs(tiny, [image], text)
    (labels,) = predict_labels(tiny, [image], text)
    assert labels.shape == (700, 500) and labels.dtype == torch.int64
    assert torch.equal(labels, probs.argmax(0))


def test_chunked_argmax_over_class_pieces_equals_the_full_argmax():
    probs = torch.zeros(7, 4, 4)
    probs[2] = probs[5] = 0.5  # a tie across pieces: the first index wins
    probs[4, 1, 1] = probs[6, 1, 1] = float("nan")
    pieces = [probs[:3], probs[3:4], probs[4:]]
    for max_bytes in (1, 2 * 16 * 4, 2**30):
        assert torch.equal(upsampled_argmax(iter(pieces), (4, 4), max_bytes), full_argmax(probs, (4, 4)))


def test_sliding_labels_never_hold_the_merged_map_of_all_classes(tiny, monkeypatch):
    """At 847 classes the (T, 640, 640) merged probabilities are 1.4 GB: labels reduce the merge's
    class chunks (40 classes each) as they come, and equal the argmax of the full probabilities."""
    image = np.random.default_rng(4).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    text = model.encode_classes(tiny, [f"class {i}" for i in range(100)])  # 3 merge chunks
    (probs,) = predict_probs(tiny, [image], text)

    def whole_map(*args, **kwargs):
        raise AssertionError("predict_labels built the (T, 640, 640) merged map")

    monkeypatch.setattr(inference, "_merge_sliding", whole_map)
    (labels,) = predict_labels(tiny, [image], text)
    assert torch.equal(labels, probs.argmax(0))


def test_tf32_on_the_cpu_is_fp32_and_every_precision_restores_the_global_settings(tiny):
    image = np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    text = model.encode_classes(tiny, ["a", "b", "c"])
    fp32 = predict_probs(tiny, [image], text, mode="whole", precision="fp32")[0]
    assert torch.equal(predict_probs(tiny, [image], text, mode="whole", precision="tf32")[0], fp32)
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    for precision in ("fp32", "tf32", "bf16"):
        with precision_context(torch.device("cpu"), precision):
            pass
        assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(ValueError, match="precision must be one of"):
        with precision_context(torch.device("cpu"), "fp16"):
            pass


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: TF32 switches exist only there")
def test_tf32_context_switches_tf32_on_cuda_and_restores_it():
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    with precision_context(torch.device("cuda"), "tf32"):
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32
    with precision_context(torch.device("cuda"), "fp32"):
        assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
    assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == before


def test_default_precision_is_the_official_one_per_device():
    assert default_precision(torch.device("cuda", 0)) == "tf32"
    assert default_precision(torch.device("cpu")) == "fp32"


def test_auto_batch_size_is_one_image_on_the_cpu(tiny):
    text = model.encode_classes(tiny, ["a", "b"])
    assert auto_batch_size(tiny, text, image_size=(480, 640)) == 1


def test_largest_batch_fits_the_budget():
    # 1 GiB fixed, 3 GiB per image, 20 GiB budget: 6 images use 19 GiB, 7 would need 22
    assert largest_batch(per_image_bytes=3 * 2**30, fixed_bytes=2**30, budget_bytes=20 * 2**30) == 6
    assert largest_batch(per_image_bytes=3 * 2**30, fixed_bytes=2**30, budget_bytes=2**30) == 1  # never below 1
    assert largest_batch(per_image_bytes=1, fixed_bytes=0, budget_bytes=2**40, limit=32) == 32


def plain_spatial_aggregation(block: SpatialAggregation, x: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
    """The Swin definition: roll, partition, masked softmax attention, reverse, roll back."""
    b, e, t, h, w = x.shape
    x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h, w, e)
    g = block.guidance_norm(guidance.permute(0, 2, 3, 1))
    for swin in (block.block_1, block.block_2):
        s, win, shift, attn = swin.size, swin.window, swin.shift, swin.attn
        y, gg = swin.norm1(x), g
        if shift:
            y, gg = (torch.roll(u, (-shift, -shift), (1, 2)) for u in (y, gg))
        gg = window_partition(gg, win)  # (b * nW, L, G), shared by the t classes of an image
        y, gg = window_partition(y, win), gg.unflatten(0, (b, 1, -1)).expand(b, t, -1, -1, -1).flatten(0, 2)
        q = attn.q(torch.cat([y, gg], -1)).unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
        k = attn.k(torch.cat([y, gg], -1)).unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
        v = attn.v(y).unflatten(-1, (attn.num_heads, -1)).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) * attn.scale
        if shift:
            scores = scores + swin.attn_mask.repeat(b * t, 1, 1)[:, None]
        y = attn.proj((scores.softmax(-1) @ v).transpose(1, 2).flatten(-2))
        y = y.view(b * t, s // win, s // win, win, win, e).permute(0, 1, 3, 2, 4, 5).reshape(b * t, s, s, e)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        x = x + y
        x = x + swin.mlp(swin.norm2(x))
    return x.view(b, t, h, w, e).permute(0, 4, 1, 2, 3)


def test_spatial_block_equals_the_plain_swin_definition():
    torch.manual_seed(5)
    block = SpatialAggregation(dim=16, guidance_dim=8, num_heads=4, size=8, window=4)
    x, guidance = torch.randn(2, 16, 3, 8, 8), torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x, guidance), plain_spatial_aggregation(block, x, guidance),
                                   atol=1e-5, rtol=1e-5)


def test_decoder_stage_equals_concatenating_the_repeated_guidance():
    torch.manual_seed(6)
    stage = UpStage(in_channels=32, out_channels=16, guidance_channels=8)
    x, guidance = torch.randn(2 * 3, 32, 5, 5), torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        plain = stage.conv(torch.cat([stage.up(x), guidance.repeat_interleave(3, dim=0)], dim=1))
        torch.testing.assert_close(stage(x, *stage.shared_terms(guidance)), plain, atol=1e-5, rtol=1e-5)


def test_trimmed_text_context_equals_the_full_77_position_tower(tiny):
    tokens = tiny.tokenize(["sky", "a rather long name of a class with many words in it", "road"])
    assert int(tokens.argmax(-1).max()) + 1 < tokens.shape[1]  # the trim is real
    with torch.no_grad():
        full = tiny.clip.encode_text(tokens, normalize=True)
        torch.testing.assert_close(tiny.text_embeddings(tokens), full, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("classes", [5, 40])  # padded class axis; top-k selection (tiny pad_len is 32)
def test_cache_sized_chunks_give_the_unchunked_logits(tiny, monkeypatch, classes):
    images = torch.randn(2, 3, 384, 384, generator=torch.Generator().manual_seed(7))
    text = torch.nn.functional.normalize(torch.randn(classes, 32, generator=torch.Generator().manual_seed(8)), dim=-1)
    with torch.no_grad():
        monkeypatch.setattr("model.chunks.CPU_CHUNK_BYTES", None)
        whole = tiny(images, text)
        monkeypatch.setattr("model.chunks.CPU_CHUNK_BYTES", 1)  # one map / one position per chunk
        one_by_one = tiny(images, text)
        monkeypatch.setattr("model.chunks.CPU_CHUNK_BYTES", 64 * 2**10)  # a few maps, a ragged last chunk
        few = tiny(images, text)
    torch.testing.assert_close(one_by_one, whole, atol=1e-5, rtol=1e-5)  # products of other shapes
    torch.testing.assert_close(few, whole, atol=1e-5, rtol=1e-5)


def test_run_chunked_puts_every_chunk_back_in_place():
    grid = torch.arange(3 * 7 * 2).view(3, 7, 2).float()
    calls = []

    def double(images: slice, items: slice) -> torch.Tensor:
        calls.append((images, items))
        return grid[images, items] * 2

    assert torch.equal(run_chunked(double, 3, 7, per_chunk=3), grid * 2)
    assert len(calls) == 3 * 3  # per image: items 0-2, 3-5, 6
    assert torch.equal(run_chunked(lambda i, p: grid.transpose(1, 2)[i, :, p] + 1, 3, 7, per_chunk=2, dim=2),
                       grid.transpose(1, 2) + 1)
    assert torch.equal(run_chunked(double, 3, 7, per_chunk=None), grid * 2)
    assert items_per_chunk(None, 100) is None and items_per_chunk(250, 100) == 2 and items_per_chunk(50, 100) == 1


def test_elu_feature_map_is_elu_plus_one_within_an_ulp():
    x = torch.cat([torch.linspace(-100, 100, 200_001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, -1e-8, 1e-8])])
    ours, reference = _elu1(x), F.elu(x) + 1
    assert torch.all((ours - reference).abs() <= torch.finfo(torch.float32).eps * reference.abs().clamp(min=1))
    assert torch.equal(ours[x > 0], x[x > 0] + 1)


def test_composed_upsampling_kernel_equals_the_two_convs_on_every_border():
    torch.manual_seed(9)
    up = torch.nn.ConvTranspose2d(6, 4, kernel_size=2, stride=2)
    conv_weight = torch.randn(5, 4, 3, 3)
    x = torch.randn(3, 6, 4, 7)
    with torch.no_grad():
        two_convs = F.conv2d(F.conv_transpose2d(x, up.weight, stride=2), conv_weight, padding=1)
        composed = F.conv_transpose2d(x, upsample_then_conv(up, conv_weight), stride=2, padding=1)
    assert composed.shape == (3, 5, 8, 14)
    torch.testing.assert_close(composed, two_convs, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_glibc_accepts_the_allocator_settings_for_chunk_buffers():
    assert reuse_freed_cpu_memory() is True  # mallopt returns 0 for a value it refuses
    assert reuse_freed_cpu_memory() is True  # and a second call is a no-op


def test_clip_tower_on_chunks_of_images_equals_the_whole_batch(tiny):
    images = torch.randn(3, 3, 384, 384, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        whole, whole_taps = encode_image_dense(tiny.clip, images, tiny.config.guidance_taps)
        chunked, chunked_taps = encode_image_dense(tiny.clip, images, tiny.config.guidance_taps, images_per_chunk=2)
    assert chunked.shape == whole.shape and len(chunked_taps) == len(whole_taps) == 2
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
    for got, expected in zip(chunked_taps, whole_taps):
        torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)
