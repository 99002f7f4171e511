"""No number without its data (issue 19): complete sets or a partial mark, provenance in every result
(data root, synthetic flag, label fingerprint), label warnings that last, and sweeps that keep every
configuration. Runs use `random` (analytic, fast) or a small brightness-threshold plugin."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catseg_bench import api
from catseg_bench.report.build import build_report
from catseg_bench.results import read_result, write_result
from catseg_bench.specs import load_benchmark, load_specs
from catseg_bench.synth import SYNTH_MANIFEST, write_suite
from spec_texts import write_user_spec

SPECS = load_specs()
RANDOM = ("run", "--model", "random", "--workers", "0")
RANDOM_SETTINGS = {"predictions": "uniform over the classes (expected confusion matrix)", "limit": None}

PLUGIN = textwrap.dedent('''
    import numpy as np
    import torch


    class Segmenter:
        """Class 1 where an image is brighter than `threshold` (0-1), else class 0."""

        checkpoint_sha256 = None
        model_id = "bright"

        def __init__(self, threshold: float = 0.5, *, device=None):
            self.threshold = threshold

        def settings(self):
            return {"threshold": self.threshold}

        def set_classes(self, class_names):
            pass

        def prepare_image(self, image):
            return image

        def predict(self, images, original_sizes):
            return [torch.from_numpy((image.mean(axis=2) > self.threshold * 255).astype(np.int64)) for image in images]
''')


def _csv(result) -> tuple[list[str], dict[str, list[str]]]:
    lines = result.stdout.splitlines()
    return lines[0].split(","), {line.split(",")[0]: line.split(",") for line in lines[1:]}


def _fingerprint(cli, name: str, root: Path, *extra) -> str:
    printed = cli("datasets", "fingerprint", name, "--data-root", root, "--json", *extra)
    assert printed.exit_code == 0, printed.output
    return json.loads(printed.stdout)[name]["label_fingerprint"]


# ------------------------------------------------------------------------------------ complete sets


def test_a_short_set_fails_naming_the_count_and_allow_incomplete_scores_it_as_partial(cli, tmp_path):
    root = tmp_path / "data"
    write_suite(root, [SPECS["kvasir_instrument"], SPECS["cwfid"]], images_per_set=3, seed=1)
    kvasir = SPECS["kvasir_instrument"].eval_sets()[0]
    (root / kvasir.image_dir / f"synth_001{kvasir.image_ext}").unlink()
    (root / kvasir.label_dir / f"synth_001{kvasir.label_ext}").unlink()
    out = tmp_path / "out"

    failed = cli(*RANDOM, "--datasets", "kvasir_instrument,cwfid", "--data-root", root, "--output", out,
                 "--published", "none")
    assert failed.exit_code == 1
    output = " ".join(failed.output.split())
    assert "kvasir_instrument: 1 of 3 images are missing" in output and "--allow-incomplete" in output
    assert "bench prepare kvasir_instrument" in output
    assert not (out / "random" / "kvasir_instrument.json").exists() and (out / "random" / "cwfid.json").exists()

    # Every other MESS set has a (made-up) full result in the same folder, so the Mean exists only
    # when the short set is counted.
    benchmark = load_benchmark()
    for name in benchmark.members:
        for eval_set in SPECS[name].eval_sets():
            if eval_set.name not in ("kvasir_instrument", "cwfid"):
                k = eval_set.num_classes
                write_result(out / "random", eval_set=eval_set, model_id="random", checkpoint_sha256=None,
                             settings=RANDOM_SETTINGS, confusion=np.eye(k + 1, dtype=np.int64) * 5, images_scored=3)
    allowed = cli(*RANDOM, "--datasets", "kvasir_instrument", "--data-root", root, "--output", out,
                  "--published", "none", "--allow-incomplete")
    assert allowed.exit_code == 0, allowed.output
    result = read_result(out / "random" / "kvasir_instrument.json")
    assert result.partial and (result.images_scored, result.images_total) == (2, 3)

    header, rows = _csv(cli("table", out, "--published", "none", "--format", "csv"))
    assert rows["random (partly synthetic data)"][header.index("KvasirInst.")] == ""
    assert rows["random (partly synthetic data)"][header.index("Mean")] == ""
    table = cli("table", out, "--published", "none", "--format", "markdown")
    assert "kvasir_instrument: partial (2 of 3 images), not counted" in table.stdout
    counted = api.make_table([out], published="none", fmt="table", include_partial=True)
    assert counted.rows[0].values["Mean"] is not None


def test_api_evaluate_takes_allow_incomplete(tmp_path):
    root = tmp_path / "data"
    write_suite(root, [SPECS["cwfid"]], images_per_set=2, seed=1)
    cwfid = SPECS["cwfid"].eval_sets()[0]
    (root / cwfid.label_dir / f"synth_000{cwfid.label_ext}").unlink()  # its image stays: cwfid skips unlabelled images
    report = api.evaluate("random", "cwfid", root, tmp_path / "out", workers=0)
    assert not report.ok and "1 of 2 images are missing" in report.failed[0].message
    report = api.evaluate("random", "cwfid", root, tmp_path / "out", workers=0, allow_incomplete=True)
    assert report.ok and read_result(report.result_dir / "cwfid.json").partial


# ------------------------------------------------------------------------------------------ provenance


def test_a_run_on_a_synthetic_suite_is_marked_and_never_compared_with_published_rows(cli, tmp_path):
    root = tmp_path / "synth"
    assert cli("datasets", "synth", "cwfid", "--out", root, "--images", "2").exit_code == 0
    out = tmp_path / "out"
    ran = cli(*RANDOM, "--datasets", "cwfid", "--data-root", root, "--output", out, "--published", "seed")
    assert ran.exit_code == 0, ran.output
    document = json.loads((out / "random" / "cwfid.json").read_text())
    assert document["data"] == {"root": str(root), "root_absolute": str(root.resolve()), "synthetic": True,
                                "label_fingerprint": _fingerprint(cli, "cwfid", root)}

    table = cli("table", out, "--published", "seed", "--format", "markdown")
    assert table.exit_code == 0, table.output
    assert "| random (synthetic data) |" in table.stdout and "Δ vs" not in table.stdout
    assert "computed on a synthetic suite" in table.stdout
    html = build_report([out], resamples=20)
    assert "random (synthetic data)" in html and "Δ vs" not in html
    assert "synthetic data: not a MESS number" in html and str(root) in html


def _real_layout_copy(cli, tmp_path) -> tuple[Path, Path]:
    """A user dataset in a real (not synthetic) data root, and a spec folder recording its labels' fingerprint."""
    specs = tmp_path / "specs"
    write_user_spec(specs, **{"num_images = 3": "num_images = 2"})
    synth = tmp_path / "synth"
    write_suite(synth, [load_specs([specs])["solar"]], images_per_set=2, seed=2)
    root = tmp_path / "real"
    shutil.copytree(synth, root)
    (root / SYNTH_MANIFEST).unlink()
    fingerprint = _fingerprint(cli, "solar", root, "--specs", specs)
    spec_text = (specs / "solar.toml").read_text()
    (specs / "solar.toml").write_text(spec_text.replace("[data]", f'label_fingerprint = "{fingerprint}"\n\n[data]'))
    return root, specs


