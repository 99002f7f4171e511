"""MESS scores: hand-computed cases and a randomised check against an independent numpy version."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix, compute_scores


def pixels(pairs: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt, count) triples -> flat prediction and label arrays."""
    pred = np.concatenate([np.full(n, p, dtype=np.int64) for p, _, n in pairs])
    gt = np.concatenate([np.full(n, g, dtype=np.int64) for _, g, n in pairs])
    return pred, gt


def score(pairs, names, coi=None, ignore=255):
    pred, gt = pixels(pairs)
    conf = ConfusionMatrix(len(names), ignore)
    conf.update(pred, gt, image="toy.png")
    return conf, compute_scores(conf.matrix, names, coi)


def test_hand_computed_four_classes_with_ignore_absent_and_predicted_but_absent():
    # class 2 is predicted on one labelled pixel but absent from the ground truth: IoU 0, counts.
    # class 3 is predicted only on ignore pixels: neither GT nor counted prediction -> left out.
    pairs = [(0, 0, 3), (1, 0, 1), (0, 1, 1), (1, 1, 5), (2, 1, 1), (3, 255, 2), (0, 255, 1)]
    conf, s = score(pairs, ["a", "b", "c", "d"], coi=[1, 2])
    m = conf.numpy()
    assert m.shape == (5, 5) and m.dtype == np.int64
    assert m[3, 4] == 2 and m[0, 4] == 1 and m[:, 4].sum() == 3

    # class a: tp 3, pos_gt 4, pos_pred 4 (the ignore pixel does not count) -> IoU 3/5, acc 3/4
    # class b: tp 5, pos_gt 7, pos_pred 6 -> IoU 5/8, acc 5/7
    assert s.per_class_iou == pytest.approx({"a": 60.0, "b": 62.5, "c": 0.0, "d": None})
    assert s.per_class_acc == pytest.approx({"a": 75.0, "b": 500 / 7, "c": None, "d": None})
    assert s.metrics["mIoU"] == pytest.approx(100 * (0.6 + 0.625 + 0.0) / 3)  # not (0.6+0.625)/2: detectron2 main
    assert s.metrics["mACC"] == pytest.approx(100 * (0.75 + 5 / 7) / 2)
    assert s.metrics["pACC"] == pytest.approx(100 * 8 / 11)
    assert s.metrics["fwIoU"] == pytest.approx(100 * (4 * 0.6 + 7 * 0.625) / 11)
    assert s.metrics["CoI-mIoU"] == pytest.approx(100 * (0.625 + 0.0) / 2)
    assert s.metrics["CoI-mACC"] == pytest.approx(100 * 5 / 7)  # c has no GT: no accuracy
    assert "Specificity" not in s.metrics


def test_protocol_toy_example_gives_the_v06_value_not_detectron2_main():
    # mess_protocol.md §3: per-class IoU [0.60, 0.83, 0.0, excluded] -> 0.478 (main would give 0.717).
    # a: tp 3, gt 4, pred 4 -> 3/5; b: tp 5, gt 6, pred 5 -> 5/6; c: predicted once on an 'a' pixel -> 0
    pairs = [(0, 0, 3), (2, 0, 1), (0, 1, 1), (1, 1, 5)]
    _, s = score(pairs, ["a", "b", "c", "d"])
    assert s.per_class_iou == pytest.approx({"a": 60.0, "b": 500 / 6, "c": 0.0, "d": None})
    assert round(s.metrics["mIoU"] / 100, 3) == 0.478


def test_binary_metrics_specificity_sensitivity():
    pairs = [(0, 0, 6), (1, 0, 2), (0, 1, 2), (1, 1, 2), (1, 255, 5)]
    _, s = score(pairs, ["others", "tool"], coi=[1])
    # others: tp 6, gt 8, pred 8 -> IoU 6/10; tool: tp 2, gt 4, pred 4 -> IoU 2/6
    assert s.metrics["Specificity"] == pytest.approx(75.0)
    assert s.metrics["Sensitivity"] == pytest.approx(50.0)
    assert s.metrics["mIoU"] == pytest.approx(100 * (0.6 + 1 / 3) / 2)
    assert s.metrics["CoI-mIoU"] == pytest.approx(100 / 3)
    assert s.metrics["CoI-mACC"] == pytest.approx(50.0)


