"""Parity with the official CAT-Seg code on the b12 fixture (../shared/parity, see its README).

The official-format ViT-B state dict is rebuilt from the README's deterministic weight formula
(float64, cast once to float32), written as a detectron2-style file and loaded through the real
checkpoint path. One sliding-window forward through the Python API and one through `bench predict`
must reproduce the official outputs to the README's tolerances.

Without ../shared (a user's clone) the same tests run on `tests/data/parity_b12/`: the key list, the
checksums and a strided subset of every compared array (`COMPACT_SLICES`), with the input image
rebuilt from the README's image formula and checked against its recorded sha256. With ../shared a
test asserts that this compact copy is exactly the strided full fixture.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

import model
from model.aggregator import shifted_window_mask
from model.text import class_prompts, tokenize

from conftest import SHARED_DIR, TEST_DATA
from formula_weights import fill, make_image

COMPACT_DIR = TEST_DATA / "parity_b12"
EVERY = slice(None)
# Which part of each compared array the compact copy keeps (every array is compared in full with ../shared).
COMPACT_SLICES = {
    "tokens": (EVERY,),
    "text_embeds": (EVERY,),
    "clip_dense_patches": (EVERY, slice(None, None, 48)),
    "corr": (Ellipsis, slice(None, None, 4), slice(None, None, 4)),
    "aggregator_logits": (Ellipsis, slice(None, None, 8), slice(None, None, 8)),
    "probs": (EVERY, slice(None, None, 16), slice(None, None, 16)),
    "argmax": (slice(None, None, 16), slice(None, None, 16)),
    "top1_minus_top2": (slice(None, None, 16), slice(None, None, 16)),
}


def sha256_of(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def compact_arrays(npz: dict) -> dict[str, np.ndarray]:
    """The strided subset of the full b12 arrays kept in tests/data/parity_b12/compact.npz."""
    full = {**npz, "clip_dense_patches": npz["clip_dense_features"][:, 1:]}
    return {name: full[name][where] for name, where in COMPACT_SLICES.items()}


def checksum_errors(tensor: torch.Tensor, reference: dict) -> tuple[float, float, float]:
    """(relative abs-sum, relative sq-sum, sum / abs-sum) differences, the README's rule."""
    t = tensor.double()
    abs_sum, sq_sum, total = t.abs().sum().item(), (t * t).sum().item(), t.sum().item()
    return (
        abs(abs_sum - reference["abs_sum"]) / reference["abs_sum"],
        abs(sq_sum - reference["sq_sum"]) / reference["sq_sum"],
        abs(total - reference["sum"]) / reference["abs_sum"],
    )


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    """The b12 fixture: in full from ../shared/parity, else the compact copy in tests/data."""
    parity = SHARED_DIR / "parity"
    if parity.is_dir():
        npz = dict(np.load(parity / "b12.npz"))
        npz["clip_dense_patches"] = npz["clip_dense_features"][:, 1:]
        return {
            "npz": npz,
            "view": lambda name: (Ellipsis,),
            "checksums": json.loads((parity / "b12_checksums.json").read_text()),
            "fill_check": json.loads((parity / "fill_check_b_seed0.json").read_text()),
            "keys": json.loads((parity / "keys_b.json").read_text()),
            "classes": json.loads((parity / "b12_classes.json").read_text()),
            "image_png": parity / "b12_image.png",
        }
    digests = json.loads((COMPACT_DIR / "images.json").read_text())
    image = make_image(480, 640, seed=0)
    assert sha256_of(image) == digests["image"], "the image formula no longer gives the b12 image"
    image_png = tmp_path_factory.mktemp("b12") / "b12_image.png"
    from PIL import Image

    Image.fromarray(image).save(image_png)
    npz = dict(np.load(COMPACT_DIR / "compact.npz"))
    npz["image"] = image
    return {
        "npz": npz,
        "view": COMPACT_SLICES.__getitem__,
        "image_resized_sha256": digests["image_resized"],
        "checksums": json.loads((COMPACT_DIR / "b12_checksums.json").read_text()),
        "fill_check": None,
        "keys": json.loads((TEST_DATA / "official_keys" / "keys_b.json").read_text()),
        "classes": json.loads((COMPACT_DIR / "b12_classes.json").read_text()),
        "image_png": image_png,
    }


