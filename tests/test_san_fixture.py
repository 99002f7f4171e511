"""The official-code SAN fixtures (tests/data/san, README there) hold together: the input image is the
formula's, and the stored maps agree with each other where they overlap."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import TEST_DATA
from formula_weights import make_image, san_keys

SAN_DATA = TEST_DATA / "san"
SCORE_STRIDE, MASK_STRIDE = 8, 4  # README section 5


def load(tag: str) -> tuple[dict, dict]:
    return dict(np.load(SAN_DATA / f"san_{tag}.npz")), json.loads((SAN_DATA / f"san_{tag}_run.json").read_text())


@pytest.mark.parametrize("tag", ["b", "l"])
def test_fixture_is_self_consistent(tag):
    npz, run = load(tag)
    h, w = run["image_hw"]
    image = make_image(h, w, seed=0)
    assert hashlib.sha256(image.tobytes()).hexdigest() == run["image_sha256"]
    names = [str(n) for n in npz["class_names"]]
    assert names == run["class_names"]
    k = len(names)
    assert npz["argmax_fp64"].shape == npz["argmax_fp32"].shape == (h, w)
    assert npz["scores_fp64"].shape == (k, -(-h // SCORE_STRIDE), -(-w // SCORE_STRIDE))
    assert npz["mask_cls_fp64"].shape == (100, k + 1) and npz["text_embeds_fp64"].shape[0] == k
    np.testing.assert_allclose(np.linalg.norm(npz["text_embeds_fp64"], axis=1), 1, atol=1e-12)
    grid = npz["side_adapter_grid"]
    assert npz["mask_preds_fp64"].shape == (100, -(-grid[0] // MASK_STRIDE), -(-grid[1] // MASK_STRIDE))
    # padded = resized rounded up to 32; the side adapter sees it in 16-pixel patches
    assert (npz["padded_hw"] == -(-npz["resized_hw"] // 32) * 32).all() and (grid * 16 == npz["padded_hw"]).all()
    scores = npz["scores_fp64"]
    top2 = np.sort(scores, axis=0)[-2:]
    np.testing.assert_array_equal(npz["margin_fp64"], top2[1] - top2[0])
    np.testing.assert_array_equal(npz["argmax_fp64"][::SCORE_STRIDE, ::SCORE_STRIDE], scores.argmax(0))
    # float32 and float64 runs differ by the recorded spread, and the maps only where margins are small
    spread = float(npz["spread_fp32_fp64"])
    assert spread == run["spreads"]["scores_fp32_vs_fp64_max_abs"] > 0
    coarse = scores[:, ::2, ::2]  # scores_fp32 is kept at stride 16
    assert np.abs(npz["scores_fp32"] - coarse).max() <= spread
    differs = npz["argmax_fp32"] != npz["argmax_fp64"]
    assert differs.sum() == run["spreads"]["argmax_pixels_fp32_ne_fp64"]
    assert (npz["margin_fp64"] > spread).sum() >= (npz["margin_fp64"].size - run["spreads"]["pixels_with_margin_below_spread"])


def test_reduced_l_keys_are_the_full_l_keys_minus_the_dropped_blocks():
    _, run = load("l")
    vision, text = run["openai_layers"]
    dropped = [f"clip_rec_head.resblocks.{i}." for i in range(vision - 18, 6)]
    dropped += [f"ov_classifier.transformer.resblocks.{i}." for i in range(text, 12)]
    kept = {key: shape for key, shape in san_keys("l").items() if not key.startswith(tuple(dropped))}
    assert len(kept) == run["num_keys"]
    assert sum(int(np.prod(s)) for s in kept.values()) == run["num_values"]


def test_fixture_files_are_small():
    assert sum(p.stat().st_size for p in SAN_DATA.rglob("*") if p.is_file()) < 2_000_000
