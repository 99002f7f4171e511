"""Parity with the official ZegFormer code (the MESS fork) on the fixture of tests/data/zegformer (its
README says how the official code was run: formula weights, 8 queries, CLIP ViT-B/16 with 4 vision
and 2 text blocks, the formula image at short side 320; float64, float32 on 1 and 2 threads, and
as-is with its float16 CLIP).

Our model loads the same formula weights (the checkpoint's keys and the OpenAI file's) through the
real converter and runs `predict_parts` on the same resized image, then the final resize.

* float64: text embeddings, segment logits, mask logits and crop/class logits within 1e-8, the same
  crop boxes, the final scores within 1e-5 and the argmax map equal to the official float64 run's.
* float32: the official float32 output moves by itself (its 1- and 2-thread runs differ up to 1.1e-5
  in the scores and 1.5e-2 in a class logit: one mask pixel at the 0.5 threshold moves a crop box,
  and the argmax in 1851 of 305,760 pixels), so the issue's float64 rule applies: every output
  within the larger of 1e-5 and the recorded spread of the two official float32 runs, and the
  argmax map differing from the official float32 one in no more pixels than the two official runs
  differ from each other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from formula_weights import make_image, zegformer_clip_keys, zegformer_clip_state_dict, zegformer_keys, zegformer_state_dict
from model.maskformer.inference import resize_scores
from model.zegformer.config import ZEGFORMER_B
from model.zegformer.conversion import OPENAI_NON_WEIGHTS, convert_official, zegformer_with_state
from model.zegformer.crops import mask_boxes
from model.zegformer.inference import predict_parts, prepare_image

DATA = Path(__file__).resolve().parent / "data" / "zegformer"


@pytest.fixture(scope="module")
def fixture():
    run = json.loads((DATA / "zegformer_run.json").read_text())
    return dict(np.load(DATA / "zegformer.npz")), run


def fixture_config(run: dict, clip_fp16: bool = False):
    """ZegFormer-B with the fixture's reductions (README section 4), its CLIP in float16 or not."""
    b = dataclasses.replace(ZEGFORMER_B, clip_fp16=clip_fp16)
    vision_layers, text_layers = run["openai_layers"]
    predictor = dataclasses.replace(b.maskformer.predictor, num_queries=run["queries"])
    return dataclasses.replace(
        b, maskformer=dataclasses.replace(b.maskformer, predictor=predictor),
        vision=dataclasses.replace(b.vision, layers=vision_layers), text=dataclasses.replace(b.text, layers=text_layers),
        test_short_side=run["min_size_test"], test_max_side=run["max_size_test"])


@pytest.fixture(scope="module")
def converted(fixture):
    _, run = fixture
    official = {k: torch.from_numpy(v) for k, v in zegformer_state_dict(zegformer_keys(run["queries"])).items()}
    clip = {k: torch.from_numpy(v) for k, v in zegformer_clip_state_dict(zegformer_clip_keys(run["openai_layers"])).items()
            if k not in OPENAI_NON_WEIGHTS}
    config = fixture_config(run)  # the float32 / float64 CLIP; `run_ours` sets clip_fp16
    return config, convert_official(official, clip, "formula weights")


def run_ours(fixture, converted, dtype, clip_fp16=False):
    data, run = fixture
    config, state = converted
    config = dataclasses.replace(config, clip_fp16=clip_fp16)
    model = zegformer_with_state(config, {k: v.clone() for k, v in state.items()})
    if not clip_fp16:  # (`.to` would cast the float16 CLIP back)
        model = model.to(dtype)
    image = prepare_image(model, make_image(*run["image_hw"], seed=0))
    assert hashlib.sha256(image.tobytes()).hexdigest() == run["image_resized_sha256"]
    with torch.no_grad():
        embeds = model.class_embeddings(list(data["class_names"]))
        parts = predict_parts(model, image, embeds)
        padded = torch.nn.functional.interpolate(parts["mask_logits"][None], scale_factor=4, mode="bilinear",
                                                 align_corners=False)[0]
    parts["boxes"] = mask_boxes(padded.sigmoid() > 0.5)
    parts["final"] = resize_scores(parts["scores"], tuple(run["image_hw"]))
    parts["embeds"] = embeds
    return parts


