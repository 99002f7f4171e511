"""CAT-Seg above `pad_len` classes: the official per-view top-k by default, said beside the number;
`--model-args all_classes=true` scores every class and is part of the settings.

catseg-tiny has pad_len 32, so FoodSeg103 (104 classes) takes the path A-847 and PC-459 take on
B and L (256). Parity of the default with the official code: test_model_parity_b300.py.
"""

from __future__ import annotations

import pytest
import torch

import model
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite

SPECS = load_specs()
RUN = ("run", "--model", "catseg-tiny", "--device", "cpu", "--workers", "0", "--published", "none",
       "--checkpoint", "none", "--datasets", "foodseg103", "--limit", "1")


def test_without_a_class_limit_every_class_gets_real_logits():
    torch.manual_seed(0)
    net = model.create_model("catseg-tiny")
    text = model.encode_classes(net, [f"thing {i}" for i in range(40)])
    images = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        limited = net(images, text)
        net.aggregator.class_limit = None
        everything = net(images, text)
    assert int((limited == -100).flatten(2).all(-1).sum()) == 40 - 32
    assert (everything != -100).all() and torch.isfinite(everything).all()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    write_suite(root, [SPECS["foodseg103"]], images_per_set=1, seed=1)
    return root


def test_the_official_limit_is_the_default_and_is_said_beside_the_number(suite, tmp_path, cli):
    result = cli(*RUN, "--data-root", suite, "--output", tmp_path)
    assert result.exit_code == 0, result.output
    saved = read_result(tmp_path / "catseg-tiny" / "foodseg103.json")
    assert "all_classes" not in saved.settings and saved.num_classes == 104
    [warning] = [w for w in saved.label_warnings if "classes per view" in w]
    assert "at most 32 of the 104 classes per view" in warning and "all_classes=true" in warning
    assert "at most 32 of the 104 classes" in " ".join(result.output.split())  # bench run prints it too


def test_all_classes_is_a_setting_and_drops_the_warning(suite, tmp_path, cli):
    result = cli(*RUN, "--data-root", suite, "--output", tmp_path, "--model-args", "all_classes=true")
    assert result.exit_code == 0, result.output
    [path] = (tmp_path / "catseg-tiny").glob("foodseg103.json")
    saved = read_result(path)
    assert saved.settings["all_classes"] is True
    assert not [w for w in saved.label_warnings if "classes per view" in w]