def compared(fixture: dict, name: str, ours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(our array, the reference) restricted to the part of `name` the fixture holds."""
    return ours[fixture["view"](name)], fixture["npz"][name]


def test_compact_copy_is_the_strided_full_fixture(shared_dir):
    parity = shared_dir / "parity"
    full = dict(np.load(parity / "b12.npz"))
    kept = dict(np.load(COMPACT_DIR / "compact.npz"))
    expected = compact_arrays(full)
    assert kept.keys() == expected.keys()
    for name, array in expected.items():
        np.testing.assert_array_equal(kept[name], array, err_msg=name)
    digests = json.loads((COMPACT_DIR / "images.json").read_text())
    assert digests == {"image": sha256_of(full["image"]), "image_resized": sha256_of(full["image_resized"])}
    assert sha256_of(make_image(480, 640, seed=0)) == digests["image"]
    for name in ("b12_checksums.json", "b12_classes.json"):
        assert json.loads((COMPACT_DIR / name).read_text()) == json.loads((parity / name).read_text()), name


@pytest.fixture(scope="module")
def official_checkpoint(fixture, tmp_path_factory):
    """The formula-filled official B checkpoint, written as detectron2 does; plus per-key stats."""
    state, stats = {}, {}
    for key, shape in fixture["keys"].items():
        if key.endswith("swin_block.block_2.attn_mask"):
            state[key] = shifted_window_mask(24, 12, 6)  # computed, not filled (README section 2)
            continue
        array, rule = fill(key, shape, seed=0)
        flat = array.astype(np.float64).ravel()
        stats[key] = {"rule": rule, "sum": flat.sum(), "abs_sum": np.abs(flat).sum(), "first4": array.ravel()[:4].tolist()}
        state[key] = torch.from_numpy(array)
    path = tmp_path_factory.mktemp("parity") / "model_b12.pth"
    torch.save({"model": state, "iteration": 0}, path)
    return path, stats


@pytest.fixture(scope="module")
def b12_run(official_checkpoint, fixture):
    """One sliding-window forward of the B model through the Python API, with intermediates."""
    net = model.create_model("catseg-b", checkpoint=official_checkpoint[0])
    calls = {}

    def keep(name, what):
        def hook(module, args, out):
            calls.setdefault(name, []).append(args if what == "in" else out)
        return hook

    hooks = [
        net.aggregator.register_forward_hook(keep("aggregator_in", "in")),
        net.aggregator.cost_embed.register_forward_hook(keep("cost_embed_in", "in")),
        net.aggregator.cost_embed.register_forward_hook(keep("corr_embed_conv1_out", "out")),
        net.upsample1.register_forward_hook(keep("guidance_res4", "out")),
        net.upsample2.register_forward_hook(keep("guidance_res5", "out")),
        net.decoder.up1.register_forward_hook(keep("decoder1_out", "out")),
        net.decoder.up2.register_forward_hook(keep("decoder2_out", "out")),
        net.register_forward_hook(keep("logits", "out")),
    ]
    for i, layer in enumerate(net.aggregator.layers):
        hooks.append(layer.swin_block.register_forward_hook(keep(f"layer{i}_swin_out", "out")))
        hooks.append(layer.register_forward_hook(keep(f"layer{i}_out", "out")))
    text = model.encode_classes(net, fixture["classes"])
    probs = model.predict_probs(net, [fixture["npz"]["image"]], text)[0]
    for hook in hooks:
        hook.remove()
    # On the CPU the decoder stages run on chunks of class maps, image by image (model.chunks):
    # their calls' outputs, in order, are the rows of the whole (windows x classes) batch.
    captured = {name: seen[0] if len(seen) == 1 else torch.cat(seen) for name, seen in calls.items()}
    return {"net": net, "text": text, "probs": probs, **captured}


def test_formula_weights_match_the_fill_check(official_checkpoint, fixture):
    if fixture["fill_check"] is None:
        pytest.skip("fill_check_b_seed0.json is only in ../shared/parity (the compact copy checks outputs)")
    stats = official_checkpoint[1]
    assert stats.keys() == fixture["fill_check"].keys()
    for key, expected in fixture["fill_check"].items():
        got = stats[key]
        assert got["rule"] == expected["rule"], key
        assert got["first4"] == pytest.approx(expected["first4"], rel=1e-6, abs=1e-9), key
        assert abs(got["sum"] - expected["sum"]) <= 1e-6 * expected["abs_sum"] + 1e-9, key
        assert got["abs_sum"] == pytest.approx(expected["abs_sum"], rel=1e-6), key


def test_the_checkpoint_loads_with_the_official_parameter_count(b12_run, official_checkpoint):
    net = b12_run["net"]
    assert sum(p.numel() for p in net.parameters()) == 154_289_378
    assert net.checkpoint_sha256 is not None and len(net.checkpoint_sha256) == 64


def test_tokens_are_exact(fixture):
    config = model.get_config("catseg-b")
    tokens = tokenize(class_prompts(fixture["classes"], config.prompt_template), config.text.context_length)
    np.testing.assert_array_equal(*compared(fixture, "tokens", tokens.numpy()))


def test_text_embeddings(b12_run, fixture):
    ours, reference = compared(fixture, "text_embeds", b12_run["text"].numpy())
    assert np.abs(ours - reference).max() < 1e-5


def test_test_time_resize_is_exact(fixture):
    resized = model.resize_short_side(fixture["npz"]["image"])
    if "image_resized" in fixture["npz"]:
        np.testing.assert_array_equal(resized, fixture["npz"]["image_resized"])
    else:
        assert resized.shape == (640, 853, 3) and sha256_of(resized) == fixture["image_resized_sha256"]


def test_dense_clip_features_and_guidance(b12_run, fixture):
    img_feats = b12_run["aggregator_in"][0]  # (5, 512, 24, 24): the dense features without CLS
    ours, reference = compared(fixture, "clip_dense_patches", img_feats.flatten(2).transpose(1, 2).numpy())
    np.testing.assert_allclose(ours, reference.astype(np.float32), atol=2e-3, rtol=2e-3)  # fp16 in the file
    checksums = fixture["checksums"]
    for name, tensor in (("agg_img_feats", img_feats), ("guidance_res4", b12_run["guidance_res4"]),
                         ("guidance_res5", b12_run["guidance_res5"])):
        assert list(tensor.shape) == checksums[name]["shape"]
        assert max(checksum_errors(tensor, checksums[name])) < 1e-5, name


def test_cost_volume(b12_run, fixture):
    ours, reference = compared(fixture, "corr", b12_run["cost_embed_in"][0].reshape(5, 1, 12, 24, 24).numpy())
    assert np.abs(ours - reference).max() < 1e-6


def test_aggregator_intermediates_match_the_checksums(b12_run, fixture):
    for name in ("corr_embed_conv1_out", "layer0_swin_out", "layer0_out", "layer1_swin_out", "layer1_out",
                 "decoder1_out", "decoder2_out"):
        reference = fixture["checksums"][name]
        assert list(b12_run[name].shape) == reference["shape"], name
        assert max(checksum_errors(b12_run[name], reference)) < 1e-5, name


def test_window_logits(b12_run, fixture):
    ours, reference = compared(fixture, "aggregator_logits", b12_run["logits"].numpy())
    assert np.abs(ours - reference).max() < 1e-4


def test_probabilities_and_argmax(b12_run, fixture):
    assert_probabilities_match(fixture, b12_run["probs"].numpy())


def assert_probabilities_match(fixture: dict, probs: np.ndarray) -> None:
    """Probabilities within 1e-5; the same argmax wherever the official top-two margin exceeds 1e-5."""
    assert probs.shape == (12, 480, 640) and probs.dtype == np.float32
    ours, reference = compared(fixture, "probs", probs)
    assert np.abs(ours - reference).max() < 1e-5
    assert_argmax_matches(fixture, probs.argmax(0))


def assert_argmax_matches(fixture: dict, labels: np.ndarray) -> None:
    ours, official = compared(fixture, "argmax", labels)
    decided = fixture["npz"]["top1_minus_top2"] > 1e-5
    assert np.array_equal(ours[decided], official[decided])


def test_bench_predict_reproduces_the_probabilities(official_checkpoint, fixture, tmp_path, cli):
    classes_file = tmp_path / "classes.txt"
    classes_file.write_text("\n".join(fixture["classes"]) + "\n", encoding="utf-8")
    probs_path, pred_path = tmp_path / "probs.npy", tmp_path / "pred.png"
    result = cli("predict", fixture["image_png"], "--model", "catseg-b", "--checkpoint", official_checkpoint[0],
                 "--classes-file", classes_file, "--probs", probs_path, "--out", pred_path, "--device", "cpu")
    assert result.exit_code == 0, result.output
    probs = np.load(probs_path)
    assert_probabilities_match(fixture, probs)
    from PIL import Image

    with Image.open(pred_path) as img:
        assert img.mode == "L"
        assert_argmax_matches(fixture, np.array(img))
