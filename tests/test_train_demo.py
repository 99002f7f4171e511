"""Periodic evaluation through the benchmark runner, and the `bench train --demo` plumbing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from catseg_bench.random_baseline import random_iou
from catseg_bench.training import score_heldout
from model import create_model
from model.training.synthetic import SyntheticScenes
from train_fixtures import SCENES, write_spec_dataset


def test_periodic_evaluation_runs_the_benchmark_runner_on_mess_sets(cli, tmp_path):
    from catseg_bench.specs import load_specs
    from catseg_bench.synth import write_suite

    root = tmp_path / "data"
    write_suite(root, [load_specs()["suim"]], images_per_set=1)
    spec = write_spec_dataset(root, SCENES)
    out = tmp_path / "run"
    result = cli("train", "--model", "catseg-tiny", "--dataset", str(spec), "--data-root", str(root),
                 "--output", str(out), "--iters", "2", "--batch-size", "1", "--workers", "0", "--log-period", "1",
                 "--eval-sets", "suim", "--eval-period", "1", "--eval-limit", "1", "--eval-mode", "whole")
    assert result.exit_code == 0, result.output
    rows = (out / "eval.csv").read_text().splitlines()
    assert rows[0] == "step,metric,value" and [r.split(",")[:2] for r in rows[1:]] == [["1", "suim/mIoU"], ["2", "suim/mIoU"]]
    saved = json.loads((out / "eval" / "step_0000002" / "catseg-tiny" / "suim.json").read_text())
    assert saved["settings"]["training_step"] == 2 and saved["settings"]["mode"] == "whole"
    assert float(rows[2].split(",")[2]) == pytest.approx(saved["metrics"]["mIoU"])
    assert "evaluation at step 2: suim/mIoU" in result.output


def test_heldout_scores_carry_the_random_lower_bound_of_their_labels():
    scenes = SyntheticScenes(2, seed=11, size=64, num_classes=3)
    torch.manual_seed(0)
    scores = score_heldout(create_model("catseg-tiny").eval(), scenes, mode="whole")
    labels = np.concatenate([scenes.read_label(i).ravel() for i in range(2)])
    counts = np.array([(labels == c).sum() for c in range(3)])
    assert scores.random_miou == pytest.approx(100 * random_iou(counts).mean())
    assert 0 <= scores.miou <= 100 and set(scores.per_class_iou) == set(scenes.class_names)


def test_demo_trains_and_reports_loss_and_heldout_scores(cli, tmp_path, monkeypatch):
    monkeypatch.setattr("catseg_bench.training.DEMO_HELDOUT_SCENES", 2)  # the plumbing, not the claim
    result = cli("train", "--demo", "--output", str(tmp_path / "demo"), "--iters", "2", "--log-period", "1")
    assert result.exit_code == 0, result.output
    assert "Random lower bound" in result.output and "catseg-tiny, trained 2 steps" in result.output
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert summary["steps"] == 2 and summary["class_names"] == ["sky", "grass", "brick wall", "sand"]
    assert summary["passed"] == (summary["last_loss"] < summary["first_loss"] and
                                 summary["after"]["miou"] > summary["after"]["random_miou"])
    assert (tmp_path / "demo" / "model_final.safetensors").is_file()
