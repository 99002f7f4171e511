"""The six in-domain sets on synthetic data, end to end: 16-bit TIFF labels (A-847, PC-459), shared
image folders (VOC 2010/2012 JPEGImages), PAS-20b's 59 prompts, `bench run` and `bench score`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catseg_bench.data import open_eval_set
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite

from spec_texts import IN_DOMAIN_NAMES

SPECS = load_specs()

# Predicts a prompt index from brightness, over all the prompts it was given (so > 255 for A-847 and
# >= 20, i.e. context prompts, for PAS-20b), and remembers how many it got.
PLUGIN_SOURCE = textwrap.dedent('''
    import numpy as np
    import torch

    SEEN = {}


    class Segmenter:
        checkpoint_sha256 = None
        model_id = "bright-prompts"

        def __init__(self, *, device=None):
            self.device = device

        def settings(self):
            return {}

        def set_classes(self, class_names):
            self.count = len(class_names)
            SEEN[self.count] = tuple(class_names)

        def prepare_image(self, image):
            return image

        def predict(self, images, original_sizes):
            return [torch.from_numpy(image.astype(np.int64).sum(axis=2) * self.count // (3 * 256)) for image in images]
''')


def plugin_prediction(image: np.ndarray, count: int) -> np.ndarray:
    return image.astype(np.int64).sum(axis=2) * count // (3 * 256)


def expected_confusion(eval_set, data_root: Path) -> np.ndarray:
    """The plugin's matrix in numpy alone, with PAS-20b's rule written as CAT-Seg writes it."""
    dataset = open_eval_set(eval_set, data_root)
    k = eval_set.num_classes
    matrix = np.zeros((k + 1, k + 1), dtype=np.int64)
    for index in range(len(dataset)):
        item = dataset[index]
        pred = plugin_prediction(item["image"], len(eval_set.prompts))
        if eval_set.name == "voc20b":
            pred[pred >= 20] = 20  # VOCbEvaluator
        gt = np.where(item["label"] == eval_set.ignore_index, k, item["label"]).astype(np.int64)
        np.add.at(matrix, (pred.ravel(), gt.ravel()), 1)
    return matrix


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("in_domain")
    write_suite(root, [SPECS[n] for n in IN_DOMAIN_NAMES], images_per_set=2, seed=5)
    return root


def test_sixteen_bit_tiff_labels_read_back_exactly(suite):
    for name in ("ade847", "pc459"):
        es = SPECS[name].eval_sets()[0]
        dataset = open_eval_set(es, suite)
        assert len(dataset) == 2
        values = set()
        for index in range(len(dataset)):
            path = suite / es.label_dir / f"{dataset.names[index]}.tif"
            with Image.open(path) as image:
                assert image.format == "TIFF" and image.mode == "I;16"
                raw = np.array(image)
            label = dataset.read_label(index)
            np.testing.assert_array_equal(label, raw)
            values |= set(np.unique(label).tolist())
        assert max(values - {es.ignore_index}) > 255, values  # real 16-bit class ids, not truncated
        assert es.ignore_index in values


def test_sets_sharing_an_image_folder_keep_their_own_images(cli, suite):
    names = {n: open_eval_set(SPECS[n].eval_sets()[0], suite).names for n in ("pc59", "pc459", "voc20", "voc20b")}
    assert names["pc59"] == ["synth_pc59_000", "synth_pc59_001"] and names["pc459"] == ["synth_pc459_000", "synth_pc459_001"]
    assert names["voc20"] == ["synth_voc20_000", "synth_voc20_001"]
    check = cli("datasets", "check", *IN_DOMAIN_NAMES, "--data-root", suite)
    assert check.exit_code == 0, check.output
    assert "all 6 evaluation set(s) OK" in check.stdout


def test_run_then_score_the_six(cli, suite, tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "prompt_plugin.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    out = tmp_path / "out"
    ran = cli("run", "--model", "prompt_plugin:Segmenter", "--datasets", ",".join(IN_DOMAIN_NAMES), "--data-root",
              suite, "--output", out, "--workers", "0", "--published", "none", "--save-predictions")
    assert ran.exit_code == 0, ran.output
    import prompt_plugin

    assert prompt_plugin.SEEN[59] == SPECS["voc20b"].prompt_names  # the model was asked for the 59 prompts
    assert {847, 459, 150, 59, 20} <= set(prompt_plugin.SEEN)
    for name in IN_DOMAIN_NAMES:
        es = SPECS[name].eval_sets()[0]
        result = read_result(out / "bright-prompts" / f"{name}.json")
        np.testing.assert_array_equal(result.confusion(), expected_confusion(es, suite))
        assert result.num_classes == es.num_classes and not result.partial
    saved = np.array(Image.open(out / "bright-prompts" / "predictions" / "voc20b" / "synth_voc20b_000.png"))
    assert saved.max() >= 20  # saved predictions keep the prompt indices
    for name in ("voc20b", "ade847"):
        scored = cli("score", "--dataset", name, "--data-root", suite, "--pred",
                     out / "bright-prompts" / "predictions" / name, "--output", tmp_path / "scored", "--model-id", "again")
        assert scored.exit_code == 0, scored.output
        again = read_result(tmp_path / "scored" / "again" / f"{name}.json")
        np.testing.assert_array_equal(again.confusion(), read_result(out / "bright-prompts" / f"{name}.json").confusion())
