"""The Python API (`catseg_bench.api`) and what the CLI builds on it: scoring through the runner,
untrained weights labelled as such, the tidy results frame."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from catseg_bench import api
from catseg_bench.data import open_eval_set
from catseg_bench.errors import BenchError
from catseg_bench.partial import partial_path
from catseg_bench.results import read_result
from catseg_bench.runner import PROGRESS_SECONDS_ENV
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite
from conftest import kill_once_progress_is_saved

SPECS = load_specs()


class ConstantSegmenter:
    """Predicts class `value` everywhere (a segmenter instance passed to `api.evaluate`)."""

    checkpoint_sha256 = None

    def __init__(self, value: int):
        self.value = value
        self.model_id = f"const{value}"

    def settings(self):
        return {"value": self.value}

    def set_classes(self, class_names):
        pass

    def prepare_image(self, image):
        return image

    def predict(self, images, original_sizes):
        return [torch.full(size, self.value, dtype=torch.int64) for size in original_sizes]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    write_suite(root, [SPECS["cwfid"], SPECS["kvasir_instrument"]], images_per_set=2, seed=5)
    return root


def test_evaluate_an_instance_then_load_results_and_make_table(suite, tmp_path):
    report = api.evaluate(ConstantSegmenter(1), "cwfid,kvasir_instrument", suite, tmp_path, workers=0)
    assert report.ok and [o.status for o in report.outcomes] == ["done", "done"]
    assert report.result_dir == tmp_path / "const1" and not report.untrained

    frame = api.load_results([tmp_path])
    assert set(frame["model"]) == {"const1"} and set(frame["eval_set"]) == {"cwfid", "kvasir_instrument"}
    miou = frame[(frame.eval_set == "cwfid") & (frame.metric == "mIoU")]
    assert len(miou) == 1 and miou.iloc[0]["domain"] == SPECS["cwfid"].domain
    assert miou.iloc[0]["value"] == pytest.approx(read_result(tmp_path / "const1" / "cwfid.json").metrics["mIoU"])
    assert not frame["partial"].any() and not frame["untrained"].any()

    markdown = api.make_table(frame, published="none", fmt="markdown")
    cwfid = read_result(tmp_path / "const1" / "cwfid.json").metrics["mIoU"]
    assert "| const1 (synthetic data) |" in markdown and f"{cwfid:.2f}" in markdown
    assert api.make_table([tmp_path], published="none", fmt="markdown") == markdown  # folders give the same table

    again = api.evaluate(ConstantSegmenter(1), "cwfid", suite, tmp_path, workers=0)
    assert [o.status for o in again.outcomes] == ["skipped"]


def test_raise_for_failures_carries_each_failed_set_s_reason(suite, tmp_path):
    report = api.evaluate(ConstantSegmenter(2), "cwfid,kvasir_instrument", suite, tmp_path, workers=0)
    assert [o.status for o in report.outcomes] == ["done", "failed"]  # class 2 does not exist in the binary set
    with pytest.raises(BenchError) as raised:
        report.raise_for_failures()
    reason = report.failed[0].message
    assert "const2 on kvasir_instrument" in reason and "expected class indices in [0, 1]" in reason
    assert str(raised.value) == f"1 of 2 evaluation sets failed: kvasir_instrument ({reason})"
    assert "reasons above" not in str(raised.value)


def _big_prediction_suite(tmp_path, images=30, side=1200):
    """cwfid with large labels and predictions, so that scoring takes long enough to be killed."""
    root = tmp_path / "data"
    write_suite(root, [SPECS["cwfid"]], images_per_set=images, seed=7)
    eval_set = SPECS["cwfid"].eval_sets()[0]
    dataset = open_eval_set(eval_set, root)
    rng = np.random.default_rng(0)
    preds = tmp_path / "preds"
    k = eval_set.num_classes
    expected = np.zeros((k + 1, k + 1), dtype=np.int64)
    for index, name in enumerate(dataset.names):
        label = rng.integers(0, k, size=(side, side), dtype=np.uint8)
        Image.fromarray(label).save(dataset.label_path(index))
        pred = rng.integers(0, k, size=(side, side), dtype=np.uint8)
        (preds / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pred).save(preds / f"{name}.png")
        np.add.at(expected, (pred.ravel().astype(np.int64), label.ravel().astype(np.int64)), 1)
    return root, preds, expected


@pytest.mark.slow
def test_score_killed_mid_set_resumes_to_the_identical_matrix(tmp_path):
    root, preds, expected = _big_prediction_suite(tmp_path)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "catseg_bench", "score", "--dataset", "cwfid", "--data-root", str(root),
            "--pred", str(preds), "--output", str(out), "--model-id", "mine", "--workers", "0"]
    env = {**os.environ, PROGRESS_SECONDS_ENV: "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    state = partial_path(out / "mine", "cwfid")
    assert 0 < kill_once_progress_is_saved(proc, state) < 30
    assert not (out / "mine" / "cwfid.json").exists()

    resumed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resumed" in resumed.stdout
    np.testing.assert_array_equal(read_result(out / "mine" / "cwfid.json").confusion(), expected)
    assert not state.exists()


def test_catseg_b_without_cached_weights_offline_fails_in_one_line(suite, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-m", "catseg_bench", "run", "--model", "catseg-b", "--datasets", "cwfid",
                           "--data-root", str(suite), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert "--checkpoint PATH" in lines[0] and "--checkpoint none" in lines[0] and "model_base.pth" in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_untrained_catseg_b_is_labelled_and_never_compared(cli, tmp_path):
    root = tmp_path / "data"
    write_suite(root, [SPECS["cwfid"]], images_per_set=1, seed=2)
    ran = cli("run", "--model", "catseg-b", "--checkpoint", "none", "--datasets", "cwfid", "--data-root", root,
              "--output", tmp_path / "out", "--workers", "0", env={"COLUMNS": "250"})
    assert ran.exit_code == 0, ran.output
    document = json.loads((tmp_path / "out" / "catseg-b" / "cwfid.json").read_text())
    assert document["model"] == {"id": "catseg-b", "checkpoint_sha256": None, "untrained": True}
    assert document["settings"]["random_init_seed"] == 0
    assert "catseg-b (untrained)" in ran.output and "Δ vs" not in ran.output
    assert "untrained (random) weights: not comparable with published numbers" in ran.output

    table = api.make_table([tmp_path / "out"], published="seed", fmt="csv")
    labels = [line.split(",")[0] for line in table.splitlines()[1:]]
    assert "catseg-b (untrained) (synthetic data)" in labels and any(label.startswith("CAT-Seg-B") for label in labels)


class BatchingSegmenter(ConstantSegmenter):
    """Says how many images it takes per forward for --batch-size auto, and records what it got."""

    def __init__(self):
        super().__init__(0)
        self.asked: list[tuple[int, int]] = []
        self.batches: list[int] = []

    def auto_batch_size(self, image_size):
        self.asked.append(image_size)
        return 3

    def predict(self, images, original_sizes):
        self.batches.append(len(images))
        return super().predict(images, original_sizes)


def test_batch_size_auto_asks_the_segmenter_for_the_largest_image(tmp_path):
    root = tmp_path / "data"
    write_suite(root, [SPECS["cwfid"]], images_per_set=5, seed=1)
    dataset = open_eval_set(SPECS["cwfid"].eval_sets()[0], root)
    sizes = [dataset.read_image(i).shape[:2] for i in range(len(dataset))]
    segmenter = BatchingSegmenter()
    report = api.evaluate(segmenter, "cwfid", root, tmp_path / "out", batch_size="auto", workers=0)
    assert report.ok
    assert segmenter.asked == [max(sizes, key=lambda s: s[0] * s[1])] and segmenter.batches == [3, 2]


def test_precision_auto_is_fp32_on_the_cpu_and_recorded(tmp_path, suite):
    report = api.evaluate("catseg-tiny", "cwfid", suite, tmp_path, checkpoint="none", device="cpu", workers=0)
    assert report.ok and read_result(tmp_path / "catseg-tiny" / "cwfid.json").settings["precision"] == "fp32"
    with pytest.raises(BenchError, match="--precision fp64: choose one of fp32, tf32, bf16"):
        api.evaluate("catseg-tiny", "cwfid", suite, tmp_path, checkpoint="none", device="cpu", precision="fp64")
