"""The Random lower bound: closed form, expected confusion matrix, simulated uniform predictions."""

from __future__ import annotations


import numpy as np
import pytest

from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix, compute_scores
from catseg_bench.random_baseline import (
    count_label_pixels,
    random_iou,
    uniform_prediction_confusion,
)
from catseg_bench.results import read_result, write_result
from catseg_bench.specs import load_specs


class Labels:
    """A minimal evaluation set: in-memory labels."""

    def __init__(self, labels):
        self.labels = labels
        self.names = [f"img{i}" for i in range(len(labels))]

    def __len__(self):
        return len(self.labels)

    def read_label(self, index):
        return self.labels[index]

    def label_location(self, index):
        return f"/data/labels/{self.names[index]}.png"


def binary_counts(p: float, total: int = 10**6) -> np.ndarray:
    foreground = round(p * total)
    return np.array([total - foreground, foreground, 0])


@pytest.mark.parametrize(
    ("p", "miou", "coi_miou"),
    [(0.0915, 27.99, 8.38), (0.2389, 31.25, 19.28)],  # leaderboard Random rows of Kvasir-Instrument and CryoNuSeg
)
def test_closed_form_reproduces_leaderboard_random_rows(p, miou, coi_miou):
    scores = compute_scores(uniform_prediction_confusion(binary_counts(p)), ["others", "fg"], [1])
    assert round(scores.metrics["mIoU"], 2) == miou
    assert round(scores.metrics["CoI-mIoU"], 2) == coi_miou


def test_expected_confusion_scores_exactly_the_closed_form_including_absent_classes():
    counts = np.array([500, 0, 120, 30, 0, 350, 77])  # classes 1 and 4 absent from the GT; 77 ignore pixels
    k = counts.size - 1
    scores = compute_scores(uniform_prediction_confusion(counts), [f"c{i}" for i in range(k)], [1, 2, 3])
    closed = random_iou(counts[:k])
    assert closed[1] == 0.0 and closed[4] == 0.0
    assert list(scores.per_class_iou.values()) == pytest.approx(list(100 * closed), rel=1e-12)
    assert scores.metrics["mIoU"] == pytest.approx(100 * closed.mean(), rel=1e-12)  # over all K classes
    assert scores.metrics["CoI-mIoU"] == pytest.approx(100 * closed[[1, 2, 3]].mean(), rel=1e-12)
    assert scores.metrics["pACC"] == pytest.approx(100 / k)
    assert scores.metrics["mACC"] == pytest.approx(100 / k)


def test_closed_form_matches_simulated_uniform_predictions():
    rng = np.random.default_rng(0)
    k = 6
    frequencies = np.array([0.5, 0.25, 0.15, 0.1, 0.0, 0.0])  # two classes absent
    gt = rng.choice(k, p=frequencies, size=(1000, 1000)).astype(np.uint8)
    gt[:50] = 255
    conf = ConfusionMatrix(k, 255)
    conf.update(rng.integers(0, k, size=gt.shape), gt, image="sim")
    simulated = compute_scores(conf.matrix, [str(c) for c in range(k)])
    counts = count_label_pixels(Labels([gt]), k, 255)
    assert counts[-1] == 50 * 1000
    expected = compute_scores(uniform_prediction_confusion(counts), [str(c) for c in range(k)])
    assert expected.metrics["mIoU"] == pytest.approx(100 * random_iou(counts[:k]).mean(), rel=1e-12)
    assert simulated.metrics["mIoU"] == pytest.approx(expected.metrics["mIoU"], abs=0.1)
    for name in ("0", "1", "2", "3"):
        assert simulated.per_class_iou[name] == pytest.approx(expected.per_class_iou[name], abs=0.2)


def test_random_result_file_from_labels(tmp_path):
    eval_set = load_specs()["cwfid"].eval_sets()[0]
    labels = [np.array([[0, 0, 1], [2, 255, 0]], np.uint8), np.array([[0, 0], [0, 1]], np.uint8)]
    counts = count_label_pixels(Labels(labels), eval_set.num_classes, eval_set.ignore_index)
    np.testing.assert_array_equal(counts, [6, 2, 1, 1])  # classes 0..2, then ignore
    path = write_result(
        tmp_path, eval_set=eval_set, model_id="random", checkpoint_sha256=None, settings={},
        confusion=uniform_prediction_confusion(counts), images_scored=2,
    )
    assert read_result(path).metric("mIoU") == pytest.approx(100 * random_iou(counts[:3]).mean())


def test_bad_label_names_the_file():
    with pytest.raises(BenchError, match=r"/data/labels/img1.png: label values \[7\]"):
        count_label_pixels(Labels([np.zeros((2, 2), np.uint8), np.full((2, 2), 7, np.uint8)]), 3, 255)
