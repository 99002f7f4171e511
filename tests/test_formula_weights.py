"""The SAN formula weights (tests/formula_weights.py, tests/data/san/README.md section 3): the key
lists of the official SAN-B / SAN-L state dicts and the per-key rules that fill them."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from formula_weights import SAN_LOGIT_SCALE, fill, san_fill, san_keys, san_state_dict, sinhash

PREFIXES = {"criterion", "side_adapter_network", "clip_visual_extractor", "clip_rec_head", "ov_classifier"}
# (keys, values, rule counts) of the official state dicts (recorded by run_san_official.py --dump-keys)
EXPECTED = {
    "b": (442, 157_846_408, {"bias": 214, "matrix": 147, "norm": 71, "embed": 7, "computed": 2, "const": 1}),
    "l": (586, 436_681_096, {"bias": 286, "matrix": 195, "norm": 95, "embed": 7, "computed": 2, "const": 1}),
}


def rule_of(key: str, shape: list[int]) -> str:
    """The rule san_fill picks: it depends on the key and the number of dims only (cheap for big keys)."""
    return san_fill(key, [1] * len(shape), 0)[1]


@pytest.mark.parametrize("size", ["b", "l"])
def test_key_lists_have_the_official_layout(size):
    keys = san_keys(size)
    n_keys, n_values, rules = EXPECTED[size]
    assert len(keys) == n_keys
    assert sum(int(np.prod(s)) for s in keys.values()) == n_values
    assert {k.split(".")[0] for k in keys} == PREFIXES
    assert Counter(rule_of(k, s) for k, s in keys.items()) == rules
    width, layers_before_rec = {"b": (768, 9), "l": (1024, 18)}[size]
    assert keys["clip_visual_extractor.class_embedding"] == [width]
    assert f"clip_visual_extractor.resblocks.{layers_before_rec - 1}.ln_1.weight" in keys
    assert f"clip_visual_extractor.resblocks.{layers_before_rec}.ln_1.weight" not in keys
    assert keys["side_adapter_network.vit_model.pos_embed"] == [1, 1600, 240]


def test_b_state_dict_builds_with_the_listed_shapes():
    keys = san_keys("b")
    state = san_state_dict("b")
    assert list(state) == list(keys)
    for key, shape in keys.items():
        assert state[key].shape == tuple(shape) and state[key].dtype == np.float32, key
    # the rules that differ from CAT-Seg's (README section 3)
    proj = state["clip_rec_head.proj"]  # used as x @ W: fan_in = shape[0] = 768
    z = (2 * sinhash("clip_rec_head.proj", 0, proj.size) - 1) * np.sqrt(3)
    np.testing.assert_array_equal(proj.ravel(), (z / np.sqrt(768)).astype(np.float32))
    for key in ("side_adapter_network.vit_model.pos_embed", "side_adapter_network.query_embed",
                "side_adapter_network.query_pos_embed"):
        z = (2 * sinhash(key, 0, state[key].size) - 1) * np.sqrt(3)
        np.testing.assert_array_equal(state[key].ravel(), (0.02 * z).astype(np.float32), err_msg=key)
    assert state["ov_classifier.logit_scale"] == np.float32(np.log(100.0)) == np.float32(SAN_LOGIT_SCALE)
    mask = state["ov_classifier.attn_mask"]
    assert np.isneginf(mask[0, 1]) and mask[1, 0] == 0 and np.isneginf(np.triu(mask, 1)[np.triu_indices(77, 1)]).all()
    assert (np.tril(mask) == 0).all()
    np.testing.assert_array_equal(state["criterion.empty_weight"], np.r_[np.ones(171), 0.1].astype(np.float32))
    # everything else is exactly the CAT-Seg formula
    for key in ("ov_classifier.text_projection", "side_adapter_network.vit_model.blocks.0.attn.qkv.weight",
                "clip_visual_extractor.ln_pre.weight", "side_adapter_network.mask_decoder.bias_scaling.weight"):
        np.testing.assert_array_equal(state[key], fill(key, keys[key], 0)[0], err_msg=key)
