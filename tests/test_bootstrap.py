"""Per-image statistics and the bootstrap: sums equal the confusion matrix, intervals behave."""

from __future__ import annotations

import time

import numpy as np
import pytest

from catseg_bench.bootstrap import (
    miou,
    paired_intervals,
    paired_set_difference,
    resample_weights,
    set_interval,
    table_intervals,
)
from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix, compute_scores
from catseg_bench.per_image import PerImageRecorder, PerImageStats, image_confusion, load_per_image, margins, per_image_path
from catseg_bench.specs import load_benchmark, load_specs

IGNORE = 255


def _random_images(rng, count: int, k: int, side: int = 12):
    images = []
    for _ in range(count):
        gt = rng.integers(0, k, size=(side, side))
        gt[rng.random((side, side)) < 0.1] = IGNORE
        pred = np.where(rng.random((side, side)) < 0.6, np.where(gt == IGNORE, 0, gt), rng.integers(0, k, (side, side)))
        images.append((pred, gt))
    return images


def _stats(images, k: int, names=None) -> tuple[PerImageStats, np.ndarray]:
    recorder = PerImageRecorder(k)
    whole = ConfusionMatrix(k, IGNORE)
    for i, (pred, gt) in enumerate(images):
        single = image_confusion(pred, gt, k, IGNORE, image=f"img{i}")
        whole.merge(single)
        recorder.add(names[i] if names else f"img{i:03d}", single.numpy())
    return recorder.stats(), whole.numpy()


def test_per_image_counts_sum_to_the_confusion_margins_and_survive_the_file(tmp_path):
    rng = np.random.default_rng(0)
    k = 7
    images = _random_images(rng, 9, k)
    # A class only predicted (never labelled) and a class absent everywhere but in one image.
    images[0][0][0, 0] = 6
    stats, confusion = _stats(images, k)
    np.testing.assert_array_equal(stats.totals()[0], np.diagonal(confusion)[:k])
    np.testing.assert_array_equal(stats.totals()[1], confusion[:k, :k].sum(axis=1))
    np.testing.assert_array_equal(stats.totals()[2], confusion[:, :k].sum(axis=0))
    assert stats.matches(confusion)
    # Hand-checked: the prediction on the ignore pixel counts nowhere; class 0 is predicted once, never labelled.
    pred, gt = np.array([[1, 1, 0]]), np.array([[1, IGNORE, 1]])
    np.testing.assert_array_equal(margins(image_confusion(pred, gt, 2, IGNORE).numpy()), [[0, 1], [1, 1], [0, 2]])
    # mIoU from the summed counts is compute_scores' mIoU.
    assert miou(*stats.totals()) == pytest.approx(compute_scores(confusion, [str(c) for c in range(k)]).metrics["mIoU"])

    path = stats.save(per_image_path(tmp_path, "set"))
    assert path.name == "set.per_image.npz"
    back = load_per_image(path)
    assert back.names == stats.names
    np.testing.assert_array_equal(back.counts, stats.counts)
    with np.load(path) as raw:  # sparse: only non-zero (image, class) pairs, int64
        assert raw["tp"].dtype == np.int64 and len(raw["image"]) <= 9 * k
    path.write_bytes(b"not a zip")
    with pytest.raises(BenchError, match="unreadable per-image"):
        load_per_image(path)


def test_identical_images_give_a_zero_width_interval():
    rng = np.random.default_rng(1)
    one = _random_images(rng, 1, 4)[0]
    stats, _ = _stats([one] * 20, 4)
    interval = set_interval(stats, resamples=200, seed=3)
    assert interval.low == pytest.approx(interval.estimate) and interval.high == pytest.approx(interval.estimate)


def test_weights_draw_every_image_set_n_times_and_depend_only_on_seed_and_names():
    names = tuple(f"n{i}" for i in range(50))
    w = resample_weights(names, 30, seed=5)
    assert w.shape == (30, 50) and (w.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(w, resample_weights(names, 30, seed=5))
    assert not np.array_equal(w, resample_weights(names, 30, seed=6))


def test_coverage_on_a_simulated_population_is_close_to_95_percent():
    """Draw many 80-image samples of a fixed 4,000-image population; the true mIoU (of the whole
    population) should fall inside ~95 % of the samples' intervals."""
    rng = np.random.default_rng(11)
    k, population = 4, 4000
    gt = rng.gamma(2.0, 50.0, size=(population, k)) * (rng.random((population, k)) < 0.7)
    tp = gt * rng.beta(6, 3, size=(population, k))
    pred = tp + rng.gamma(1.0, 20.0, size=(population, k)) * (rng.random((population, k)) < 0.5)
    counts = np.stack([tp, pred, gt], axis=1).round().astype(np.int64)
    truth = miou(*counts.sum(axis=0))
    trials, covered = 200, 0
    for trial in range(trials):
        pick = rng.integers(0, population, size=80)
        stats = PerImageStats(tuple(f"t{trial}-{i}" for i in range(80)), counts[pick])
        interval = set_interval(stats, resamples=400, seed=trial)
        covered += interval.low <= truth <= interval.high
    assert 0.90 <= covered / trials <= 0.99


def test_table_and_paired_intervals_on_two_runs():
    specs, benchmark = load_specs(), load_benchmark()
    rng = np.random.default_rng(2)
    sets = ["cwfid"] + [e.name for e in specs["paxray4"].eval_sets()]
    per_a, per_b = {}, {}
    for name in sets:
        k = 3 if name == "cwfid" else 2
        images = _random_images(rng, 15, k)
        names = [f"{name[:6]}-{i}" for i in range(15)]
        per_a[name], _ = _stats(images, k, names)
        worse = [(np.where(rng.random(p.shape) < 0.3, 0, p), g) for p, g in images]
        per_b[name], _ = _stats(worse[::-1], k, names[::-1])  # other order: paired by name
    intervals = table_intervals(per_a, benchmark, specs, resamples=300, seed=0)
    assert intervals["Mean"] is None and intervals["Agriculture and Biology"] is None  # incomplete
    paxray = intervals["paxray4"]
    expected = np.mean([miou(*per_a[e].totals()) for e in sets[1:]])
    assert paxray.estimate == pytest.approx(expected) and paxray.low <= paxray.estimate <= paxray.high
    paired = paired_intervals(per_a, per_b, benchmark, specs, resamples=300, seed=0)
    assert paired["cwfid"].difference.estimate == pytest.approx(miou(*per_a["cwfid"].totals()) - miou(*per_b["cwfid"].totals()))
    assert paired["cwfid"].a_better > 0.9
    same = paired_set_difference(per_a["cwfid"], per_a["cwfid"], "cwfid", resamples=100)
    assert same.difference.low == same.difference.high == 0.0 and same.a_better == 0.0
    with pytest.raises(BenchError, match="same images"):
        paired_set_difference(per_a["cwfid"], per_a["paxray4.lungs"], "cwfid")


def test_cub_sized_bootstrap_takes_seconds():
    rng = np.random.default_rng(0)
    n, k = 5794, 201
    gt = rng.integers(0, 5000, size=(n, k)) * (rng.random((n, k)) < 0.02)
    counts = np.stack([gt // 2, gt // 2 + 10, gt], axis=1).astype(np.int64)
    stats = PerImageStats(tuple(str(i) for i in range(n)), counts)
    started = time.perf_counter()
    set_interval(stats, resamples=1000)
    assert time.perf_counter() - started < 30
