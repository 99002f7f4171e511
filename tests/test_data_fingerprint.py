"""Label fingerprints and histograms: `bench datasets fingerprint`, the spec's record verified by
`bench prepare` and `bench datasets check`, per-image digests naming a changed label, the sanity
warnings, and CWFID prepared from its real GitHub archive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catseg_bench.data.check import LABEL_CHANGED, LABEL_RECORD, inspect_eval_set
from catseg_bench.data.labelstats import MANIFEST_NAME, label_digest, set_fingerprint
from catseg_bench.specs import SpecError, load_specs
from catseg_bench.synth import write_suite
from spec_texts import write_user_spec
from test_prepare_support import png, start_server, zip_bytes

CWFID_COMMIT = "36290d0912a032f0bd1a5678ed55457ddafde217"
CWFID_URL = f"https://github.com/cwfid/dataset/archive/{CWFID_COMMIT}.zip"


def test_digest_is_of_the_decoded_pixels_not_the_encoding(tmp_path):
    label = np.array([[0, 1, 2], [255, 2, 1]], np.uint8)
    Image.fromarray(label).save(tmp_path / "a.png", compress_level=0)
    Image.fromarray(label.astype(np.uint16)).save(tmp_path / "b.png", compress_level=9)
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    decoded = [np.array(Image.open(tmp_path / name)) for name in ("a.png", "b.png")]
    assert decoded[0].dtype != decoded[1].dtype
    assert label_digest("k", decoded[0]) == label_digest("k", decoded[1])
    assert label_digest("k", label) != label_digest("other", label)  # the key counts: a renamed label changes it
    assert label_digest("k", label) != label_digest("k", label.reshape(3, 2))  # and the shape
    assert set_fingerprint({"a": "1", "b": "2"}) == set_fingerprint({"b": "2", "a": "1"})


def _user_data(tmp_path: Path) -> tuple[Path, Path]:
    """The `solar` user dataset (3 classes, 3 images) as plain prepared folders, and its spec folder."""
    specs = tmp_path / "specs"
    write_user_spec(specs)
    suite = tmp_path / "suite"
    write_suite(suite, [load_specs([specs])["solar"]], images_per_set=3, seed=1)
    data = tmp_path / "data"
    shutil.copytree(suite / "solar", data / "solar")  # without the synthetic-suite manifest: real-looking data
    return data, specs


def _record(specs: Path, lines: str) -> None:
    path = specs / "solar.toml"
    path.write_text(path.read_text().replace("\n[data]", "\n" + lines + "\n[data]", 1))


def test_recorded_fingerprint_is_verified_and_a_changed_pixel_names_its_label(tmp_path, cli):
    data, specs = _user_data(tmp_path)
    printed = cli("datasets", "fingerprint", "solar", "--data-root", data, "--specs", specs)
    assert printed.exit_code == 0, printed.output
    record = [line for line in printed.stdout.splitlines() if not line.startswith("#")]
    assert [line.split(" = ")[0] for line in record] == ["label_fingerprint", "class_pixel_counts", "ignore_pixel_count"]
    labels = [np.array(Image.open(p)) for p in sorted((data / "solar/labels").glob("*.png"))]
    counts = [sum(int((label == c).sum()) for label in labels) for c in range(3)]
    assert f"class_pixel_counts = [{', '.join(map(str, counts))}]" in record
    _record(specs, "\n".join(record))

    prepared = cli("prepare", "solar", "--data-root", data, "--specs", specs)  # data already there: verified, digests kept
    assert prepared.exit_code == 0 and "verified and marked done" in prepared.output, prepared.output
    assert (data / "solar/labels" / MANIFEST_NAME).is_file()
    assert cli("datasets", "check", "solar", "--data-root", data, "--specs", specs).exit_code == 0

    changed = data / "solar/labels/synth_001.png"
    label = np.array(Image.open(changed))
    label[0, 0] = 2 if label[0, 0] == 1 else 1
    Image.fromarray(label).save(changed)
    check = cli("datasets", "check", "solar", "--data-root", data, "--specs", specs, "--json")
    assert check.exit_code == 1
    findings = json.loads(check.stdout)["findings"]
    assert [(f["kind"], f["file"]) for f in findings if f["kind"] == LABEL_CHANGED] == [(LABEL_CHANGED, str(changed))]
    assert {f["kind"] for f in findings} == {LABEL_CHANGED, LABEL_RECORD}
    assert any("differs from label_fingerprint" in f["message"] for f in findings)


def test_prepare_refuses_labels_whose_counts_differ_from_the_record_and_names_the_class(tmp_path, cli):
    data, specs = _user_data(tmp_path)
    _record(specs, "class_pixel_counts = [1, 2, 3]")
    result = cli("prepare", "solar", "--data-root", data, "--specs", specs)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "class 0 'background' has" in output and "solar.toml records 1" in output
    assert not (data / "solar/.bench-prepared.json").exists()


def test_record_fields_are_validated_and_stay_out_of_the_spec_hash(tmp_path):
    specs = tmp_path / "specs"
    write_user_spec(specs)
    plain = load_specs([specs])["solar"].spec_hash
    _record(specs, f'label_fingerprint = "{"a" * 64}"\nclass_pixel_counts = [1, 2, 3]\nignore_pixel_count = 0')
    spec = load_specs([specs])["solar"]
    assert spec.spec_hash == plain
    assert spec.eval_sets()[0].recorded_labels.class_pixel_counts == (1, 2, 3)
    for bad, field in (('class_pixel_counts = [1, 2]', "class_pixel_counts"), ('label_fingerprint = "ABC"', "label_fingerprint"),
                       ("ignore_pixel_count = -1", "ignore_pixel_count")):
        write_user_spec(specs)
        _record(specs, bad)
        with pytest.raises(SpecError, match=f"field '{field}'"):
            load_specs([specs])


def test_paxray_subsets_record_their_own_fingerprints(tmp_path):
    from catseg_bench.specs import builtin_specs_dir

    text = (builtin_specs_dir() / "paxray4.toml").read_text()
    assert "[[subsets]]" in text
    specs = tmp_path / "specs"
    specs.mkdir()
    recorded = text.replace('name = "paxray4"', 'name = "paxray4x"', 1).replace(
        'name = "lungs"', f'name = "lungs"\nlabel_fingerprint = "{"b" * 64}"', 1)
    (specs / "paxray4x.toml").write_text(recorded)
    spec = load_specs([specs])["paxray4x"]
    assert [es.recorded_labels.fingerprint for es in spec.eval_sets()] == ["b" * 64, None, None, None]
    (specs / "paxray4x.toml").write_text(recorded.replace('name = "paxray4x"', f'name = "paxray4x"\nlabel_fingerprint = "{"b" * 64}"', 1))
    with pytest.raises(SpecError, match="per \\[\\[subsets\\]\\]"):
        load_specs([specs])


# ------------------------------------------------------------------------------------------ sanity warnings


def test_unconverted_0_255_masks_are_a_problem_naming_the_class_and_the_set(tmp_path, cli):
    specs = load_specs()
    write_suite(tmp_path, [specs["deepcrack"]], images_per_set=3, seed=0)
    for path in (tmp_path / specs["deepcrack"].eval_sets()[0].label_dir).glob("*.png"):
        label = np.array(Image.open(path))
        Image.fromarray(np.where(label == 1, 255, label).astype(np.uint8)).save(path)  # DeepCrack before MESS's /255
    result = cli("datasets", "check", "deepcrack", "--data-root", tmp_path)
    assert result.exit_code == 1  # never a correct label: a problem, not a warning
    output = " ".join(result.output.split())
    assert "label_pattern" in output
    assert "labels hold only class 0 ('concrete or asphalt') and ignore (255)" in output
    assert "every 'crack' pixel as ignore" in output
    assert "of all label pixels hold the ignore value 255 (more than half)" in output


def test_a_class_of_interest_absent_from_the_whole_split_is_named(tmp_path):
    specs = load_specs()
    write_suite(tmp_path, [specs["cwfid"]], images_per_set=2, seed=0)
    es = specs["cwfid"].eval_sets()[0]
    for path in (tmp_path / es.label_dir).glob("*.png"):
        label = np.array(Image.open(path))
        Image.fromarray(np.where(label == 2, 0, label).astype(np.uint8)).save(path)
    check = inspect_eval_set(es, tmp_path)
    assert check.findings == []
    assert check.warnings == ["cwfid: class 2 'weed' (of interest) never occurs in the whole split"]
    assert check.stats.class_pixel_counts[2] == 0


def test_deepcrack_recipe_keeps_the_cracks_of_a_1_bit_label(cli, tmp_path):
    """The reported case: MESS's np.uint8(mask / 255) on a mode-"1" label drops every crack pixel."""
    from catseg_bench.prepare.convert import div255

    cracks = np.array([[0, 1, 1], [0, 0, 1]], bool)
    one_bit = Image.open(__import__("io").BytesIO(png(cracks)))
    assert one_bit.mode == "1"
    assert (np.uint8(np.array(one_bit) / 255) == 0).all()  # MESS's operation loses the cracks
    assert div255(np.array(one_bit)).tolist() == cracks.astype(np.uint8).tolist()

    from test_prepare_support import make_test_spec, sha

    server = start_server(tmp_path / "mirror")
    try:
        archive = zip_bytes({"test_img/d1.jpg": png(np.zeros((2, 3, 3), np.uint8)), "test_lab/d1.png": png(cracks)})
        url = "https://github.com/yhlleo/DeepCrack/raw/8202a60701068645c883ed68b95fd3f30914d90c/dataset/DeepCrack.zip"
        server.place(url, archive)
        name = make_test_spec(tmp_path / "specs", "deepcrack", 1, {"DeepCrack.zip": sha(archive)})
        result = cli("prepare", name, "--data-root", tmp_path / "data", "--mirror", server.url, "--specs", tmp_path / "specs")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    prepared = np.array(Image.open(tmp_path / "data/DeepCrack/annotations_detectron2/test/d1.png"))
    assert prepared.tolist() == [[0, 1, 1], [0, 0, 1]]