def test_real_labels_matching_the_spec_are_not_marked_and_changed_labels_are(cli, tmp_path):
    root, specs = _real_layout_copy(cli, tmp_path)
    out = tmp_path / "out"
    ran = cli(*RANDOM, "--datasets", "solar", "--data-root", root, "--output", out, "--specs", specs,
              "--published", "none")
    assert ran.exit_code == 0, ran.output
    assert read_result(out / "random" / "solar.json").data.synthetic is False
    table = cli("table", out, "--published", "seed", "--format", "markdown", "--specs", specs)
    assert "| random |" in table.stdout and "| *Δ vs Random (LB)* |" in table.stdout
    assert api.load_results([out], [specs])["labels_vs_spec"].unique().tolist() == ["matches"]

    label = next((root / "solar" / "labels").glob("*.png"))
    values = np.array(Image.open(label))
    values[0, 0] = 2 if values[0, 0] != 2 else 1
    Image.fromarray(values).save(label)
    other = tmp_path / "other"
    assert cli(*RANDOM, "--datasets", "solar", "--data-root", root, "--output", other, "--specs", specs,
               "--published", "none").exit_code == 0
    table = cli("table", other, "--published", "seed", "--format", "markdown", "--specs", specs)
    assert "| random (labels differ from spec) |" in table.stdout and "Δ vs" not in table.stdout
    assert "labels differ from the spec's label_fingerprint for solar" in table.stdout


