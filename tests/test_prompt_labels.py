"""Prompts that differ from the label classes (a spec's `prompt_names` + `prediction_labels`): PAS-20b.

CAT-Seg's VOCbEvaluator (train_net.py at KU-CVLAB/CAT-Seg@6d3a188) asks the model for the 59 names of
voc20b.json, sets every prediction >= 20 to 20 (background) and then accumulates the usual
(K+1)x(K+1) confusion matrix over the 21 label classes. The spec says the same as data; these tests
check the scoring path applies it, on an example computed by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from catseg_bench.errors import BenchError
from catseg_bench.metrics import compute_scores, predictions_as_labels
from catseg_bench.results import read_result
from catseg_bench.specs import SpecError, load_specs
from catseg_bench.synth import write_suite

from spec_texts import write_user_spec

VOC20B = load_specs()["voc20b"]

# One 2x3 image. Label classes: 0 aeroplane, 1 bicycle, 20 background, 255 ignore.
GT = np.array([[0, 20, 255], [20, 1, 0]], dtype=np.uint8)
# Prompt indices the model chose: 25 (bench), 58 (wood) and 20 (bag) are context prompts -> background;
# 3 (boat) falls on the ignore pixel and never counts.
PRED = np.array([[0, 25, 3], [58, 1, 20]], dtype=np.uint8)
# By hand: aeroplane TP 1, 2 in the label, predicted once -> IoU 1 / (2 + 1 - 1) = 1/2; bicycle 1/1;
# background TP 2 of 2, predicted 3 times on labelled pixels -> 2 / (2 + 3 - 2) = 2/3; boat is
# predicted only on an ignore pixel, so (detectron2 v0.6 rule) it is absent and left out.
HAND_MIOU = 100 * (1 / 2 + 1 + 2 / 3) / 3


def vocb_confusion(pred: np.ndarray, gt: np.ndarray, num_classes: int = 21, ignore: int = 255) -> np.ndarray:
    """VOCbEvaluator.process's matrix, written out: pred >= 20 -> 20, ignore -> column K, bincount."""
    pred = pred.astype(np.int64)
    pred[pred >= 20] = 20
    gt = gt.astype(np.int64)
    gt[gt == ignore] = num_classes
    counts = np.bincount((num_classes + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=(num_classes + 1) ** 2)
    return counts.reshape(num_classes + 1, num_classes + 1)


def test_voc20b_spec_states_the_vocb_rule():
    es = VOC20B.eval_sets()[0]
    assert es.num_classes == 21 and es.class_names[20] == "background" and VOC20B.background_index == 20
    assert len(es.prompts) == 59 and es.prompts[:20] == es.class_names[:20]
    assert es.prediction_labels == tuple(range(20)) + (20,) * 39  # pred >= 20 -> 20
    plain = load_specs()["voc20"].eval_sets()[0]
    assert plain.prompts == plain.class_names and plain.prediction_labels is None


def test_predictions_as_labels_numpy_torch_and_passthrough():
    mapped = predictions_as_labels(PRED, VOC20B.prediction_labels, image="x")
    np.testing.assert_array_equal(mapped, [[0, 20, 3], [20, 1, 20]])
    as_tensor = predictions_as_labels(torch.from_numpy(PRED), VOC20B.prediction_labels)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.tolist() == mapped.tolist()
    assert predictions_as_labels(PRED, None) is PRED  # sets without prompts: the prediction itself
    with pytest.raises(BenchError, match=r"img\.png: prediction values \[59\] are outside the 59 prompt indices"):
        predictions_as_labels(np.array([[59]]), VOC20B.prediction_labels, image="img.png")


def test_hand_example_scores_as_vocb_evaluator():
    mapped = predictions_as_labels(PRED, VOC20B.prediction_labels)
    ours = np.zeros((22, 22), dtype=np.int64)
    column = np.where(GT == 255, 21, GT)
    np.add.at(ours, (mapped.ravel(), column.ravel().astype(np.int64)), 1)
    np.testing.assert_array_equal(ours, vocb_confusion(PRED, GT))
    scores = compute_scores(ours, VOC20B.class_names, VOC20B.eval_sets()[0].classes_of_interest)
    assert scores.metrics["mIoU"] == pytest.approx(HAND_MIOU, abs=1e-12)
    assert scores.per_class_iou["background"] == pytest.approx(100 * 2 / 3)
    assert scores.per_class_iou["boat"] is None


def test_bench_score_applies_prediction_labels(cli, tmp_path):
    """Prediction PNGs hold prompt indices (what `bench run --save-predictions` writes); scoring maps them."""
    root = tmp_path / "data"
    write_suite(root, [VOC20B], images_per_set=1, seed=0)
    es = VOC20B.eval_sets()[0]
    (label,) = sorted((root / es.label_dir).glob("*.png"))
    Image.fromarray(GT).save(label)
    Image.fromarray(np.zeros((2, 3, 3), dtype=np.uint8)).save(root / es.image_dir / f"{label.stem}.jpg")
    preds = tmp_path / "preds"
    preds.mkdir()
    Image.fromarray(PRED).save(preds / label.name)
    res = cli("score", "--dataset", "voc20b", "--data-root", root, "--pred", preds, "--output", tmp_path / "out",
              "--model-id", "mine")
    assert res.exit_code == 0, res.output
    result = read_result(tmp_path / "out" / "mine" / "voc20b.json")
    np.testing.assert_array_equal(result.confusion(), vocb_confusion(PRED, GT))
    assert result.metrics["mIoU"] == pytest.approx(HAND_MIOU, abs=1e-9)


def test_prediction_outside_the_prompts_fails_the_set(cli, tmp_path):
    root = tmp_path / "data"
    write_suite(root, [VOC20B], images_per_set=1, seed=0)
    es = VOC20B.eval_sets()[0]
    (label,) = sorted((root / es.label_dir).glob("*.png"))
    preds = tmp_path / "preds"
    preds.mkdir()
    shape = np.array(Image.open(label)).shape
    Image.fromarray(np.full(shape, 59, dtype=np.uint8)).save(preds / label.name)
    res = cli("score", "--dataset", "voc20b", "--data-root", root, "--pred", preds, "--output", tmp_path / "out",
              "--model-id", "mine")
    assert res.exit_code != 0
    assert "outside the 59 prompt indices" in res.output


@pytest.mark.parametrize("edit, message", [
    ('classes_of_interest = [1, 2]', "fields 'prompt_names' and 'prediction_labels' go together"),
    ('classes_of_interest = [1, 2]\nprediction_labels = [0, 1, 2]', "fields 'prompt_names' and 'prediction_labels' go together"),
])
def test_prompt_fields_must_come_together(tmp_path, edit, message):
    if "prediction_labels" not in edit:
        edit += '\nprompt_names = ["sea", "panel", "crack"]'
    write_user_spec(tmp_path, **{'classes_of_interest = [1, 2]': edit})
    with pytest.raises(SpecError, match=message):
        load_specs([tmp_path])


@pytest.mark.parametrize("labels, message", [
    ("[0, 1]", "has 2 entries but 'prompt_names' has 4"),
    ("[0, 1, 2, 3]", r"holds 3, outside the class list \(0..2\)"),
])
def test_prediction_labels_are_checked(tmp_path, labels, message):
    edit = f'prompt_names = ["sea", "panel", "crack", "sand"]\nprediction_labels = {labels}'
    write_user_spec(tmp_path, **{'classes_of_interest = [1, 2]': 'classes_of_interest = [1, 2]\n' + edit})
    with pytest.raises(SpecError, match=message):
        load_specs([tmp_path])


def test_user_spec_with_prompts_loads(tmp_path):
    edit = 'prompt_names = ["sea", "panel", "crack", "sand"]\nprediction_labels = [0, 1, 2, 0]'
    write_user_spec(tmp_path, **{'classes_of_interest = [1, 2]': 'classes_of_interest = [1, 2]\n' + edit})
    es = load_specs([tmp_path])["solar"].eval_sets()[0]
    assert es.prompts == ("sea", "panel", "crack", "sand") and es.prediction_labels == (0, 1, 2, 0)
    assert es.class_names == ("background", "panel", "crack")
