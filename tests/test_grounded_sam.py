"""Grounded-SAM: the MESS fork's glue on hand-made detections, the detector and SAM steps, the
segmenter end to end on tiny transformers models, weights and dependency errors."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from catseg_bench import registry
from catseg_bench.errors import BenchError
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite
from model.grounded_sam import configs, glue
from model.grounded_sam.detector import Detector, detector_input_size, detector_pixels
from model.grounded_sam.tokenizer import SPECIAL_IDS, bert_tokenizer, standin_vocab

from conftest import TEST_DATA
from grounded_sam_tiny import TINY

SPECS = load_specs()


# ------------------------------------------------------------------------------------ captions
def test_class_names_go_in_batches_of_fifty_only_past_fifty():
    names = [f"c{i}" for i in range(120)]
    assert glue.class_batches(names[:50]) == [names[:50]]
    assert [len(b) for b in glue.class_batches(names[:51])] == [50, 1]
    assert [b[0] for b in glue.class_batches(names)] == ["c0", "c50", "c100"]


def test_caption_joins_with_dot_space_lowercases_and_ends_with_a_dot():
    assert glue.caption(["Crack", "concrete or asphalt"]) == "crack. concrete or asphalt."
    assert glue.caption(["sky."]) == "sky."
    assert glue.caption([" road ", "car"]) == "road . car."


def test_decode_glues_wordpieces_keeps_special_tokens_and_cleans_spaces():
    assert glue.decode_tokens(["[CLS]", "c", "##r", "##a", ".", "[SEP]"]) == "[CLS] cra. [SEP]"
    assert glue.decode_tokens(["##ing", "dog", "'", "s"]) == "##ing dog's"
    assert glue.decode_tokens([]) == ""


def test_phrase_takes_every_token_over_the_text_threshold_and_drops_dots():
    tokens = ["[CLS]", "concrete", "or", "asphalt", ".", "crack", ".", "[SEP]"]
    probs = torch.tensor([0.1, 0.2, 0.25, 0.1, 0.2, 0.9, 0.26, 0.0] + [0.0] * 8)
    # 0.25 is not over the threshold; the "." after crack is, and is removed.
    assert glue.phrase(probs, tokens) == "crack"
    probs[4] = 0.3  # the separator before it too: ". crack." -> " crack", which names no class
    assert glue.phrase(probs, tokens) == " crack"
    probs[0] = 0.5  # [CLS] is not masked at GroundingDINO@31aa788
    assert glue.phrase(probs, tokens) == "[CLS] crack"
    probs[0], probs[4], probs[3] = 0.0, 0.2, 0.4
    assert glue.phrase(probs, tokens) == "asphalt crack"


def test_phrases_match_class_names_exactly_or_not_at_all():
    names = ["concrete or asphalt", "crack", "Crack", "t-shirt"]
    assert glue.phrase_class("crack", names) == 1
    assert glue.phrase_class("concrete or asphalt", names) == 0
    assert glue.phrase_class("asphalt", names) is None  # no substring matching (that came after 31aa788)
    assert glue.phrase_class("t - shirt", names) is None  # BERT splits the hyphen: never equal


# -------------------------------------------------------------------------------------- scores
def test_class_scores_hand_computed():
    """Three classes, background 0; boxes: class 1 twice, class 2 once, one without a class."""
    m = torch.tensor
    masks = torch.stack([
        m([[2.0, -1.0, -3.0], [0.5, -2.0, -1.0]]),  # class 1, conf 0.5
        m([[1.0, 4.0, -2.0], [-1.0, -1.0, -1.0]]),  # class 1, conf 0.25
        m([[-1.0, 1.0, 2.0], [-4.0, -0.5, -2.0]]),  # class 2, conf 1.0
        m([[3.0, 3.0, 3.0], [-1.0, -1.0, 0.4]]),    # no class -> background 0, conf 0.5
    ])
    conf = m([0.5, 0.25, 1.0, 0.5])
    scores = glue.ClassScores(3, 0, (2, 3))
    scores.add(masks, conf, [1, 1, 2, None])
    r = scores.finish()
    expected = m([
        [[1.5, 1.5, 1.5], [-0.5, 1.0, 0.2]],       # background: box 4 x 0.5; (1,1) has no positive score -> 1
        [[1.0, 1.0, -0.5], [0.25, -0.25, -0.25]],  # class 1: max(box1 x .5, box2 x .25)
        [[-1.0, 1.0, 2.0], [-4.0, -0.5, -2.0]],    # class 2
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],        # the extra channel (no background-less set here)
    ])
    torch.testing.assert_close(r, expected, rtol=0, atol=0)
    labels = glue.semantic_labels(r, (2, 3))
    assert labels.tolist() == [[0, 0, 2], [1, 0, 0]]


def test_a_set_without_background_drops_the_extra_channel_before_the_argmax():
    """MESS background_class 255 -> num_classes: unclassed boxes and uncovered pixels go to the extra
    channel, which is dropped; such pixels take the arg-max of the remaining (<= 0) scores."""
    masks = torch.tensor([[[1.0, -2.0, -1.0]], [[-3.0, -1.0, 2.0]]])
    scores = glue.ClassScores(3, None, (1, 3))
    scores.add(masks, torch.tensor([1.0, 1.0]), [1, None])
    r = scores.finish()
    torch.testing.assert_close(r, torch.tensor([[[0.0, 0.0, 0.0]], [[1.0, -2.0, -1.0]], [[0.0, 0.0, 0.0]],
                                                [[-3.0, 1.0, 2.0]]]))
    # pixel 1: classes 0 and 2 score 0 (no box), class 1 -2: the first maximum, class 0.
    assert glue.semantic_labels(r, (1, 3)).tolist() == [[1, 0, 0]]
    assert glue.background_channel(None, 3) == glue.background_channel(255, 3) == 3
    assert glue.background_channel(11, 12) == 11


def test_boxes_in_chunks_give_the_all_at_once_map():
    gen = torch.Generator().manual_seed(0)
    masks, conf = torch.randn(9, 5, 6, generator=gen), torch.rand(9, generator=gen)
    ids = [0, 2, None, 2, 1, None, 0, 0, 3]
    whole = glue.ClassScores(4, 1, (5, 6))
    whole.add(masks, conf, ids)
    chunked = glue.ClassScores(4, 1, (5, 6))
    for first in range(0, 9, 4):
        chunked.add(masks[first : first + 4], conf[first : first + 4], ids[first : first + 4])
    assert torch.equal(whole.finish(), chunked.finish())


def test_the_forks_background_rule_for_a_vocabulary_without_a_set():
    assert glue.fallback_background(["sky", "others", "background"]) == 2
    assert glue.fallback_background(["sky", "Others"]) == 1
    assert glue.fallback_background(["sky", "road"]) == 0


def test_box_conversion_to_pixels():
    boxes = glue.boxes_to_pixels(torch.tensor([[0.5, 0.5, 0.2, 0.4]]), height=100, width=200)
    torch.testing.assert_close(boxes, torch.tensor([[80.0, 30.0, 120.0, 70.0]]))


# ------------------------------------------------------------------------------------ detector
def test_detector_resize_follows_randomresize_800_max_1333():
    assert detector_input_size(768, 1024) == (800, 1066)
    assert detector_input_size(1024, 768) == (1066, 800)
    assert detector_input_size(200, 1024) == (260, 1331)  # max side: size = round(1333 * 200 / 1024)
    assert detector_input_size(800, 1000) == (800, 1000)


def test_detector_sees_the_channels_reversed_as_the_fork_fed_them():
    image = np.zeros((800, 900, 3), np.uint8)
    image[..., 0] = 255  # pure red
    x = detector_pixels(image)
    assert x.shape == (1, 3, 800, 900)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([(0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.406) / 0.225]))


class FakeDetectorModel(torch.nn.Module):
    """Returns fixed per-caption logits and boxes: a stand-in for GroundingDINO in the glue test."""

    def __init__(self, outputs):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.outputs, self.captions = outputs, []

    def forward(self, pixel_values, input_ids, **kwargs):
        self.captions.append(input_ids[0].tolist())
        logits, boxes = self.outputs[len(self.captions) - 1]
        return SimpleNamespace(logits=logits[None], pred_boxes=boxes[None])


def logit(p: float) -> float:
    return float(np.log(p / (1 - p))) if p > 0 else -1e4


def test_detector_batches_thresholds_and_offsets_class_ids(tmp_path):
    """3 names in batches of 2: box ids of the second caption are offset by 2; a query below the
    box threshold is dropped; a phrase naming no class gives None."""
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(standin_vocab()) + "\n")
    tokenizer = bert_tokenizer(vocab)
    tokens1 = tokenizer.convert_ids_to_tokens(tokenizer(["ab. cd."])["input_ids"][0])
    assert tokens1 == ["[CLS]", "a", "##b", ".", "c", "##d", ".", "[SEP]"]

    def probs(row):
        return torch.tensor([logit(p) for p in row] + [-1e4] * (256 - len(row)))

    caption1 = torch.stack([
        probs([0, 0.9, 0.9, 0.1, 0, 0, 0, 0]),  # "ab" -> class 0, conf 0.9
        probs([0, 0.2, 0.2, 0, 0.29, 0.1, 0, 0]),  # best 0.29 <= 0.3: dropped
        probs([0, 0, 0.5, 0, 0.6, 0.6, 0, 0]),  # "##b cd": no class
    ])
    caption2 = torch.stack([probs([0, 0.4, 0.4, 0.3, 0]), probs([0, 0.1, 0.2, 0, 0])])  # "ef." -> class 2
    boxes1 = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1], [0.25, 0.5, 0.5, 1.0]])
    boxes2 = torch.tensor([[0.5, 0.25, 1.0, 0.5], [0.5, 0.5, 0.1, 0.1]])
    fake = FakeDetectorModel([(caption1, boxes1), (caption2, boxes2)])
    detector = Detector(fake, tokenizer, class_batch=2)
    image = np.zeros((40, 80, 3), np.uint8)
    found = detector.detect(image, ["ab", "cd", "ef"])
    assert [tokenizer.convert_ids_to_tokens(c) for c in fake.captions][1] == ["[CLS]", "e", "##f", ".", "[SEP]"]
    assert found.phrases == ["ab", "##b cd", "ef"]  # a leading piece keeps its "##", as BERT's decode does
    assert found.class_ids == [0, None, 2]
    torch.testing.assert_close(found.confidences, torch.tensor([0.9, 0.6, 0.4]))
    torch.testing.assert_close(found.boxes, torch.tensor([[20.0, 10.0, 60.0, 30.0], [0.0, 0.0, 40.0, 40.0],
                                                          [0.0, 0.0, 80.0, 20.0]]))


def test_standin_vocabulary_puts_the_boundary_tokens_at_berts_ids(tmp_path):
    vocab = standin_vocab()
    assert all(vocab[i] == token for token, i in SPECIAL_IDS.items())
    assert len(set(vocab)) == len(vocab)
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    ids = bert_tokenizer(path)(["Crack? sky."])["input_ids"][0]
    assert ids[0] == 101 and ids[-1] == 102 and 1029 in ids and 1012 in ids and 100 not in ids


# -------------------------------------------------------------------------------- end to end
@pytest.fixture
def tiny_models(monkeypatch):
    """grounded-sam-b built at the tiny test config."""
    monkeypatch.setitem(configs.CONFIGS, "grounded-sam-b", TINY)


def test_segmenter_protocol_on_tiny_models(tiny_models):
    registry.available_segmenters()
    from catseg_bench.segmenters.grounded_sam import GroundedSAMSegmenter

    segmenter = GroundedSAMSegmenter("grounded-sam-b", checkpoint="none", seed=3)
    assert segmenter.untrained and segmenter.checkpoint_sha256 is None
    settings = segmenter.settings()
    assert settings["random_init_seed"] == 3 and settings["box_threshold"] == 0.3 and settings["class_batch"] == 50
    segmenter.set_classes(("sky", "others", "road"))
    assert segmenter.background == 1  # no set: the fork's name rule
    original = (np.random.RandomState(0).rand(300, 200, 3) * 255).astype(np.uint8)
    prepared = segmenter.prepare_image(original)
    assert prepared.shape == (1024, 683, 3)  # detectron2 ResizeShortestEdge(1024, max 1024)
    [labels] = segmenter.predict([prepared], [(300, 200)])
    assert labels.shape == (300, 200) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) <= 2
    again = GroundedSAMSegmenter("grounded-sam-b", checkpoint="none", seed=3)
    again.set_classes(("sky", "others", "road"))
    assert torch.equal(again.predict([prepared], [(300, 200)])[0], labels)  # seeded weights


def test_bench_run_end_to_end_on_synthetic_sets(cli, tiny_models, tmp_path):
    data, out = tmp_path / "synth", tmp_path / "runs"
    write_suite(data, [SPECS["deepcrack"], SPECS["cwfid"]], images_per_set=1, seed=0)
    ran = cli("run", "--model", "grounded-sam-b", "--checkpoint", "none", "--datasets", "deepcrack,cwfid",
              "--data-root", data, "--output", out, "--workers", "0", "--published", "none")
    assert ran.exit_code == 0, ran.output
    for name in ("deepcrack", "cwfid"):
        result = read_result(out / "grounded-sam-b" / f"{name}.json")
        assert result.untrained and result.images_scored == 1
        assert result.settings["weights"] == "random" and result.settings["phrase_matching"] == "exact"
        assert result.confusion().sum() > 0
    entries = registry.available_segmenters()
    assert entries["grounded-sam-l"].weights() == ["transformers", "official"]
    assert entries["grounded-sam-b"].source == "built-in" and cli("models", "list").exit_code == 0


def test_missing_weights_offline_is_one_line_naming_the_file_and_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    registry.available_segmenters()
    from catseg_bench.segmenters.grounded_sam import GroundedSAMSegmenter

    with pytest.raises(BenchError) as err:
        GroundedSAMSegmenter("grounded-sam-b")
    text = str(err.value)
    assert "\n" not in text and "model.safetensors of IDEA-Research/grounding-dino-base" in text
    assert "--checkpoint none" in text and "https://huggingface.co/IDEA-Research/grounding-dino-base" in text
    with pytest.raises(BenchError, match="no weights tag 'v9'.*tags: transformers, official"):
        GroundedSAMSegmenter("grounded-sam-b", checkpoint="v9")


def test_missing_transformers_names_the_extra(monkeypatch):
    from model.grounded_sam.requirements import MissingExtraError, require_transformers

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtraError, match=r'pip install "transformers>=4.40" \(the "grounded-sam" extra'):
        require_transformers()


# ---------------------------------------------------------------------------------- converter
OFFICIAL_KEYS = TEST_DATA / "grounded_sam" / "official_keys"


def meta_models(name):
    """The transformers models of a registered config, built without memory."""
    from model.grounded_sam.configs import transformers_configs
    from model.grounded_sam.requirements import require_transformers

    transformers = require_transformers()
    detector_config, sam_config = transformers_configs(configs.CONFIGS[name])
    with torch.device("meta"):
        return transformers.GroundingDinoForObjectDetection(detector_config), transformers.SamModel(sam_config)


def official_state(file_name):
    shapes = json.loads((OFFICIAL_KEYS / file_name).read_text())
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


@pytest.mark.parametrize("name, sam_file", [("grounded-sam-b", "sam_vit_b.json"), ("grounded-sam-l", "sam_vit_l.json")])
def test_the_full_official_key_lists_convert_to_every_transformers_key(name, sam_file):
    """The official files' layouts (key lists of the official model code at full size) map onto every
    key and shape of the transformers models, nothing left over."""
    from model.grounded_sam.convert import convert_groundingdino, convert_sam

    detector, sam = meta_models(name)
    converted = convert_groundingdino(official_state("groundingdino_swinb_cogcoor.json"), detector, "swinb")
    assert set(converted) == set(detector.state_dict())
    assert set(convert_sam(official_state(sam_file), sam, sam_file)) == set(sam.state_dict())


def test_the_converter_splits_fused_projections_and_refuses_what_does_not_fit():
    from model.grounded_sam.convert import ConversionError, convert_sam, rename, GDINO_RENAMES

    qkv = torch.arange(6.0).reshape(6, 1)
    out = rename({"backbone.0.layers.1.blocks.0.attn.qkv.weight": qkv,
                  "transformer.decoder.layers.0.ca_text.in_proj_bias": torch.arange(3.0)}, GDINO_RENAMES, {}, "x")
    prefix = "model.backbone.conv_encoder.model.swin.encoder.layers.1.blocks.0.attention."
    assert [out[prefix + f"{p}_proj.weight"].flatten().tolist() for p in "qkv"] == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert out["model.decoder.layers.0.encoder_attn_text.value.bias"].tolist() == [2.0]
    _, sam_b = meta_models("grounded-sam-b")
    with pytest.raises(ConversionError, match=r"unexpected keys: vision_encoder.layers.12.layer_norm1.weight.*"
                                              r"wrong shapes: vision_encoder.pos_embed \(1, 64, 64, 1024\) "
                                              r"\(expected \(1, 64, 64, 768\)\)"):
        convert_sam(official_state("sam_vit_l.json"), sam_b, "sam_vit_l_0b3195.pth")
    state = official_state("sam_vit_b.json")
    del state["mask_decoder.iou_token.weight"]
    state["mask_decoder.extra.weight"] = torch.empty(1, device="meta")
    with pytest.raises(ConversionError, match=r"f.pth is not an official SAM checkpoint of this model: missing keys: "
                                              r"mask_decoder.iou_token.weight; unexpected keys: mask_decoder.extra.weight$"):
        convert_sam(state, sam_b, "f.pth")
    state["sem_seg_head.weight"] = torch.empty(1, device="meta")
    with pytest.raises(ConversionError, match="f.pth: 1 key.s. of no known official layout: sem_seg_head.weight"):
        convert_sam(state, sam_b, "f.pth")