# ------------------------------------------------------------------------------------------ the real CWFID


def _cwfid_archive(tmp_path: Path) -> bytes:
    """GitHub's archive of the pinned CWFID commit: a zip given by $CATSEG_BENCH_CWFID_ARCHIVE, or built
    like GitHub's from a git clone of cwfid/dataset ($CATSEG_BENCH_CWFID_GIT, or the local mirror)."""
    given = os.environ.get("CATSEG_BENCH_CWFID_ARCHIVE")
    if given:
        return Path(given).read_bytes()
    candidates = [os.environ.get("CATSEG_BENCH_CWFID_GIT"), "/work/.mirror/cwfid+dataset/repo"]
    for git_dir in filter(None, candidates):
        if Path(git_dir).is_dir() and shutil.which("git"):
            out = tmp_path / "cwfid.zip"
            done = subprocess.run(
                ["git", "--git-dir", str(Path(git_dir) / ".git") if (Path(git_dir) / ".git").exists() else str(git_dir),
                 "archive", "--format=zip", f"--prefix=dataset-{CWFID_COMMIT}/", CWFID_COMMIT, "-o", str(out)],
                capture_output=True, check=False,
            )
            if done.returncode == 0:
                return out.read_bytes()
    pytest.skip("the real CWFID archive is not available: set CATSEG_BENCH_CWFID_ARCHIVE=<zip of github.com/cwfid/dataset "
                f"at {CWFID_COMMIT}> or CATSEG_BENCH_CWFID_GIT=<a clone of it>")


