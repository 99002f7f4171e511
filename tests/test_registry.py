"""The segmenter registry: built-ins, installed packages' entry points, module:Class and --model-args."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from catseg_bench import registry
from catseg_bench.data import open_eval_set
from catseg_bench.errors import BenchError
from catseg_bench.results import read_result
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite

SPECS = load_specs()

# A user's segmenter, written as a user would: plain numpy/torch, no import of catseg_bench.
PLUGIN_SOURCE = textwrap.dedent('''
    """A test plugin: class 1 where an image is brighter than `threshold` (0-1), else class 0."""
    import numpy as np
    import torch


    class Segmenter:
        """Brightness threshold (a test plugin)."""

        checkpoint_sha256 = None

        def __init__(self, threshold: float = 0.5, name: str = "bright", *, device=None):
            self.threshold = threshold
            self.model_id = name
            self.device = device

        def settings(self):
            return {"threshold": self.threshold}

        def set_classes(self, class_names):
            self.num_classes = len(class_names)

        def prepare_image(self, image):
            return image

        def predict(self, images, original_sizes):
            return [torch.from_numpy((image.mean(axis=2) > self.threshold * 255).astype(np.int64)) for image in images]
''')


def expected_confusion(eval_set, data_root: Path, threshold: float) -> np.ndarray:
    """The plugin's confusion matrix, computed here with numpy alone."""
    dataset = open_eval_set(eval_set, data_root)
    k = eval_set.num_classes
    matrix = np.zeros((k + 1, k + 1), dtype=np.int64)
    for index in range(len(dataset)):
        item = dataset[index]
        pred = (item["image"].mean(axis=2) > threshold * 255).astype(np.int64)
        gt = np.where(item["label"] == eval_set.ignore_index, k, item["label"])
        np.add.at(matrix, (pred.ravel(), gt.ravel()), 1)
    return matrix


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    write_suite(root, [SPECS["cwfid"]], images_per_set=2, seed=3)
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A throw-away package 'demo-plugin' installed into a site folder: its module and its
    dist-info with an entry point in the group catseg_bench.segmenters, as pip would lay them out."""
    site = tmp_path_factory.mktemp("site")
    (site / "demo_plugin.py").write_text(PLUGIN_SOURCE)
    (site / "tests_plugin_module.py").write_text(PLUGIN_SOURCE)
    info = site / "demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\nbright = demo_plugin:Segmenter\n")
    (info / "RECORD").write_text("")
    return site


def bench(site: Path, *args, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "catseg_bench", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_builtins_are_registered_with_their_arguments():
    entries = registry.available_segmenters()
    assert {"catseg-b", "catseg-l", "catseg-tiny", "random", "predictions"} <= set(entries)
    assert all(entries[name].source == "built-in" for name in ("catseg-b", "random", "predictions"))
    assert entries["catseg-b"].fixed == {"variant": "catseg-b"}
    assert [p.describe() for p in entries["catseg-b"].parameters()] == ["compile: bool = False", "all_classes: bool = False"]
    assert [p.name for p in entries["predictions"].parameters()] == ["pred_dir", "model_id", "flat"]
    assert entries["predictions"].parameters()[0].required


def test_installed_package_plugin_is_listed_run_and_tabulated(site, suite, tmp_path):
    listed = bench(site, "models", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["bright"]["source"] == "package demo-plugin 0.1"
    assert rows["bright"]["target"] == "demo_plugin:Segmenter"
    assert rows["bright"]["description"] == "Brightness threshold (a test plugin)."  # the class docstring's first line
    assert [a["name"] for a in rows["bright"]["arguments"]] == ["threshold", "name"]
    assert rows["bright"]["run_options"] == ["device"]
    assert rows["catseg-b"]["run_options"] == ["device", "precision", "checkpoint", "mode", "seed"]
    assert rows["catseg-b"]["weights"] == ["cvpr2024"] and rows["catseg-tiny"]["weights"] == []
    assert rows["san-b"]["weights"] == rows["san-l"]["weights"] == ["official"] and rows["san-tiny"]["weights"] == []
    assert rows["san-b"]["run_options"] == ["device", "precision", "checkpoint", "seed"]
    assert "bright" in bench(site, "models", "list").stdout
    assert "Brightness threshold (a test plugin)." in " ".join(bench(site, "models", "list").stdout.split())

    out = tmp_path / "out"
    ran = bench(site, "run", "--model", "bright", "--model-args", "threshold=0.4", "--datasets", "cwfid",
                "--data-root", suite, "--output", out, "--workers", "0")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    result = read_result(out / "bright" / "cwfid.json")
    eval_set = SPECS["cwfid"].eval_sets()[0]
    np.testing.assert_array_equal(result.confusion(), expected_confusion(eval_set, suite, 0.4))
    assert result.settings["threshold"] == 0.4 and not result.untrained

    table = bench(site, "table", out, "--published", "none", "--format", "csv")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    column = header.split(",").index("CWFID")
    assert row.split(",")[0] == "bright (synthetic data)" and float(row.split(",")[column]) == pytest.approx(result.metrics["mIoU"], abs=0.005)


def test_module_class_with_model_args(cli, site, suite, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    out = tmp_path / "out"
    ran = cli("run", "--model", "tests_plugin_module:Segmenter", "--model-args", "threshold=0.5,name=mine",
              "--datasets", "cwfid", "--data-root", suite, "--output", out, "--workers", "0", "--published", "none")
    assert ran.exit_code == 0, ran.output
    result = read_result(out / "mine" / "cwfid.json")
    np.testing.assert_array_equal(result.confusion(), expected_confusion(SPECS["cwfid"].eval_sets()[0], suite, 0.5))

    bad = cli("run", "--model", "tests_plugin_module:Segmenter", "--model-args", "thresh=0.5",
              "--datasets", "cwfid", "--data-root", suite, "--output", out)
    assert bad.exit_code == 1
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert lines == ["Error: --model-args thresh: not an argument of tests_plugin_module:Segmenter; it accepts: "
                     "threshold: float = 0.5, name: str = 'bright'"]


def test_model_args_are_typed_from_the_annotations():
    class Knobs:
        def __init__(self, a: int, b: float = 1.0, c: bool = False, d: Path | None = None, e: str = "x",
                     *, device=None):
            self.values = (a, b, c, d, e)

    registry.register_segmenter("test-knobs")(Knobs)
    try:
        with pytest.raises(BenchError, match="lacks model_id, checkpoint_sha256, settings"):
            registry.build_segmenter("test-knobs", {"a": "1"}, device="cpu")
        Knobs.model_id, Knobs.checkpoint_sha256 = "knobs", None
        Knobs.settings = Knobs.set_classes = Knobs.prepare_image = Knobs.predict = lambda self, *a: None
        built = registry.build_segmenter("test-knobs", registry.parse_model_args("a=3,b=0.25,c=yes,d=none,e=a=b"),
                                         device="cpu", precision="fp32")
        assert built.values == (3, 0.25, True, None, "a=b")
        assert registry.build_segmenter("test-knobs", {"a": "2", "d": "~/w"}).values[3] == Path("~/w").expanduser()
        with pytest.raises(BenchError, match=r"--model-args a='x': expected int"):
            registry.build_segmenter("test-knobs", {"a": "x"})
        with pytest.raises(BenchError, match="missing required --model-args a"):
            registry.build_segmenter("test-knobs", {})
        with pytest.raises(BenchError, match="takes no checkpoint; drop --checkpoint"):
            registry.build_segmenter("test-knobs", {"a": "1"}, checkpoint="w.pth")
    finally:
        registry._REGISTERED.pop("test-knobs")


@pytest.mark.parametrize("text, message", [
    ("a", "'a' is not key=value"),
    ("a=1,a=2", "'a' is given twice"),
    ("=1", "'=1' is not key=value"),
])
def test_bad_model_args_text(text, message):
    with pytest.raises(BenchError, match=message):
        registry.parse_model_args(text)


def test_unknown_model_and_bad_targets_are_one_line_errors(cli, tmp_path):
    unknown = cli("run", "--model", "nope", "--datasets", "cwfid", "--data-root", tmp_path, "--output", tmp_path)
    assert unknown.exit_code == 1 and "--model nope: unknown model; choose one of catseg-b" in unknown.output
    for target, message in [("no_such_module_xyz:Seg", "cannot import module 'no_such_module_xyz'"),
                            ("json:NoSuchClass", "module 'json' has no attribute 'NoSuchClass'")]:
        res = cli("run", "--model", target, "--datasets", "cwfid", "--data-root", tmp_path, "--output", tmp_path)
        assert res.exit_code == 1 and message in res.output


def test_a_name_registered_twice_for_different_classes_is_refused():
    class A:
        pass

    class B:
        pass

    registry.register_segmenter("test-twice")(A)
    try:
        registry.register_segmenter("test-twice")(A)  # the same registration again is harmless
        with pytest.raises(BenchError, match="registered twice"):
            registry.register_segmenter("test-twice")(B)
    finally:
        registry._REGISTERED.pop("test-twice")


def test_every_published_weights_tag_names_its_licence(cli):
    """`bench models list` shows a licence beside each published weights tag of every built-in model
    (OVSeg and ZegFormer are CC BY-NC 4.0: a user must see that before evaluating with them)."""
    rows = json.loads(cli("models", "list", "--json").output)
    tagged = [row for row in rows if row["weights"]]
    assert {"catseg-b", "san-b", "grounded-sam-b", "zsseg-b"} <= {row["name"] for row in tagged}
    for row in tagged:
        licences = row.get("weights_licences", {})
        assert set(licences) == set(row["weights"]) and all(licences.values()), row["name"]
    [gsam] = [row for row in rows if row["name"] == "grounded-sam-l"]
    assert set(gsam["weights_licences"].values()) == {"Apache-2.0"}
