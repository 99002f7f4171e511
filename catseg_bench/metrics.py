"""MESS segmentation scores from a streaming confusion matrix.

The matrix is (K+1)×(K+1) int64, indexed ``[prediction, ground truth]``, accumulated over every
pixel of every image of an evaluation set (a dataset-level score, not a per-image average).
Ground-truth ignore pixels go to column K; row K ("no-object" prediction) stays empty for models
that predict one of the K classes, which is what :meth:`ConfusionMatrix.update` accepts.

:func:`compute_scores` reproduces the MESS evaluator (``MESSSemSegEvaluator.evaluate``, the
detectron2 v0.6 rule), all values ×100:

- ``pos_gt_c`` is the full column c *including* row K; ``pos_pred_c`` excludes column K, so
  predictions on ignore pixels never count;
- a class is valid for IoU iff ``pos_gt_c + pos_pred_c > 0``: a class predicted somewhere but
  absent from the whole ground truth scores IoU 0 and counts; a class absent from both is left out;
- accuracy is defined for classes with ``pos_gt_c > 0``;
- fwIoU weights IoU by ground-truth frequency; pACC = Σ TP / Σ pos_gt;
- CoI-mIoU / CoI-mACC restrict the means to the classes of interest;
- Specificity / Sensitivity (accuracy of class 0 / class 1) for two-class sets.

Today's detectron2 skips predicted-but-absent classes and reports higher numbers; do not "fix"
this module towards it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from catseg_bench.errors import BenchError

# numpy integer dtypes torch.from_numpy cannot take (or cannot compute with) are widened first.
_WIDEN_FOR_TORCH = {np.dtype(np.uint16): np.int32, np.dtype(np.uint32): np.int64, np.dtype(np.uint64): np.int64}

SUMMARY_METRICS = ("mIoU", "CoI-mIoU", "fwIoU", "mACC", "pACC", "CoI-mACC")
BINARY_METRICS = ("Specificity", "Sensitivity")


def _as_int64_tensor(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(array, np.ndarray):
        if array.dtype.kind not in "iu" and array.dtype != np.bool_:
            raise TypeError(f"expected an integer array, got dtype {array.dtype}")
        array = np.ascontiguousarray(array.astype(_WIDEN_FOR_TORCH.get(array.dtype, array.dtype), copy=False))
        array = torch.from_numpy(array)
    elif array.is_floating_point() or array.is_complex():
        raise TypeError(f"expected an integer tensor, got dtype {array.dtype}")
    return array.to(device=device, dtype=torch.int64, non_blocking=True)


class ConfusionMatrix:
    """A (K+1)×(K+1) int64 confusion matrix ``[pred, gt]`` on a torch device, fed image by image.

    ``ignore_index`` is the ground-truth value that marks unlabelled pixels (255 for MESS, but any
    value outside [0, K) works, e.g. 65535 for 16-bit labels or -1).
    """

    def __init__(self, num_classes: int, ignore_index: int, device: torch.device | str = "cpu") -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is a class index (there are {num_classes} classes)")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.device = torch.device(device)
        self.matrix = torch.zeros((num_classes + 1, num_classes + 1), dtype=torch.int64, device=self.device)

    def update(
        self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, *, image: str = "?", label: str | None = None
    ) -> None:
        """Add one image (or a batch of equally shaped images) of class-index predictions and labels.

        ``image`` names the image (or the prediction file) in errors, ``label`` the label file (default:
        ``image``): a label outside [0, K) ∪ {ignore} is reported against the label, a prediction
        outside [0, K) or mismatched shapes against the image; each raises :class:`BenchError`.
        """
        k = self.num_classes
        if tuple(pred.shape) != tuple(gt.shape):
            raise BenchError(
                f"{image}: prediction shape {tuple(pred.shape)} differs from label shape {tuple(gt.shape)}; "
                "predictions must be at the label's resolution"
            )
        pred_t = _as_int64_tensor(pred, self.device).reshape(-1)
        gt_t = _as_int64_tensor(gt, self.device).reshape(-1)
        if pred_t.numel() == 0:
            return
        bad_pred = (pred_t < 0) | (pred_t >= k)
        if bool(bad_pred.any()):
            values = torch.unique(pred_t[bad_pred])[:5].tolist()
            raise BenchError(f"{image}: prediction values {values} are outside the {k} class indices [0, {k - 1}]")
        is_ignore = gt_t == self.ignore_index
        bad_gt = ~is_ignore & ((gt_t < 0) | (gt_t >= k))
        if bool(bad_gt.any()):
            values = torch.unique(gt_t[bad_gt])[:5].tolist()
            raise BenchError(
                f"{label or image}: label values {values} are neither one of the {k} classes [0, {k - 1}] "
                f"nor the ignore value {self.ignore_index}; check the dataset preparation or the spec's class list"
            )
        gt_t = torch.where(is_ignore, torch.full_like(gt_t, k), gt_t)
        counts = torch.bincount(pred_t * (k + 1) + gt_t, minlength=(k + 1) ** 2)
        self.matrix += counts.reshape(k + 1, k + 1)

    def merge(self, other: "ConfusionMatrix") -> None:
        """Add another matrix of the same shape (e.g. from another worker or a resumed run)."""
        if other.matrix.shape != self.matrix.shape:
            raise ValueError(f"cannot merge a {tuple(other.matrix.shape)} matrix into {tuple(self.matrix.shape)}")
        self.matrix += other.matrix.to(self.device)

    def numpy(self) -> np.ndarray:
        return self.matrix.cpu().numpy()


@dataclass(frozen=True)
class Scores:
    """Scores of one evaluation set, in percent; ``None`` where MESS gives NaN (undefined)."""

    metrics: dict[str, float | None]
    per_class_iou: dict[str, float | None] = field(default_factory=dict)
    per_class_acc: dict[str, float | None] = field(default_factory=dict)


def predictions_as_labels(
    pred: np.ndarray | torch.Tensor, prediction_labels: Sequence[int] | None, *, image: str = "?"
) -> np.ndarray | torch.Tensor:
    """Predictions over a set's prompts as its label classes: prompt p is scored as label class
    ``prediction_labels[p]`` (a spec's ``prediction_labels``; PAS-20b scores its 39 context prompts
    as background, as CAT-Seg's VOCbEvaluator does with ``pred[pred >= 20] = 20``). ``None`` (prompts
    are the label classes) returns `pred` itself. A value outside the prompts raises BenchError
    naming `image`. The result is int64, a tensor on `pred`'s device or a numpy array like `pred`.
    """
    if prediction_labels is None:
        return pred
    device = pred.device if isinstance(pred, torch.Tensor) else torch.device("cpu")
    pred_t = _as_int64_tensor(pred, device)
    count = len(prediction_labels)
    bad = (pred_t < 0) | (pred_t >= count)
    if bool(bad.any()):
        values = torch.unique(pred_t[bad])[:5].tolist()
        raise BenchError(f"{image}: prediction values {values} are outside the {count} prompt indices [0, {count - 1}]")
    mapped = torch.as_tensor(list(prediction_labels), dtype=torch.int64, device=device)[pred_t]
    return mapped if isinstance(pred, torch.Tensor) else mapped.numpy()


def _percent_or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(100.0 * value)


def _mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def as_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """A tensor (on any device) or array-like as a numpy array."""
    return values.cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def compute_scores(
    confusion: np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    classes_of_interest: Sequence[int] | None = None,
) -> Scores:
    """MESS scores (×100) of a (K+1)×(K+1) ``[pred, gt]`` confusion matrix.

    ``classes_of_interest`` defaults to all classes (as MESS does when a dataset names none).
    The matrix may also hold non-negative floats (an expected confusion, see random_baseline).
    """
    conf = as_numpy(confusion)
    k = len(class_names)
    if conf.shape != (k + 1, k + 1):
        raise ValueError(f"confusion matrix shape {conf.shape} does not fit {k} classes ({k + 1}x{k + 1} expected)")
    conf = conf.astype(np.float64)
    tp = np.diagonal(conf)[:k]
    pos_gt = conf[:, :k].sum(axis=0)
    pos_pred = conf[:k, :k].sum(axis=1)
    union = pos_gt + pos_pred - tp

    iou_valid = (pos_gt + pos_pred) > 0
    acc_valid = pos_gt > 0
    iou = np.full(k, np.nan)
    acc = np.full(k, np.nan)
    iou[iou_valid] = tp[iou_valid] / union[iou_valid]
    acc[acc_valid] = tp[acc_valid] / pos_gt[acc_valid]

    total_gt = pos_gt.sum()
    coi = np.zeros(k, dtype=bool)
    coi[list(range(k)) if classes_of_interest is None else list(classes_of_interest)] = True

    metrics: dict[str, float | None] = {
        "mIoU": _mean_or_nan(iou[iou_valid]),
        "CoI-mIoU": _mean_or_nan(iou[coi & iou_valid]),
        "fwIoU": float((iou[acc_valid] * pos_gt[acc_valid]).sum() / total_gt) if total_gt > 0 else float("nan"),
        "mACC": _mean_or_nan(acc[acc_valid]),
        "pACC": float(tp.sum() / total_gt) if total_gt > 0 else float("nan"),
        "CoI-mACC": _mean_or_nan(acc[coi & acc_valid]),
    }
    if k == 2:
        metrics["Specificity"] = float(acc[0])
        metrics["Sensitivity"] = float(acc[1])
    return Scores(
        metrics={name: _percent_or_none(value) for name, value in metrics.items()},
        per_class_iou={name: _percent_or_none(v) for name, v in zip(class_names, iou)},
        per_class_acc={name: _percent_or_none(v) for name, v in zip(class_names, acc)},
    )