def test_all_background_and_all_foreground_identities():
    # CryoNuSeg-style: foreground fraction p; predicting one class everywhere gives (1-p)/2 or p/2.
    rng = np.random.default_rng(0)
    gt = (rng.random((64, 64)) < 0.239).astype(np.uint8)
    p = gt.mean()
    for constant, expected in ((0, (1 - p) / 2), (1, p / 2)):
        conf = ConfusionMatrix(2, 255)
        conf.update(np.full_like(gt, constant), gt, image="x")
        assert compute_scores(conf.matrix, ["others", "nuclei"]).metrics["mIoU"] == pytest.approx(100 * expected)


def test_no_object_row_counts_as_false_negative():
    # Row K (a "no-object" prediction on a labelled pixel) adds to pos_gt but not to pos_pred.
    m = np.zeros((3, 3), dtype=np.int64)
    m[0, 0], m[1, 1], m[2, 0], m[2, 2], m[1, 2] = 4, 4, 4, 9, 7
    s = compute_scores(m, ["a", "b"])
    assert s.per_class_iou == pytest.approx({"a": 50.0, "b": 100.0})
    assert s.metrics["pACC"] == pytest.approx(100 * 8 / 12)
    assert s.metrics["Specificity"] == pytest.approx(50.0)


def test_empty_matrix_is_undefined_not_zero():
    s = compute_scores(np.zeros((3, 3), dtype=np.int64), ["a", "b"])
    assert all(value is None for value in s.metrics.values())


def test_streaming_equals_one_shot_and_merge():
    rng = np.random.default_rng(1)
    preds = [rng.integers(0, 5, (7, 9)) for _ in range(4)]
    gts = [rng.choice([0, 1, 2, 3, 4, 255], size=(7, 9)) for _ in range(4)]
    streamed, first, second = ConfusionMatrix(5, 255), ConfusionMatrix(5, 255), ConfusionMatrix(5, 255)
    for i, (p, g) in enumerate(zip(preds, gts)):
        streamed.update(p, g, image=f"{i}")
        (first if i < 2 else second).update(torch.from_numpy(p), torch.from_numpy(g), image=f"{i}")
    whole = ConfusionMatrix(5, 255)
    whole.update(np.stack(preds), np.stack(gts), image="batch")
    first.merge(second)
    np.testing.assert_array_equal(streamed.numpy(), whole.numpy())
    np.testing.assert_array_equal(streamed.numpy(), first.numpy())
    assert streamed.numpy().sum() == 4 * 7 * 9


def test_label_out_of_range_names_the_image():
    conf = ConfusionMatrix(3, 255)
    with pytest.raises(BenchError, match=r"img_007\.png: label values \[3, 200\]"):
        conf.update(np.zeros((2, 3), np.uint8), np.array([[0, 3, 255], [200, 1, 2]], np.uint8), image="img_007.png")
    assert conf.numpy().sum() == 0  # nothing half-counted


def test_prediction_out_of_range_names_the_image():
    conf = ConfusionMatrix(3, 255)
    with pytest.raises(BenchError, match=r"p\.png: prediction values \[-1, 3\]"):
        conf.update(np.array([[0, 3, -1]]), np.array([[0, 1, 2]]), image="p.png")


def test_shape_mismatch_names_the_image():
    with pytest.raises(BenchError, match=r"q\.png: prediction shape \(2, 2\) differs from label shape \(2, 3\)"):
        ConfusionMatrix(3, 255).update(np.zeros((2, 2), int), np.zeros((2, 3), int), image="q.png")


def test_ignore_index_may_not_be_a_class():
    with pytest.raises(ValueError):
        ConfusionMatrix(3, 2)