def test_old_result_files_load_with_unknown_provenance(tmp_path):
    eval_set = SPECS["cwfid"].eval_sets()[0]
    path = write_result(tmp_path / "m", eval_set=eval_set, model_id="m", checkpoint_sha256=None, settings={},
                        confusion=np.eye(eval_set.num_classes + 1, dtype=np.int64), images_scored=1)
    document = json.loads(path.read_text())
    del document["label_warnings"]
    assert "data" not in document
    path.write_text(json.dumps(document))
    result = read_result(path)
    assert result.data is None and not result.synthetic and result.label_warnings == ()
    frame = api.load_results([tmp_path])
    assert frame["labels_vs_spec"].unique().tolist() == ["unknown"] and frame["synthetic"].isna().all()
    html = build_report([tmp_path], resamples=20, published="none")
    assert "unknown provenance" in html and "synthetic data: not" not in html
    assert "(synthetic data)" not in api.make_table([tmp_path], published="none")


# ---------------------------------------------------------------------------------------- label warnings


def _zero_255(root: Path) -> None:
    for path in (root / SPECS["deepcrack"].eval_sets()[0].label_dir).glob("*.png"):
        label = np.array(Image.open(path))
        Image.fromarray(np.where(label == 1, 255, label).astype(np.uint8)).save(path)  # DeepCrack before MESS's /255


def test_0_255_binary_labels_fail_check_and_their_set_in_a_run(cli, tmp_path):
    root = tmp_path / "data"
    write_suite(root, [SPECS["deepcrack"], SPECS["cwfid"]], images_per_set=2, seed=0)
    _zero_255(root)
    checked = cli("datasets", "check", "deepcrack", "cwfid", "--data-root", root)
    assert checked.exit_code == 1
    output = " ".join(checked.output.split())
    assert "label_pattern" in output and "1 problem(s) in 1 of 2 evaluation set(s)" in output
    assert "labels hold only class 0 ('concrete or asphalt') and ignore (255)" in output

    ran = cli(*RANDOM, "--datasets", "deepcrack,cwfid", "--data-root", root, "--output", tmp_path / "out",
              "--published", "none")
    assert ran.exit_code == 1
    failure = next(line for line in ran.output.splitlines() if line.startswith("failed deepcrack"))
    assert "0/255 masks" in failure and "bench prepare deepcrack" in failure
    assert (tmp_path / "out" / "random" / "cwfid.json").exists()
    assert not (tmp_path / "out" / "random" / "deepcrack.json").exists()


