"""Hugging Face `datasets` copies: export, read back transparently with identical arrays, detect staleness."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from catseg_bench.data import EXPORT_MARKER, ExportedEvalSet, FolderEvalSet, check_eval_set, export_eval_set, open_eval_set
from catseg_bench.data.check import BAD_EXPORT, LABEL_VALUES
from catseg_bench.errors import BenchError
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite

from spec_texts import many_classes_spec

SPECS = load_specs()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A synthetic root and an export root holding copies of four quite different evaluation sets."""
    base = tmp_path_factory.mktemp("hf")
    many = many_classes_spec(base, image_ext=".jpg", label_ext=".tif")
    data_root, export_root = base / "data", base / "exports"
    write_suite(data_root, [SPECS["dark_zurich"], SPECS["paxray4"], SPECS["cwfid"], many], images_per_set=2, seed=5)
    eval_sets = [SPECS["dark_zurich"].eval_sets()[0], SPECS["paxray4"].eval_sets()[2], SPECS["cwfid"].eval_sets()[0], many.eval_sets()[0]]
    for es in eval_sets:
        assert export_eval_set(es, data_root, export_root) == export_root / es.name
    return data_root, export_root, eval_sets


def test_round_trip_gives_identical_items(exported):
    data_root, export_root, eval_sets = exported
    for es in eval_sets:
        folder = open_eval_set(es, data_root)
        copy = open_eval_set(es, export_root)
        assert isinstance(folder, FolderEvalSet) and isinstance(copy, ExportedEvalSet)
        assert copy.names == folder.names and len(copy) == 2
        for index in range(len(folder)):
            original, restored = folder[index], copy[index]
            assert restored["name"] == original["name"]
            assert restored["image"].dtype == np.uint8 and restored["label"].dtype == np.int64
            np.testing.assert_array_equal(restored["image"], original["image"])
            np.testing.assert_array_equal(restored["label"], original["label"])
            # Images keep the original file's bytes (no re-encoding of JPEGs).
            assert copy.image_source(index) == folder.image_path(index).read_bytes()
            assert copy.image_path(index) is None and copy.label_path(index) is None


def test_labels_are_png_bytes_even_from_tiff(exported):
    data_root, export_root, eval_sets = exported
    many = eval_sets[3]
    copy = open_eval_set(many, export_root)
    assert copy.label_source(0).startswith(b"\x89PNG")
    assert copy.read_label(0).max() > 255
    dark = open_eval_set(eval_sets[0], export_root)
    assert dark.label_source(1) == open_eval_set(eval_sets[0], data_root).label_path(1).read_bytes()


def test_export_records_its_spec_hash_and_is_a_plain_datasets_folder(exported):
    _, export_root, eval_sets = exported
    es = eval_sets[1]
    folder = export_root / "paxray4.bones"
    marker = json.loads((folder / EXPORT_MARKER).read_text())
    assert marker["eval_set"] == "paxray4.bones" and marker["dataset"] == "paxray4" and marker["subset"] == "bones"
    assert marker["spec_hash"] == es.spec_hash
    assert marker["class_names"] == ["others", "bones"] and marker["num_images"] == 2
    import datasets

    table = datasets.load_from_disk(str(folder))
    assert table.column_names == ["name", "image", "label"] and table.num_rows == 2
    assert isinstance(table[0]["image"], Image.Image) and table[0]["label"].mode == "L"


def test_exported_set_pickles_for_workers(exported):
    _, export_root, eval_sets = exported
    copy = open_eval_set(eval_sets[2], export_root)
    clone = pickle.loads(pickle.dumps(copy))
    np.testing.assert_array_equal(clone[1]["label"], copy[1]["label"])


def test_check_reads_exports(exported):
    _, export_root, eval_sets = exported
    for es in eval_sets:
        assert check_eval_set(es, export_root) == []


def test_stale_export_is_refused(tmp_path):
    write_suite(tmp_path / "data", [SPECS["suim"]], images_per_set=1, seed=0)
    es = SPECS["suim"].eval_sets()[0]
    target = export_eval_set(es, tmp_path / "data", tmp_path / "exports")
    marker = target / EXPORT_MARKER
    content = json.loads(marker.read_text())
    content["spec_hash"] = "0000000000000000"
    marker.write_text(json.dumps(content))
    with pytest.raises(BenchError, match=r"catseg_bench_export.json: exported with spec hash 0000000000000000.*re-export"):
        open_eval_set(es, tmp_path / "exports")
    findings = check_eval_set(es, tmp_path / "exports")
    assert [(f.kind, f.file) for f in findings] == [(BAD_EXPORT, str(target))]


def test_reexport_replaces_and_check_names_rows_of_an_export(tmp_path):
    es = SPECS["cwfid"].eval_sets()[0]
    write_suite(tmp_path / "data", [SPECS["cwfid"]], images_per_set=2, seed=0)
    export_eval_set(es, tmp_path / "data", tmp_path / "exports")
    label_path = open_eval_set(es, tmp_path / "data").label_path(1)
    with Image.open(label_path) as image:
        label = np.array(image)
    label[0, 0] = 7
    Image.fromarray(label).save(label_path)
    export_eval_set(es, tmp_path / "data", tmp_path / "exports")
    assert open_eval_set(es, tmp_path / "exports").read_label(1)[0, 0] == 7
    findings = check_eval_set(es, tmp_path / "exports")
    assert [(f.kind, f.file) for f in findings] == [(LABEL_VALUES, f"{tmp_path / 'exports' / 'cwfid'}[synth_001] label")]
    assert not [p for p in (tmp_path / "exports").iterdir() if p.name != "cwfid"]  # no temporary leftovers


def test_export_never_overwrites_other_data(tmp_path):
    write_suite(tmp_path / "data", [SPECS["suim"]], images_per_set=1, seed=0)
    (tmp_path / "exports" / "suim").mkdir(parents=True)
    (tmp_path / "exports" / "suim" / "keep.txt").write_text("mine")
    with pytest.raises(BenchError, match=r"exports/suim: exists and is not a catseg-bench export"):
        export_eval_set(SPECS["suim"].eval_sets()[0], tmp_path / "data", tmp_path / "exports")
    assert (tmp_path / "exports" / "suim" / "keep.txt").read_text() == "mine"
