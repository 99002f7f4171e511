"""Training runs end to end on catseg-tiny: logs, checkpoints, exact resume, torchrun/gloo, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import create_model
from model.training.loop import TrainingSet, TrainSettings, read_log, train
from model.training.state import latest_checkpoint, list_checkpoints, load_checkpoint
from model.training.synthetic import SyntheticScenes
from train_fixtures import SCENES, write_spec_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS = TrainSettings(iters=4, batch_size=1, checkpoint_period=2, keep_checkpoints=0, log_period=1, num_workers=0)


def _training_set() -> TrainingSet:
    return TrainingSet(SCENES, SCENES.class_names, 255, "synthetic scenes")


class _Interrupt(Exception):
    pass


def _params(net) -> dict[str, torch.Tensor]:
    return net.canonical_state_dict()


def test_killed_run_resumes_at_its_checkpoint_and_ends_with_the_same_parameters(tmp_path):
    straight = train("catseg-tiny", _training_set(), tmp_path / "straight", SETTINGS, log=lambda m: None)
    assert straight.step == 4 and straight.start_step == 0

    def log_until_step_3(message: str) -> None:
        if message.startswith("step 3/"):
            raise _Interrupt  # stop after step 3: its checkpoint is step 2
    with pytest.raises(_Interrupt):
        train("catseg-tiny", _training_set(), tmp_path / "split", SETTINGS, log=log_until_step_3)
    assert [step for step, _ in list_checkpoints(tmp_path / "split")] == [2]

    messages = []
    resumed = train("catseg-tiny", _training_set(), tmp_path / "split", SETTINGS, resume=True, log=messages.append)
    assert resumed.start_step == 2 and resumed.step == 4
    assert any("resumed from" in m and "step_0000002.pt" in m for m in messages)

    expected = _params(create_model("catseg-tiny", checkpoint=straight.final_weights))
    got = _params(create_model("catseg-tiny", checkpoint=resumed.final_weights))
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-6, atol=1e-7, msg=key)
    assert any(not torch.equal(expected[k], _params(create_model("catseg-tiny"))[k]) for k in expected)  # it trained

    # the log holds every step once, the rows after the checkpoint rewritten by the resumed run
    rows = read_log(tmp_path / "split")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    straight_rows = read_log(tmp_path / "straight")
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in straight_rows], rel=1e-5)
    assert rows[0]["lr"] == pytest.approx(2e-4) and rows[0]["clip_lr"] == pytest.approx(2e-6)

    state = load_checkpoint(latest_checkpoint(tmp_path / "split"))
    assert state["step"] == 4 and set(state) >= {"model", "optimizer", "scheduler", "rng", "run"}
    from_step_file = _params(create_model("catseg-tiny", checkpoint=latest_checkpoint(tmp_path / "split")))
    assert all(torch.equal(from_step_file[k], got[k]) for k in got)  # what `bench run --checkpoint` loads
    assert state["scheduler"]["last_epoch"] == 4
    run = json.loads((tmp_path / "split" / "run.json").read_text())
    assert run["class_names"] == list(SCENES.class_names) and run["world_size"] == 1


def test_run_killed_with_sigkill_resumes_from_its_newest_complete_checkpoint(tmp_path):
    spec = write_spec_dataset(tmp_path / "data", SCENES)
    args = ["-m", "catseg_bench", "train", "--model", "catseg-tiny", "--dataset", str(spec), "--data-root",
            str(tmp_path / "data"), "--output", str(tmp_path / "run"), "--iters", "8", "--batch-size", "1",
            "--workers", "0", "--log-period", "1", "--checkpoint-period", "2", "--keep-checkpoints", "0"]
    # the killed run's steps must use the thread count of the runs below: float sums (weight
    # gradients of the convs) are split by thread, and Adam turns their last-bit differences into
    # ~1e-7 steps on small weights
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "step_0000002.pt" in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL
    killed_at = [step for step, _ in list_checkpoints(tmp_path / "run")]
    assert killed_at and killed_at[-1] < 8

    settings = replace(SETTINGS, iters=8)
    resumed = train("catseg-tiny", _training_set(), tmp_path / "run", settings, resume=True, log=lambda m: None)
    assert resumed.start_step == killed_at[-1]
    straight = train("catseg-tiny", _training_set(), tmp_path / "straight", settings, log=lambda m: None)
    expected = _params(create_model("catseg-tiny", checkpoint=straight.final_weights))
    got = _params(create_model("catseg-tiny", checkpoint=resumed.final_weights))
    for key in expected:  # PNG files and in-memory scenes hold the same pixels
        torch.testing.assert_close(got[key], expected[key], rtol=1e-6, atol=1e-7, msg=key)


def test_bf16_autocast_trains(tmp_path):
    result = train("catseg-tiny", _training_set(), tmp_path, replace(SETTINGS, iters=1, precision="bf16"),
                   log=lambda m: None)
    assert np.isfinite(read_log(result.output_dir)[0]["loss"])


def test_clip_k_and_frozen_weights_do_not_move_while_q_and_v_do(tmp_path, monkeypatch):
    from model.aggregator import Aggregator

    pool_sizes = []
    original = Aggregator.forward

    def spy(self, img_feats, text, pool_size, *args, **kwargs):
        pool_sizes.append(pool_size)
        return original(self, img_feats, text, pool_size, *args, **kwargs)

    monkeypatch.setattr(Aggregator, "forward", spy)
    result = train("catseg-tiny", _training_set(), tmp_path, replace(SETTINGS, iters=1), log=lambda m: None)
    assert pool_sizes == [2]  # class pooling 2x2 in training
    torch.manual_seed(SETTINGS.seed)
    before = create_model("catseg-tiny").canonical_state_dict()
    after = create_model("catseg-tiny", checkpoint=result.final_weights).canonical_state_dict()
    width = create_model("catseg-tiny").config.vision.width
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    clip_moved = {k for k in moved if k.startswith("clip.")}
    assert clip_moved and all(k.endswith("attn.in_proj_weight") for k in clip_moved)
    block = "clip.visual.transformer.resblocks.0.attn.in_proj_weight"
    q, k, v = (before[block] - after[block]).abs().sum(dim=1).split(width)
    assert q.sum() > 0 and v.sum() > 0 and k.sum() == 0
    # every new-module tensor took a step, except the Swin key biases: softmax ignores a shift shared by all
    # keys, so their gradient is zero
    new_modules = {k for k in before if not k.startswith("clip.") and not k.endswith(".attn.k.bias")}
    assert new_modules <= moved


def test_an_output_with_checkpoints_needs_resume_and_the_same_settings(tmp_path):
    from model.training.loop import TrainingError
    from model.training.state import CheckpointMismatch

    train("catseg-tiny", _training_set(), tmp_path, replace(SETTINGS, iters=2), log=lambda m: None)
    with pytest.raises(TrainingError, match="pass --resume"):
        train("catseg-tiny", _training_set(), tmp_path, replace(SETTINGS, iters=2), log=lambda m: None)
    with pytest.raises(CheckpointMismatch, match="other batch_size"):
        train("catseg-tiny", _training_set(), tmp_path, replace(SETTINGS, iters=2, batch_size=2), resume=True,
              log=lambda m: None)


def _bench_train(*args: str, nproc: int = 0) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc)] if nproc else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *launcher, "-m", "catseg_bench", "train", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_torchrun_with_two_gloo_processes_trains_like_one_process_with_the_whole_batch(tmp_path):
    spec = write_spec_dataset(tmp_path / "data", SCENES)
    common = ["--model", "catseg-tiny", "--dataset", str(spec), "--data-root", str(tmp_path / "data"), "--iters", "2",
              "--batch-size", "2", "--workers", "0", "--log-period", "1", "--device", "cpu"]
    two = _bench_train(*common, "--output", str(tmp_path / "two"), nproc=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    assert [int(r["step"]) for r in read_log(tmp_path / "two")] == [1, 2]
    assert two.stdout.count("step 2/2") == 1  # only rank 0 logs

    one = train("catseg-tiny", TrainingSet(SCENES, SCENES.class_names, 255, "scenes"), tmp_path / "one",
                replace(SETTINGS, iters=2, batch_size=2), log=lambda m: None)
    from_two = create_model("catseg-tiny", checkpoint=tmp_path / "two" / "model_final.safetensors").canonical_state_dict()
    from_one = create_model("catseg-tiny", checkpoint=one.final_weights).canonical_state_dict()
    for key in from_one:
        torch.testing.assert_close(from_two[key], from_one[key], rtol=1e-4, atol=1e-6, msg=key)
    # images read from files (PNG round trip) equal the in-memory scenes, so the losses agree too
    assert [r["loss"] for r in read_log(tmp_path / "two")] == pytest.approx(
        [r["loss"] for r in read_log(tmp_path / "one")], rel=1e-4)


def test_cli_errors_are_one_line(cli, tmp_path):
    result = cli("train", "--model", "catseg-tiny")
    assert result.exit_code == 1 and "--output DIR is required" in result.output
    result = cli("train", "--demo", "--model", "catseg-b", "--output", str(tmp_path))
    assert result.exit_code == 1 and "--demo trains a tiny variant on synthetic scenes: --model catseg-tiny or" in result.output
    result = cli("train", "--model", "catseg-x", "--output", str(tmp_path))
    assert result.exit_code == 1 and "choose one of" in result.output
    result = cli("train", "--model", "catseg-tiny", "--output", str(tmp_path), "--data-root", str(tmp_path))
    assert result.exit_code == 1 and "coco-stuff/images/train2017" in result.output and "Traceback" not in result.output


def test_corrupt_label_values_name_the_file(cli, tmp_path):
    spec = write_spec_dataset(tmp_path / "data", SyntheticScenes(1, seed=0, size=48, num_classes=2))
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(tmp_path / "data" / "scenes" / "labels" / "000.png")
    result = cli("train", "--model", "catseg-tiny", "--dataset", str(spec), "--data-root", str(tmp_path / "data"),
                 "--output", str(tmp_path / "run"), "--iters", "1", "--batch-size", "1", "--workers", "0")
    assert result.exit_code == 1
    assert "000.png" in result.output and "label values [7]" in result.output


class _IgnoreAs250:
    """The synthetic scenes with their ignore pixels labelled 250 instead of 255."""

    def __len__(self) -> int:
        return len(SCENES)

    def read_image(self, index: int) -> np.ndarray:
        return SCENES.read_image(index)

    def read_label(self, index: int) -> np.ndarray:
        label = SCENES.read_label(index)
        return np.where(label == 255, 250, label)


def test_a_training_set_with_another_ignore_value_trains_identically(tmp_path):
    assert any((SCENES.read_label(i) == 255).any() for i in range(len(SCENES)))  # there is something to ignore
    settings = replace(SETTINGS, checkpoint_period=100)
    usual = train("catseg-tiny", _training_set(), tmp_path / "255", settings, log=lambda m: None)
    other = TrainingSet(_IgnoreAs250(), SCENES.class_names, 250, "ignore 250")
    relabelled = train("catseg-tiny", other, tmp_path / "250", settings, log=lambda m: None)
    assert relabelled.step == usual.step == 4
    assert [r["loss"] for r in read_log(tmp_path / "250")] == [r["loss"] for r in read_log(tmp_path / "255")]


def test_temp_files_of_a_killed_run_are_removed_before_it_resumes(tmp_path):
    from model.training.state import CHECKPOINT_DIR, remove_partial_writes

    (tmp_path / CHECKPOINT_DIR).mkdir()
    leftovers = [tmp_path / ".model_final.safetensors.x1.tmp", tmp_path / CHECKPOINT_DIR / ".step_0000002.pt.x2.tmp"]
    finished = [tmp_path / "log.csv", tmp_path / CHECKPOINT_DIR / "step_0000002.pt"]
    for path in leftovers + finished:
        path.write_bytes(b"x")
    remove_partial_writes(tmp_path)
    assert not any(path.exists() for path in leftovers)
    assert all(path.exists() for path in finished)