def test_a_class_never_occurring_is_stored_and_shown_beside_the_number(cli, tmp_path):
    root = tmp_path / "data"
    write_suite(root, [SPECS["cwfid"]], images_per_set=2, seed=0)
    es = SPECS["cwfid"].eval_sets()[0]
    for path in (root / es.label_dir).glob("*.png"):
        label = np.array(Image.open(path))
        Image.fromarray(np.where(label == 2, 0, label).astype(np.uint8)).save(path)
    out = tmp_path / "out"
    ran = cli(*RANDOM, "--datasets", "cwfid", "--data-root", root, "--output", out, "--published", "none")
    assert ran.exit_code == 0, ran.output
    warning = "cwfid: class 2 'weed' (of interest) never occurs in the whole split"
    assert read_result(out / "random" / "cwfid.json").label_warnings == (warning,)

    table = cli("table", out, "--published", "none", "--format", "markdown")
    header = next(line for line in table.stdout.splitlines() if line.startswith("| Model"))
    row = next(line for line in table.stdout.splitlines() if line.startswith("| random"))
    cell = row.split("|")[header.split("|").index(" CWFID ")].strip()
    assert cell.endswith("†") and float(cell[:-1]) == pytest.approx(read_result(out / "random" / "cwfid.json").metrics["mIoU"], abs=0.005)
    assert f"- † random (synthetic data): {warning}" in table.stdout
    html = build_report([out], resamples=20, published="none")
    assert '<span class="mark">†</span>' in html and warning.replace("'", "&#x27;") in html


def test_a_sets_many_label_warnings_are_one_table_note(cli, tmp_path):
    root = tmp_path / "data"
    write_suite(root, [SPECS["cwfid"]], images_per_set=2, seed=0)
    es = SPECS["cwfid"].eval_sets()[0]
    for path in (root / es.label_dir).glob("*.png"):
        Image.fromarray(np.zeros_like(np.array(Image.open(path)))).save(path)  # only class 0 left
    out = tmp_path / "out"
    ran = cli(*RANDOM, "--datasets", "cwfid", "--data-root", root, "--output", out, "--published", "none")
    assert ran.exit_code == 0, ran.output
    stored = read_result(out / "random" / "cwfid.json").label_warnings
    assert len(stored) == 2  # 'crop' and 'weed' never occur
    assert [line for line in ran.output.splitlines() if line.startswith("warning: cwfid")] == [
        f"warning: {stored[0]} (and 1 more label warnings for this set; --verbose lists them)"]

    table = cli("table", out, "--published", "none", "--format", "markdown")
    notes = [line for line in table.stdout.splitlines() if line.startswith("- †")]
    assert notes == [f"- † random (synthetic data): {stored[0]} (and 1 more label warnings for this set; "
                     "the result's label_warnings list them)"]


# ---------------------------------------------------------------------------------------------- sweeps


def test_two_settings_of_one_plugin_in_one_output_keep_two_rows(cli, tmp_path, monkeypatch):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sweep_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    root = tmp_path / "data"
    write_suite(root, [SPECS["cwfid"]], images_per_set=2, seed=0)
    out = tmp_path / "out"

    def run(threshold: str):
        ran = cli("run", "--model", "sweep_plugin:Segmenter", "--model-args", f"threshold={threshold}",
                  "--datasets", "cwfid", "--data-root", root, "--output", out, "--workers", "0", "--published", "none")
        assert ran.exit_code == 0, ran.output
        return ran

    run("0.3")
    run("0.6")
    again = run("0.3")  # the same settings again: its own result is current
    assert "skipped" in again.output and "redone" not in again.output
    folders = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert folders[0] == "bright" and folders[1].startswith("bright@") and len(folders) == 2
    thresholds = {read_result(out / name / "cwfid.json").settings["threshold"] for name in folders}
    assert thresholds == {0.3, 0.6} and not list(out.rglob("*.stale-*"))

    header, rows = _csv(cli("table", out, "--published", "none", "--format", "csv"))
    assert set(rows) == {"bright [threshold=0.3] (synthetic data)", "bright [threshold=0.6] (synthetic data)"}
    frame = api.load_results([out])
    assert frame["run_label"].nunique() == 2 and frame["settings_digest"].nunique() == 2
    pivot = frame[frame.metric == "mIoU"].pivot_table(index="run_label", columns="eval_set", values="value")
    assert len(pivot) == 2
    for label, folder in ((f"bright [threshold={t}]", name) for t, name in ((0.3, "bright"), (0.6, folders[1]))):
        assert pivot.loc[label, "cwfid"] == read_result(out / folder / "cwfid.json").metrics["mIoU"]
