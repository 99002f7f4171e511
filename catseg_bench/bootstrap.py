"""Bootstrap confidence intervals over images for mIoU, domain means and the Mean, and paired comparisons.

A resample draws an eval set's N images N times with replacement. Its mIoU is recomputed from the
summed per-image counts (:mod:`catseg_bench.per_image`) with the MESS rule: IoU over the classes
with ``gt + pred > 0``, so a resample is scored exactly as a dataset of those images would be.
All resamples of a set at once: ``weights`` (B × N, how often each image was drawn) ``@`` the
(N × K) counts, one matrix product per count kind.

Intervals are percentile intervals (2.5 % and 97.5 % of the resampled values) around the point
estimate of the full set (the result file's number). Resamples depend only on the seed and the
set's image names: two runs on the same images get the same resamples (a *paired* comparison), and
the four PAXRay-4 subsets, which share their images, are resampled together. Sets are otherwise
independent; domain means and the Mean are averaged resample by resample, as
:mod:`catseg_bench.aggregate` averages the point values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from catseg_bench.aggregate import ModelRow, columns
from catseg_bench.per_image import PerImageStats, load_per_image, per_image_path
from catseg_bench.results import Result
from catseg_bench.specs import Benchmark, DatasetSpec

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
LEVEL = 95.0


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile interval (all in percent)."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedDifference:
    """A − B with its interval, and the share of resamples in which A scores higher than B."""

    difference: Interval
    a_better: float


def resample_weights(names: tuple[str, ...], resamples: int, seed: int) -> np.ndarray:
    """(resamples × N) int64: how often each image is drawn in each resample.

    Seeded by `seed` and the image names, so equal image lists always get equal resamples.
    """
    n = len(names)
    digest = hashlib.sha256("\n".join(names).encode("utf-8")).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])
    draws = rng.integers(0, n, size=(resamples, n))
    offsets = np.arange(resamples, dtype=np.int64)[:, None] * n
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(resamples, n)


def miou(tp: np.ndarray, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MESS mIoU (%) over the last axis of summed counts; NaN where no class is valid."""
    tp, pred, gt = (np.asarray(a, dtype=np.float64) for a in (tp, pred, gt))
    valid = (gt + pred) > 0
    union = np.where(valid, gt + pred - tp, 1.0)
    iou = np.where(valid, tp / union, 0.0)
    count = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, 100.0 * iou.sum(axis=-1) / count, np.nan)


def set_samples(stats: PerImageStats, weights: np.ndarray) -> np.ndarray:
    """The mIoU of each resample (length B) given its image weights (B × N)."""
    w = weights.astype(np.float64)
    return miou(w @ stats.tp, w @ stats.pred, w @ stats.gt)


def percentile_interval(estimate: float, samples: np.ndarray) -> Interval:
    tail = (100.0 - LEVEL) / 2
    low, high = np.nanpercentile(samples, [tail, 100.0 - tail])
    return Interval(float(estimate), float(low), float(high))


def point_estimate(stats: PerImageStats) -> float:
    """The set's mIoU (%) from all its images: the result file's number."""
    return float(miou(stats.tp.sum(0), stats.pred.sum(0), stats.gt.sum(0)))