def test_16_bit_labels_and_201_classes():
    rng = np.random.default_rng(2)
    gt = rng.integers(0, 201, (50, 40)).astype(np.uint16)
    gt[:5] = 65535
    pred = rng.integers(0, 201, (50, 40)).astype(np.uint8)
    conf = ConfusionMatrix(201, 65535)
    conf.update(pred, gt, image="cub.png")
    m = conf.numpy()
    assert m.shape == (202, 202)
    assert m[:, 201].sum() == 5 * 40
    assert m[:201, :201].sum() == 45 * 40
    with pytest.raises(BenchError, match="cub.png: label values \\[255\\]"):
        conf.update(pred, np.full((50, 40), 255, np.uint16), image="cub.png")


def reference_mess_scores(preds, gts, k, ignore, coi):
    """Independent numpy version of the MESS formulas, from pixel arrays (no confusion matrix)."""
    pred = np.concatenate([p.ravel() for p in preds]).astype(np.int64)
    gt = np.concatenate([g.ravel() for g in gts]).astype(np.int64)
    labelled = gt != ignore
    iou, acc, gt_count = {}, {}, {}
    for c in range(k):
        tp = np.sum((pred == c) & (gt == c))
        n_gt = np.sum(gt == c)
        n_pred = np.sum((pred == c) & labelled)
        gt_count[c] = n_gt
        if n_gt + n_pred > 0:
            iou[c] = tp / (n_gt + n_pred - tp)
        if n_gt > 0:
            acc[c] = tp / n_gt
    total = labelled.sum()

    def mean(values):
        return sum(values) / len(values) if values else float("nan")

    out = {
        "mIoU": mean(list(iou.values())),
        "mACC": mean(list(acc.values())),
        "pACC": np.sum((pred == gt) & labelled) / total,
        "fwIoU": sum(iou[c] * gt_count[c] for c in acc) / total,
        "CoI-mIoU": mean([iou[c] for c in coi if c in iou]),
        "CoI-mACC": mean([acc[c] for c in coi if c in acc]),
    }
    return {name: 100 * v for name, v in out.items()}, {c: 100 * v for c, v in iou.items()}


@pytest.mark.parametrize("seed", range(12))
def test_randomised_against_independent_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.choice([2, 3, 7, 19, 60, 201]))
    ignore = int(rng.choice([255, 65535, -1])) if k < 255 else 65535
    present = rng.choice(k, size=max(1, int(rng.integers(1, k + 1))), replace=False)  # some classes absent from GT
    predicted = rng.choice(k, size=max(1, int(rng.integers(1, k + 1))), replace=False)
    preds, gts = [], []
    for _ in range(int(rng.integers(1, 4))):
        shape = tuple(rng.integers(5, 40, size=2))
        gt = rng.choice(present, size=shape)
        gt[rng.random(shape) < rng.uniform(0, 0.3)] = ignore
        pred = np.where(rng.random(shape) < 0.5, np.clip(gt, 0, k - 1), rng.choice(predicted, size=shape))
        dtype = np.int32 if ignore < 0 else (np.uint16 if ignore > 255 else np.uint8)
        preds.append(pred.astype(np.int64))
        gts.append(gt.astype(dtype))
    coi = sorted(rng.choice(k, size=max(1, k // 2), replace=False).tolist())
    names = [f"class {c}" for c in range(k)]

    conf = ConfusionMatrix(k, ignore)
    for i, (p, g) in enumerate(zip(preds, gts)):
        conf.update(p, g, image=str(i))
    ours = compute_scores(conf.matrix, names, coi)
    expected, expected_iou = reference_mess_scores(preds, gts, k, ignore, coi)

    for name, value in expected.items():
        if np.isnan(value):
            assert ours.metrics[name] is None, name
        else:
            assert ours.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    assert {c: v for c, v in enumerate(ours.per_class_iou.values()) if v is not None} == pytest.approx(expected_iou)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(3)
    pred, gt = rng.integers(0, 19, (256, 256)), rng.choice([*range(19), 255], size=(256, 256))
    cpu, gpu = ConfusionMatrix(19, 255), ConfusionMatrix(19, 255, device="cuda")
    cpu.update(pred, gt)
    gpu.update(torch.from_numpy(pred).cuda(), torch.from_numpy(gt).cuda())
    assert gpu.matrix.device.type == "cuda"
    np.testing.assert_array_equal(cpu.numpy(), gpu.numpy())
