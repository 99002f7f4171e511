"""Parity with the official CAT-Seg code above `pad_len` = 256 classes (tests/data/parity_b300).

The official aggregator keeps, per view, the 256 classes whose best patch cosine is highest and
gives every other class logit -100 (`cat_seg/modeling/transformer/model.py:693-697, 720-723` at
6d3a188). The fixture holds the official outputs at 300 classes for both official inference
paths, sliding window (eval.sh) and the non-sliding path (`TEST.SLIDING_WINDOW False`), on a
reduced-width CAT-Seg-B with formula weights; see its README.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import model
from model.catseg import CATSeg
from model.checkpoint import convert_official

from parity_b300 import B300_DIR, class_names, image, official_state_dict, reduced_config, setup


@pytest.fixture(scope="module")
def fixture():
    return dict(np.load(B300_DIR / "b300.npz"))


@pytest.fixture(scope="module")
def runs():
    """Our model with the fixture's weights, run in both modes; the per-view logits kept."""
    spec = setup()
    config = reduced_config(spec)
    net = CATSeg(config)
    net.load_state_dict(convert_official(official_state_dict(config, spec["seed"]), config, "b300"), strict=True)
    net.eval()
    names = class_names()
    text = model.encode_classes(net, names)
    out = {"text": text, "config": config}
    for mode in ("sliding", "whole"):
        logits = []
        hook = net.register_forward_hook(lambda m, args, y: logits.append(y))
        probs = model.predict_probs(net, [image(spec)], text, mode=mode)[0]
        hook.remove()
        out[mode] = {"probs": probs.numpy(), "logits": torch.cat(logits).numpy()}
    return out


def test_the_fixture_is_above_pad_len(runs, fixture):
    assert runs["config"].pad_len == 256 and len(class_names()) == 300
    assert fixture["sliding_kept"].shape == (5, 300) and fixture["whole_kept"].shape == (1, 300)
    # the selection is decided well above float32 noise, so it must agree exactly
    assert fixture["sliding_selection_margin"].min() > 1e-6 and fixture["whole_selection_margin"].min() > 1e-6


def test_text_embeddings(runs, fixture):
    assert np.abs(runs["text"].numpy() - fixture["text_embeds"]).max() < 1e-5


@pytest.mark.parametrize("mode", ["sliding", "whole"])
def test_each_view_keeps_the_official_256_classes(runs, fixture, mode):
    logits = runs[mode]["logits"]
    kept = (logits > -100).any(-1).any(-1)
    np.testing.assert_array_equal(kept, fixture[f"{mode}_kept"])
    assert (kept.sum(1) == 256).all()
    assert (logits[~kept] == -100).all()  # the dropped classes get exactly the official fill value


@pytest.mark.parametrize("mode", ["sliding", "whole"])
def test_view_logits(runs, fixture, mode):
    ours = runs[mode]["logits"][:, ::10, ::8, ::8]
    assert np.abs(ours - fixture[f"{mode}_logits"]).max() < 1e-4


@pytest.mark.parametrize("mode", ["sliding", "whole"])
def test_probabilities_and_argmax(runs, fixture, mode):
    probs = runs[mode]["probs"]
    assert probs.shape == (300, 120, 160)
    assert np.abs(probs[::10, ::4, ::4] - fixture[f"{mode}_probs"]).max() < 1e-5
    decided = fixture[f"{mode}_top1_minus_top2"] > 1e-5
    np.testing.assert_array_equal(probs.argmax(0)[decided], fixture[f"{mode}_argmax"][decided])