def test_cwfid_from_its_real_archive_matches_the_recorded_fingerprint(tmp_path, cli):
    archive = _cwfid_archive(tmp_path)
    server = start_server(tmp_path / "mirror")
    try:
        server.place(CWFID_URL, archive)
        result = cli("prepare", "cwfid", "--data-root", tmp_path / "data", "--mirror", server.url, "--jobs", "2")
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    es = load_specs()["cwfid"].eval_sets()[0]
    check = inspect_eval_set(es, tmp_path / "data", decode_images=False)
    assert check.findings == []
    assert check.stats.class_pixel_counts == [24_344_908, 1_504_780, 440_968] and check.stats.ignore_pixel_count == 0
    assert check.stats.fingerprint == es.recorded_labels.fingerprint

    changed = tmp_path / "data" / es.label_dir / "010_annotation.png"
    label = np.array(Image.open(changed))
    label[100, 100] = 1 if label[100, 100] != 1 else 2
    Image.fromarray(label).save(changed)
    findings = inspect_eval_set(es, tmp_path / "data", decode_images=False).findings
    assert [f.file for f in findings if f.kind == LABEL_CHANGED] == [str(changed)]
    assert any(f.kind == LABEL_RECORD and "cwfid.toml records 24344908" in f.message for f in findings)


def test_a_run_s_confusion_matrix_gives_the_same_warnings():
    from catseg_bench.data.labelstats import binary_ignore_pattern, confusion_warnings

    deepcrack = load_specs()["deepcrack"].eval_sets()[0]
    # [pred, gt]: the labels hold 10 + 5 pixels of class 0, none of 'crack', 40 ignore (column 2)
    confusion = np.array([[10, 0, 30], [5, 0, 10], [0, 0, 0]])
    warnings = confusion_warnings(deepcrack, confusion)
    assert len(warnings) == 1 and "72.7% of all label pixels hold the ignore value 255" in warnings[0]
    assert binary_ignore_pattern(deepcrack, [15, 0], 40).startswith("deepcrack: labels hold only class 0")
    assert binary_ignore_pattern(deepcrack, [15, 0], 0) is None  # no ignore: 'crack' is merely absent
    assert binary_ignore_pattern(deepcrack, [15, 1], 40) is None