def set_interval(stats: PerImageStats, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> Interval:
    """The interval of one eval set's mIoU."""
    return percentile_interval(point_estimate(stats), set_samples(stats, resample_weights(stats.names, resamples, seed)))


def _column_samples(
    per_set: Mapping[str, PerImageStats],
    benchmark: Benchmark,
    specs: Mapping[str, DatasetSpec],
    resamples: int,
    seed: int,
) -> dict[str, tuple[float, np.ndarray] | None]:
    """Point value and resampled values for every Table 1 column (None where a set is missing)."""
    def point_and_samples(name: str) -> tuple[float, np.ndarray] | None:
        stats = per_set.get(name)
        if stats is None or not len(stats.names) or np.isnan(point_estimate(stats)):
            return None  # no counts, or an undefined mIoU (no class in the ground truth nor predicted)
        return point_estimate(stats), set_samples(stats, resample_weights(stats.names, resamples, seed))

    def mean(parts: list[tuple[float, np.ndarray] | None]) -> tuple[float, np.ndarray] | None:
        if not parts or any(p is None for p in parts):
            return None
        return float(np.mean([p[0] for p in parts])), np.mean([p[1] for p in parts], axis=0)

    out: dict[str, tuple[float, np.ndarray] | None] = {}
    for name in benchmark.members:
        spec = specs[name]
        out[name] = (mean([point_and_samples(e.name) for e in spec.eval_sets()]) if spec.is_composite
                     else point_and_samples(name))
    for domain in benchmark.domains:
        out[domain.name] = mean([out[d] for d in domain.datasets])
    out["Mean"] = mean([out[d] for d in benchmark.members])
    return {column: out[column] for column in columns(benchmark)}


def table_intervals(
    per_set: Mapping[str, PerImageStats],
    benchmark: Benchmark,
    specs: Mapping[str, DatasetSpec],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Interval | None]:
    """Intervals for every Table 1 column (datasets, domain means, Mean) from per-set statistics keyed
    by eval set name; a column is None when a set it needs has no statistics."""
    samples = _column_samples(per_set, benchmark, specs, resamples, seed)
    return {column: None if s is None else percentile_interval(*s) for column, s in samples.items()}


def paired_intervals(
    a: Mapping[str, PerImageStats],
    b: Mapping[str, PerImageStats],
    benchmark: Benchmark,
    specs: Mapping[str, DatasetSpec],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, PairedDifference | None]:
    """A − B for every Table 1 column, both runs scored on the same resamples of the same images.

    B's images are put in A's order (the resamples depend on the names, so both sides get the same
    ones); a set only one run has leaves its columns None.
    """
    shared = [name for name in a if name in b]
    side_a = _column_samples({n: a[n] for n in shared}, benchmark, specs, resamples, seed)
    side_b = _column_samples({n: b[n].reordered(a[n].names, n) for n in shared}, benchmark, specs, resamples, seed)
    out: dict[str, PairedDifference | None] = {}
    for column, sa in side_a.items():
        sb = side_b[column]
        if sa is None or sb is None:
            out[column] = None
            continue
        difference = sa[1] - sb[1]
        out[column] = PairedDifference(percentile_interval(sa[0] - sb[0], difference),
                                       float(np.mean(difference > 0)))
    return out


def paired_set_difference(
    a: PerImageStats, b: PerImageStats, where: str, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED
) -> PairedDifference:
    """A − B on one eval set."""
    b = b.reordered(a.names, where)
    weights = resample_weights(a.names, resamples, seed)
    difference = set_samples(a, weights) - set_samples(b, weights)
    point = point_estimate(a) - point_estimate(b)
    return PairedDifference(percentile_interval(point, difference), float(np.mean(difference > 0)))


def result_stats(result: Result) -> tuple[PerImageStats | None, str | None]:
    """The per-image counts beside a result file, or None and why (written before per-image counts
    existed, or counts that do not add up to the result's confusion matrix)."""
    path = per_image_path(result.path.parent, result.eval_set)
    if not path.exists():
        return None, f"{result.eval_set}: no per-image statistics (an older result): no interval; re-run it for one"
    stats = load_per_image(path)
    if len(stats.names) != result.images_scored or not stats.matches(result.confusion()):
        return None, f"{path.name}: does not add up to {result.path.name}: no interval; re-run this evaluation"
    return stats, None


def row_statistics(
    results: Sequence[Result], row: ModelRow, benchmark: Benchmark, *, include_partial: bool = False
) -> tuple[dict[str, PerImageStats], list[str]]:
    """Per-image counts of the results a Table 1 row counts (keyed by eval set), and notes on the
    ones that have none."""
    stats: dict[str, PerImageStats] = {}
    notes: list[str] = []
    for result in results:
        if (result.model_id, result.path.parent) != (row.model_id, row.folder) or result.dataset not in benchmark.members:
            continue
        if result.partial and not include_partial:
            continue
        found, why = result_stats(result)
        if found is None:
            notes.append(f"{row.label}: {why}")
        else:
            stats[result.eval_set] = found
    return stats, notes
