"""End-to-end tests of `bench run` on synthetic data: results, resume, isolation, torchrun, random."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from catseg_bench.data import open_eval_set
from catseg_bench.per_image import load_per_image, per_image_path
from catseg_bench.random_baseline import random_iou
from catseg_bench.results import read_result
from catseg_bench.runner import PROGRESS_SECONDS_ENV
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite
from conftest import kill_once_progress_is_saved

SPECS = load_specs()
RUN = ("run", "--model", "catseg-tiny", "--device", "cpu", "--workers", "0", "--published", "none")


def _suite(root: Path, names: list[str], images: int) -> Path:
    write_suite(root, [SPECS[n] for n in names], images_per_set=images, seed=3)
    return root


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory) -> Path:
    return _suite(tmp_path_factory.mktemp("suite"), ["cwfid", "paxray4", "kvasir_instrument"], images=2)


@pytest.fixture(scope="module")
def first_run(small_suite, tmp_path_factory):
    from typer.testing import CliRunner

    from catseg_bench.cli import app

    out = tmp_path_factory.mktemp("out")
    args = [*RUN, "--datasets", "cwfid,paxray4", "--data-root", str(small_suite), "--output", str(out),
            "--save-predictions"]
    result = CliRunner().invoke(app, args)
    return out, result


def _gt_counts(root: Path, eval_set_name: str) -> np.ndarray:
    eval_set = next(es for spec in SPECS.values() for es in spec.eval_sets() if es.name == eval_set_name)
    dataset = open_eval_set(eval_set, root)
    counts = np.zeros(eval_set.num_classes + 1, dtype=np.int64)
    for i in range(len(dataset)):
        label = dataset.read_label(i).reshape(-1)
        label = np.where(label == eval_set.ignore_index, eval_set.num_classes, label)
        counts += np.bincount(label, minlength=eval_set.num_classes + 1)
    return counts


def _label_fingerprint(root: Path, eval_set_name: str) -> str:
    """The fingerprint `bench datasets fingerprint` prints for the set's labels."""
    from catseg_bench.data.check import inspect_eval_set

    eval_set = next(es for spec in SPECS.values() for es in spec.eval_sets() if es.name == eval_set_name)
    return inspect_eval_set(eval_set, root).stats.fingerprint


def test_full_run_writes_a_result_per_eval_set(first_run, small_suite):
    out, result = first_run
    assert result.exit_code == 0, result.output
    names = ["cwfid", "paxray4.lungs", "paxray4.mediastinum", "paxray4.bones", "paxray4.diaphragm"]
    for name in names:
        res = read_result(out / "catseg-tiny" / f"{name}.json")
        assert res.model_id == "catseg-tiny"
        assert res.images_scored == 2 and not res.partial
        assert res.settings == {"mode": "sliding", "precision": "fp32", "random_init_seed": 0, "limit": None}
        confusion = res.confusion()
        # Every labelled (and ignore) pixel of the ground truth is counted exactly once, per column.
        np.testing.assert_array_equal(confusion.sum(axis=0), _gt_counts(small_suite, name))
        assert confusion[-1].sum() == 0  # CAT-Seg always predicts one of the K classes
        assert 0.0 <= res.metrics["mIoU"] <= 100.0
        assert res.timing["seconds"] > 0 and res.timing["peak_memory_bytes"] > 0
    assert "Run summary" in result.output


def test_saved_predictions_score_to_the_run_results(first_run, small_suite, cli, tmp_path):
    out, _ = first_run
    predictions = out / "catseg-tiny" / "predictions"
    for dataset, pred in [("cwfid", predictions / "cwfid"), ("paxray4", predictions)]:
        res = cli("score", "--dataset", dataset, "--data-root", small_suite, "--pred", pred,
                  "--output", tmp_path, "--model-id", "rescored")
        assert res.exit_code == 0, res.output
    for name in ["cwfid", "paxray4.lungs", "paxray4.mediastinum", "paxray4.bones", "paxray4.diaphragm"]:
        run = read_result(out / "catseg-tiny" / f"{name}.json")
        np.testing.assert_array_equal(read_result(tmp_path / "rescored" / f"{name}.json").confusion(), run.confusion())
        _assert_same_per_image(tmp_path / "rescored", out / "catseg-tiny", name)


def _assert_same_per_image(folder_a: Path, folder_b: Path, eval_set: str) -> None:
    a, b = load_per_image(per_image_path(folder_a, eval_set)), load_per_image(per_image_path(folder_b, eval_set))
    assert a.names == b.names and len(a.names) > 0
    np.testing.assert_array_equal(a.counts, b.counts)


