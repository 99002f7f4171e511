"""`bench score`: prediction PNGs in, MESS result files out."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from catseg_bench.data import open_eval_set
from catseg_bench.metrics import compute_scores
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite


@pytest.fixture(scope="module")
def specs():
    return load_specs()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, specs):
    root = tmp_path_factory.mktemp("data")
    write_suite(root, [specs["kvasir_instrument"], specs["paxray4"], specs["dark_zurich"]], images_per_set=3, seed=1)
    return root


def noisy_predictions(eval_set, data_root, out_dir, seed=0):
    """Write a prediction PNG per label (the label, ignore -> 0, 20 % of pixels changed); returns
    the expected confusion matrix, computed here with numpy alone."""
    rng = np.random.default_rng(seed)
    dataset = open_eval_set(eval_set, data_root)
    k = eval_set.num_classes
    expected = np.zeros((k + 1, k + 1), dtype=np.int64)
    for index, name in enumerate(dataset.names):
        gt = dataset.read_label(index)
        pred = np.where(gt == eval_set.ignore_index, 0, gt)
        flip = rng.random(gt.shape) < 0.2
        pred[flip] = rng.integers(0, k, size=int(flip.sum()))
        path = out_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred.astype(np.uint8)).save(path)
        column = np.where(gt == eval_set.ignore_index, k, gt)
        np.add.at(expected, (pred.ravel(), column.ravel()), 1)
    return expected


def test_score_a_plain_dataset(cli, specs, data_root, tmp_path):
    eval_set = specs["dark_zurich"].eval_sets()[0]  # label suffix "_gt_labelIds.png", 20 classes
    expected = noisy_predictions(eval_set, data_root, tmp_path / "preds")
    res = cli("score", "--dataset", "dark_zurich", "--data-root", data_root, "--pred", tmp_path / "preds",
              "--output", tmp_path / "out", "--model-id", "mine")
    assert res.exit_code == 0, res.output
    result = read_result(tmp_path / "out" / "mine" / "dark_zurich.json")
    np.testing.assert_array_equal(result.confusion(), expected)
    scores = compute_scores(expected, eval_set.class_names, eval_set.classes_of_interest)
    assert result.metrics == scores.metrics
    assert result.images_scored == 3 and not result.partial and result.model_id == "mine"
    assert "dark_zurich" in res.stdout


def test_scoring_again_keeps_the_earlier_result(cli, specs, data_root, tmp_path):
    eval_set = specs["kvasir_instrument"].eval_sets()[0]
    args = ("score", "--dataset", "kvasir_instrument", "--data-root", data_root, "--pred", tmp_path / "preds",
            "--output", tmp_path / "out", "--model-id", "mine")
    first = noisy_predictions(eval_set, data_root, tmp_path / "preds", seed=1)
    assert cli(*args).exit_code == 0
    second = noisy_predictions(eval_set, data_root, tmp_path / "preds", seed=2)
    assert cli(*args).exit_code == 0
    folder = tmp_path / "out" / "mine"
    np.testing.assert_array_equal(read_result(folder / "kvasir_instrument.json").confusion(), second)
    kept = sorted(p.name for p in folder.iterdir() if ".stale-" in p.name)
    assert [name.split(".stale-")[0] for name in kept] == [
        "kvasir_instrument.confusion.npy", "kvasir_instrument.json", "kvasir_instrument.per_image.npz"]
    np.testing.assert_array_equal(np.load(folder / kept[0]), first)


def test_score_a_composite_dataset_subset_by_subset(cli, specs, data_root, tmp_path):
    expected = {}
    for i, eval_set in enumerate(specs["paxray4"].eval_sets()):
        # half the subsets in <subset>/, half in <eval set>/ (what `bench run --save-predictions` writes)
        folder = eval_set.subset if i % 2 else eval_set.name
        expected[eval_set.name] = noisy_predictions(eval_set, data_root, tmp_path / "paxray" / folder, seed=i)
    res = cli("score", "--dataset", "paxray4", "--data-root", data_root, "--pred", tmp_path / "paxray",
              "--output", tmp_path / "out")
    assert res.exit_code == 0, res.output
    for name, matrix in expected.items():
        result = read_result(tmp_path / "out" / "paxray" / f"{name}.json")
        np.testing.assert_array_equal(result.confusion(), matrix)
    assert "paxray4 (mean of subsets)" in res.stdout

    res = cli("score", "--dataset", "paxray4.mediastinum", "--data-root", data_root, "--pred", tmp_path / "paxray" / "mediastinum",
              "--output", tmp_path / "one", "--model-id", "m")
    assert res.exit_code == 0, res.output
    assert [p.name for p in sorted((tmp_path / "one" / "m").glob("*.json"))] == ["paxray4.mediastinum.json"]


def error_text(res) -> str:
    return res.output + (str(res.exception) if res.exception else "")


def test_errors_name_the_file(cli, specs, data_root, tmp_path):
    eval_set = specs["kvasir_instrument"].eval_sets()[0]
    preds = tmp_path / "preds"
    noisy_predictions(eval_set, data_root, preds)
    args = ["--dataset", "kvasir_instrument", "--data-root", data_root, "--pred", preds, "--output", tmp_path / "out"]
    files = sorted(preds.rglob("*.png"))

    files[0].unlink()
    res = cli("score", *args)
    assert res.exit_code != 0 and "1 of 3 predictions of kvasir_instrument are missing" in error_text(res)

    Image.new("RGB", (4, 4)).save(files[0])
    res = cli("score", *args)
    assert res.exit_code != 0 and f"{files[0]}: prediction is a RGB image" in error_text(res)

    Image.fromarray(np.zeros((5, 5), np.uint8)).save(files[0])
    res = cli("score", *args)
    assert res.exit_code != 0 and f"{files[0]}: prediction shape (5, 5) differs from label shape" in error_text(res)

    label = open_eval_set(eval_set, data_root).read_label(0)
    Image.fromarray(np.full(label.shape, 2, np.uint8)).save(files[0])  # kvasir has 2 classes
    res = cli("score", *args)
    assert res.exit_code != 0 and f"{files[0]}: prediction values [2]" in error_text(res)
    assert not list((tmp_path / "out").rglob("*.json"))  # no result for a failed scoring (only the run's lock file)

    res = cli("score", "--dataset", "paxray4.ribs", "--data-root", data_root, "--pred", preds, "--output", tmp_path)
    assert res.exit_code != 0 and "no such subset; paxray4 has: paxray4.lungs" in error_text(res)
    res = cli("score", "--dataset", "paxray4", "--data-root", data_root, "--pred", preds, "--output", tmp_path)
    assert res.exit_code != 0 and "no folder 'lungs/' or 'paxray4.lungs/'" in error_text(res)


def test_16_bit_predictions_are_read(tmp_path):
    from catseg_bench.segmenters.predictions import read_prediction_png as read_prediction

    array = np.array([[0, 300], [200, 65534]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_prediction(tmp_path / "p.png"), array)


def test_a_label_value_equal_to_the_class_count_is_reported_against_the_label_file(cli, specs, tmp_path):
    """The reported mix-up: the bad *label* was named by its *prediction* file."""
    root = tmp_path / "data"
    write_suite(root, [specs["kvasir_instrument"]], images_per_set=2, seed=2)
    eval_set = specs["kvasir_instrument"].eval_sets()[0]
    dataset = open_eval_set(eval_set, root)
    preds = tmp_path / "preds"
    noisy_predictions(eval_set, root, preds)  # valid predictions
    label_file = dataset.label_path(0)
    label = dataset.read_label(0)
    label[0, 0] = 2  # == the class count of kvasir (2 classes)
    Image.fromarray(label.astype(np.uint8)).save(label_file)
    res = cli("score", "--dataset", "kvasir_instrument", "--data-root", root, "--pred", preds, "--output", tmp_path / "out")
    assert res.exit_code != 0
    assert f"{label_file}: label values [2] are neither one of the 2 classes" in " ".join(error_text(res).split())


def test_a_label_whose_size_differs_from_its_image_says_so(specs, tmp_path):
    from catseg_bench.errors import BenchError

    write_suite(tmp_path, [specs["kvasir_instrument"]], images_per_set=2, seed=2)
    dataset = open_eval_set(specs["kvasir_instrument"].eval_sets()[0], tmp_path)
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(dataset.label_path(1))
    with pytest.raises(BenchError, match=r"label is 7x5 \(WxH\) but its image .* is \d+x\d+; labels must have their image's size"):
        dataset[1]