def max_diff(ours, official) -> float:
    return float(np.abs(np.asarray(ours, dtype=np.float64) - np.asarray(official, dtype=np.float64)).max())


def compare(ours, ref, strides) -> dict[str, float]:
    s, m, c = strides["scores"], strides["mask_logits"], strides["channels"]
    return {
        "query_text": max_diff(ours["embeds"][0][:, ::c], ref["query_text"]),
        "clip_text": max_diff(ours["embeds"][1][:, ::c], ref["clip_text"]),
        "segment_logits": max_diff(ours["segment_logits"], ref["segment_logits"]),
        "mask_logits": max_diff(ours["mask_logits"][:, ::m, ::m], ref["mask_logits"]),
        "class_logits": max_diff(ours["class_logits"], ref["class_logits"]),
        "scores": max_diff(ours["final"][:, ::s, ::s], ref["scores"]),
    }


@pytest.mark.parametrize("dtype, run", [(torch.float64, "fp64_t1"), (torch.float32, "fp32_t1")],
                         ids=["float64", "float32"])
def test_zegformer_matches_the_official_code(fixture, converted, dtype, run):
    data, info = fixture
    torch.set_num_threads(1)
    ours = run_ours(fixture, converted, dtype)
    ref = {k.split("/", 1)[1]: v for k, v in data.items() if k.startswith(run + "/")}
    diffs = compare(ours, ref, info["strides"])
    argmax = ours["final"].argmax(0).numpy()
    if dtype == torch.float64:
        assert {k: v for k, v in diffs.items() if v > (1e-5 if k == "scores" else 1e-8)} == {}, diffs
        assert np.array_equal(ours["boxes"].numpy(), ref["boxes"])
        assert np.array_equal(argmax, ref["argmax"])
    else:
        spread = info["spreads"]["fp32_t1 vs fp32_t2"]
        names = {"query_text": "text_features", "clip_text": "text_features_clip", "segment_logits": "query_logits",
                 "mask_logits": "mask_logits", "class_logits": "final_logits", "scores": "sem_seg"}
        over = {k: v for k, v in diffs.items() if v > max(1e-5, spread[names[k]])}
        assert over == {}, diffs
        assert int((argmax != ref["argmax"]).sum()) <= spread["argmax_differing_pixels"]


def test_zegformer_float16_clip_matches_the_official_code_as_written(fixture, converted):
    """`clip_fp16`: the official code as written (float16 CLIP, float32 MaskFormer), run `fp16clip_t1`."""
    data, info = fixture
    torch.set_num_threads(1)
    ours = run_ours(fixture, converted, torch.float32, clip_fp16=True)
    ref = {k.split("/", 1)[1]: v for k, v in data.items() if k.startswith("fp16clip_t1/")}
    diffs = compare(ours, ref, info["strides"])
    argmax = ours["final"].argmax(0).numpy()
    # float16 CPU kernels round differently with the tensor layout: open_clip's towers are batch
    # first, OpenAI's sequence first, so a text or crop embedding moves by an ulp of float16
    # (measured: text 1.2e-4, segment logits 5.5e-3, class logits 1.1e-2 = one float16 ulp at
    # |logit| 16, scores 2.4e-5, mask logits 0, argmax 14,945 of 305,760 pixels)
    limits = {"query_text": 2.5e-4, "clip_text": 2.5e-4, "segment_logits": 1e-2, "mask_logits": 1e-5,
              "class_logits": 2e-2, "scores": 5e-5}
    assert {k: v for k, v in diffs.items() if v > limits[k]} == {}, diffs
    # ... and still reproduces what float16 does to the output: its argmax is far closer to the
    # official float16 run's than the official float64 run is (56,866 pixels apart)
    spread = info["spreads"]["fp16clip_t1 vs fp64_t1"]
    assert int((argmax != ref["argmax"]).sum()) <= spread["argmax_differing_pixels"] // 3