def test_rerun_skips_current_results(first_run, small_suite, cli):
    out, _ = first_run
    before = (out / "catseg-tiny" / "cwfid.json").read_bytes()
    again = cli(*RUN, "--datasets", "cwfid", "--data-root", small_suite, "--output", out)
    assert again.exit_code == 0, again.output
    assert "skipped" in again.output
    assert (out / "catseg-tiny" / "cwfid.json").read_bytes() == before


def test_other_settings_make_a_result_stale_and_it_is_set_aside(first_run, small_suite, cli, tmp_path):
    out = tmp_path / "out"
    first = cli(*RUN, "--datasets", "cwfid", "--data-root", small_suite, "--output", out, "--limit", "1")
    assert first.exit_code == 0, first.output
    assert read_result(out / "catseg-tiny" / "cwfid.json").partial
    second = cli(*RUN, "--datasets", "cwfid", "--data-root", small_suite, "--output", out)
    assert second.exit_code == 0, second.output
    assert "redone" in second.output and "inference settings differ" in second.output
    redone = read_result(out / "catseg-tiny" / "cwfid.json")
    assert not redone.partial and redone.settings["limit"] is None
    kept = list((out / "catseg-tiny").glob("cwfid.json.stale-*"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["settings"]["limit"] == 1


def test_limit_results_are_partial_and_kept_out_of_the_table(small_suite, cli, tmp_path):
    out = tmp_path / "out"
    ran = cli(*RUN, "--datasets", "kvasir_instrument", "--data-root", small_suite, "--output", out, "--limit", "1")
    assert ran.exit_code == 0, ran.output
    res = read_result(out / "catseg-tiny" / "kvasir_instrument.json")
    assert res.partial and res.images_scored == 1 and res.images_total == 2
    table = cli("table", out, "--published", "none", "--format", "csv")
    row = next(line for line in table.stdout.splitlines() if line.startswith("catseg-tiny"))
    header = table.stdout.splitlines()[0].split(",")
    assert row.split(",")[header.index("KvasirInst.")] == ""


def test_corrupt_image_fails_its_dataset_and_the_others_finish(cli, tmp_path):
    root = _suite(tmp_path / "data", ["kvasir_instrument", "cwfid"], images=1)
    image = next((root / SPECS["kvasir_instrument"].data.image_dir).rglob("*.png"))
    image.write_bytes(b"not an image at all")
    out = tmp_path / "out"
    ran = cli(*RUN, "--datasets", "kvasir_instrument,cwfid", "--data-root", root, "--output", out)
    assert ran.exit_code == 1
    assert image.name in ran.output
    assert (out / "catseg-tiny" / "cwfid.json").exists()
    assert not (out / "catseg-tiny" / "kvasir_instrument.json").exists()
    assert "1 of 2 evaluation sets failed: kvasir_instrument" in ran.output


def test_random_model_gives_the_closed_form(small_suite, cli, tmp_path):
    out = tmp_path / "out"
    ran = cli("run", "--model", "random", "--datasets", "cwfid", "--data-root", small_suite, "--output", out,
              "--published", "none")
    assert ran.exit_code == 0, ran.output
    res = read_result(out / "random" / "cwfid.json")
    counts = _gt_counts(small_suite, "cwfid")[:-1]
    assert res.metrics["mIoU"] == pytest.approx(100 * random_iou(counts).mean(), abs=1e-9)
    assert load_per_image(per_image_path(out / "random", "cwfid")).matches(res.confusion())


def _bench_subprocess(args: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra_env}
    return subprocess.Popen([sys.executable, "-m", "catseg_bench", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_matrix(cli, tmp_path):
    root = _suite(tmp_path / "data", ["cwfid"], images=12)
    reference = tmp_path / "reference"
    full = cli(*RUN, "--datasets", "cwfid", "--data-root", root, "--output", reference)
    assert full.exit_code == 0, full.output

    out = tmp_path / "out"
    state = out / "catseg-tiny" / ".cwfid.partial-0of1.npz"
    # Persist progress after every image, so that the kill always lands between two saved states.
    proc = _bench_subprocess([*RUN, "--datasets", "cwfid", "--data-root", root, "--output", out],
                             extra_env={PROGRESS_SECONDS_ENV: "0"})
    assert 0 < kill_once_progress_is_saved(proc, state) < 12
    with np.load(state) as saved:
        assert len(saved["per_image_names"]) == int(saved["done"])  # the done images' counts are saved too
    assert not (out / "catseg-tiny" / "cwfid.json").exists()

    resumed = cli(*RUN, "--datasets", "cwfid", "--data-root", root, "--output", out)
    assert resumed.exit_code == 0, resumed.output
    assert "resumed" in resumed.output
    assert not state.exists()
    np.testing.assert_array_equal(
        read_result(out / "catseg-tiny" / "cwfid.json").confusion(),
        read_result(reference / "catseg-tiny" / "cwfid.json").confusion(),
    )
    _assert_same_per_image(out / "catseg-tiny", reference / "catseg-tiny", "cwfid")
    # The label digests of the images done before the kill were kept: the fingerprint is the whole set's.
    assert read_result(out / "catseg-tiny" / "cwfid.json").data.label_fingerprint == _label_fingerprint(root, "cwfid")


@pytest.mark.slow
def test_torchrun_two_processes_write_the_one_process_results(first_run, small_suite, tmp_path):
    out, _ = first_run
    dist_out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "catseg_bench", *RUN, "--datasets", "cwfid,paxray4", "--data-root", str(small_suite),
           "--output", str(dist_out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ["cwfid", "paxray4.lungs", "paxray4.bones"]:
        one = read_result(out / "catseg-tiny" / f"{name}.json")
        two = read_result(dist_out / "catseg-tiny" / f"{name}.json")
        np.testing.assert_array_equal(two.confusion(), one.confusion())
        assert two.metrics == one.metrics and two.images_scored == one.images_scored
        _assert_same_per_image(dist_out / "catseg-tiny", out / "catseg-tiny", name)  # gathered in sample order
        assert two.data.label_fingerprint == one.data.label_fingerprint == _label_fingerprint(small_suite, name)


@pytest.mark.slow
def test_torchrun_a_set_failing_in_one_process_fails_everywhere_and_the_run_goes_on(tmp_path):
    root = _suite(tmp_path / "data", ["kvasir_instrument", "cwfid"], images=2)
    images = sorted((root / SPECS["kvasir_instrument"].data.image_dir).rglob("*.png"))
    images[1].write_bytes(b"not an image")  # the second image: rank 1's share
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518",
           "-m", "catseg_bench", *RUN, "--datasets", "kvasir_instrument,cwfid", "--data-root", str(root),
           "--output", str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode != 0
    assert images[1].name in done.stdout + done.stderr
    assert (tmp_path / "out" / "catseg-tiny" / "cwfid.json").exists()
    assert not (tmp_path / "out" / "catseg-tiny" / "kvasir_instrument.json").exists()


def test_demo_on_a_few_datasets_says_it_is_not_mess_quietly_and_where_its_results_are(cli, tmp_path):
    out = tmp_path / "demo"
    ran = cli("run", "--demo", "--datasets", "dram,cwfid", "--output", out, env={"COLUMNS": "80"})
    assert ran.exit_code == 0, ran.output
    words = re.sub(r"[\s│]+", " ", ran.output)  # the notice is wrapped inside a box
    assert "they are NOT MESS numbers" in words
    assert (out / "catseg-tiny" / "cwfid.json").exists()
    assert "CAT-Seg-B" in ran.output  # the published rows beside ours
    # Two images of DRAM's 12 classes leave several classes of interest unseen: one line for the set.
    warned = [line for line in ran.output.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and warned[0].startswith("warning: dram: ") and "more label warnings" in warned[0]
    more = int(re.search(r"and (\d+) more label warnings", warned[0]).group(1))
    assert ran.output.rstrip().splitlines()[-1].startswith(f"Results: {out / 'catseg-tiny'}/ (one JSON per set).")
    assert f"bench table {out}" in words

    verbose = cli("run", "--demo", "--datasets", "dram,cwfid", "--output", out, "--verbose")
    assert verbose.exit_code == 0, verbose.output
    assert len([line for line in verbose.output.splitlines() if line.startswith("warning: dram: ")]) == more + 1


def test_on_a_synthetic_suite_the_sets_default_to_its_manifest(cli, tmp_path):
    root = _suite(tmp_path / "suite", ["cwfid", "paxray4"], images=1)
    ran = cli("run", "--model", "random", "--data-root", root, "--output", tmp_path / "out", "--published", "none")
    assert ran.exit_code == 0, ran.output
    written = sorted(p.name for p in (tmp_path / "out" / "random").glob("[!.]*.json"))  # not the settings claim
    assert written == sorted(f"{es.name}.json" for name in ("cwfid", "paxray4") for es in SPECS[name].eval_sets())


def test_unknown_dataset_and_missing_data_are_one_line_errors(cli, tmp_path):
    unknown = cli(*RUN, "--datasets", "nope", "--data-root", tmp_path, "--output", tmp_path / "o")
    assert unknown.exit_code == 1 and "unknown dataset 'nope'" in unknown.output
    empty = cli(*RUN, "--datasets", "cwfid", "--data-root", tmp_path, "--output", tmp_path / "o")
    assert empty.exit_code == 1
    assert "cwfid" in empty.output and "failed" in empty.output


def test_interrupted_image_file_is_not_counted_twice(small_suite, tmp_path):
    """A saved state from another run key (e.g. other settings) is ignored, never merged."""
    from catseg_bench.partial import PartialState, names_digest, save_partial, partial_path
    from catseg_bench.runner import BenchmarkRunner, RunOptions
    from catseg_bench.registry import build_segmenter
    import torch

    eval_set = SPECS["cwfid"].eval_sets()[0]
    out = tmp_path / "out"
    names = open_eval_set(eval_set, small_suite).names
    bogus = np.full((4, 4), 1000, dtype=np.int64)
    save_partial(partial_path(out / "catseg-tiny", "cwfid"), PartialState("other key", names_digest(names), 1, bogus, 1.0))
    segmenter = build_segmenter("catseg-tiny", device=torch.device("cpu"), precision="fp32", mode="sliding")
    outcome = BenchmarkRunner(segmenter, RunOptions(small_suite, out, workers=0), torch.device("cpu")).run_one(eval_set)
    assert outcome.status == "done"
    confusion = read_result(out / "catseg-tiny" / "cwfid.json").confusion()
    np.testing.assert_array_equal(confusion.sum(axis=0), _gt_counts(small_suite, "cwfid"))


@pytest.mark.parametrize("damage", [lambda data: data[: len(data) // 2], lambda data: b""])
def test_damaged_progress_file_is_ignored(tmp_path, damage):
    from catseg_bench.partial import PartialState, load_partial, save_partial

    path = tmp_path / ".cwfid.partial-0of1.npz"
    save_partial(path, PartialState("key", "digest", 1, np.zeros((2, 2), np.int64), 1.0))
    assert load_partial(path, "key", "digest").done == 1
    path.write_bytes(damage(path.read_bytes()))
    assert load_partial(path, "key", "digest") is None


# A plugin whose output is wrong in the way `bad` names (test of isolation: only its set fails).
BAD_OUTPUT_PLUGIN = '''
import numpy as np
import torch


class Segmenter:
    checkpoint_sha256 = None

    def __init__(self, bad: str = "float32", *, device=None):
        self.bad = bad
        self.model_id = "bad-" + bad

    def settings(self):
        return {"bad": self.bad}

    def set_classes(self, class_names):
        self.num_classes = len(class_names)

    def prepare_image(self, image):
        return image

    def predict(self, images, original_sizes):
        maps = [torch.zeros(size, dtype=torch.int64) for size in original_sizes]
        if self.num_classes > 2:  # only the binary set (kvasir_instrument) gets a good answer
            return maps
        if self.bad == "float32":
            return [m.float() for m in maps]
        if self.bad == "shape":
            return [m[:-1] for m in maps]
        if self.bad == "range":
            return [m + 7 for m in maps]
        if self.bad == "count":
            return maps[:0]
        return [m.tolist() for m in maps]
'''


@pytest.mark.parametrize("bad, expected", [
    ("float32", "has dtype torch.float32; expected one integer class-index map"),
    ("shape", "has shape"),
    ("range", "has values in [7, 7]; expected class indices in [0, 1]"),
    ("count", "predict returned 0 predictions for 1 images"),
    ("list", "is a list; expected one integer class-index map"),
])
def test_a_plugin_s_bad_output_fails_only_its_set_in_one_line(small_suite, cli, tmp_path, monkeypatch, bad, expected):
    (tmp_path / "bad_output_plugin.py").write_text(BAD_OUTPUT_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    ran = cli("run", "--model", "bad_output_plugin:Segmenter", *RUN[3:], "--model-args", f"bad={bad}",
              "--datasets", "kvasir_instrument,cwfid", "--data-root", small_suite, "--output", out)
    assert ran.exit_code == 1
    failed = [line for line in ran.output.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed kvasir_instrument: bad-{bad} on kvasir_instrument: ")
    assert expected in failed[0]
    assert "Traceback" not in ran.output
    assert read_result(out / f"bad-{bad}" / "cwfid.json").images_scored == 2  # the next set still ran
