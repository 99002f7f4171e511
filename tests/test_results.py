"""Result files: schema, atomic writes, reading back, staleness."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix
from catseg_bench.results import Timing, load_results, read_result, write_result
from catseg_bench.specs import load_specs
from model.common import files


@pytest.fixture(scope="module")
def specs():
    return load_specs()


def kvasir_confusion() -> ConfusionMatrix:
    conf = ConfusionMatrix(2, 255)
    pred = np.array([[0, 0, 1, 1], [0, 1, 1, 0]])
    gt = np.array([[0, 0, 1, 255], [0, 1, 0, 0]])
    conf.update(pred, gt, image="a.png")
    return conf


def write_kvasir(out_dir, specs, **overrides):
    kwargs = dict(
        eval_set=specs["kvasir_instrument"].eval_sets()[0],
        model_id="catseg-b",
        checkpoint_sha256="ab" * 32,
        settings={"inference": "patch", "resolution": 640},
        confusion=kvasir_confusion(),
        images_scored=2,
        timing=Timing(seconds=4.0, peak_memory_bytes=123),
    )
    kwargs.update(overrides)
    return write_result(out_dir, **kwargs)


def test_write_then_read_round_trip(tmp_path, specs):
    path = write_kvasir(tmp_path / "catseg-b", specs)
    assert path == tmp_path / "catseg-b" / "kvasir_instrument.json"
    assert sorted(p.name for p in path.parent.iterdir()) == ["kvasir_instrument.confusion.npy", "kvasir_instrument.json"]

    document = json.loads(path.read_text())
    assert document["schema"] == "catseg-bench/result" and document["schema_version"] == 1
    assert document["model"] == {"id": "catseg-b", "checkpoint_sha256": "ab" * 32, "untrained": False}
    assert set(document["versions"]) == {"python", "torch", "numpy", "catseg_bench", "git_commit"}
    assert document["timing"] == {"seconds": 4.0, "images_per_second": 0.5, "peak_memory_bytes": 123, "device": None}
    assert document["images_total"] == specs["kvasir_instrument"].num_images

    result = read_result(path)
    # others: tp 4, gt 5, pred 4 -> 4/5; tool: tp 2, gt 2, pred 3 (the ignore pixel excluded) -> 2/3
    assert result.per_class_iou == pytest.approx({"others": 80.0, "tool": 200 / 3})
    assert result.metric("mIoU") == pytest.approx((80 + 200 / 3) / 2)
    assert result.metric("CoI-mIoU") == pytest.approx(200 / 3)
    assert result.metric("Specificity") == pytest.approx(80.0)
    assert result.metric("Sensitivity") == pytest.approx(100.0)
    assert result.spec_hash == specs["kvasir_instrument"].spec_hash
    assert result.dataset == "kvasir_instrument" and result.subset is None and not result.partial
    np.testing.assert_array_equal(result.confusion(), kvasir_confusion().numpy())
    with pytest.raises(BenchError, match="no metric 'bIoU'"):
        result.metric("bIoU")


def test_undefined_values_are_null_and_subsets_named(tmp_path, specs):
    lungs = specs["paxray4"].eval_sets()[0]
    conf = np.zeros((3, 3), dtype=np.int64)
    conf[0, 0] = 10  # 'lung' neither in GT nor predicted
    path = write_result(
        tmp_path, eval_set=lungs, model_id="m", checkpoint_sha256=None, settings={},
        confusion=conf, images_scored=1,
    )
    assert path.name == "paxray4.lungs.json"
    text = path.read_text()
    assert "NaN" not in text
    document = json.loads(text)
    assert document["subset"] == "lungs" and document["dataset"] == "paxray4"
    assert document["per_class_iou"] == {"others": 100.0, "lung": None}
    assert document["metrics"]["CoI-mIoU"] is None
    assert document["timing"] == {"seconds": None, "images_per_second": None, "peak_memory_bytes": None, "device": None}


def test_a_failed_write_keeps_the_finished_result(tmp_path, specs, monkeypatch):
    path = write_kvasir(tmp_path, specs)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_kvasir(tmp_path, specs, model_id="other")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kvasir_instrument.confusion.npy", "kvasir_instrument.json"]


def test_stale_reasons(tmp_path, specs):
    result = read_result(write_kvasir(tmp_path, specs))
    same = dict(
        spec_hash=result.spec_hash, model_id="catseg-b", checkpoint_sha256="ab" * 32,
        settings={"resolution": 640, "inference": "patch"},  # key order does not matter
    )
    assert result.stale_reasons(**same) == []
    changed = {**same, "spec_hash": "0" * 16, "checkpoint_sha256": "cd" * 32, "settings": {"resolution": 384}}
    reasons = result.stale_reasons(**changed)
    assert [r.split(" (")[0] for r in reasons] == ["dataset spec changed", "checkpoint differs", "inference settings differ"]
    partial = read_result(write_kvasir(tmp_path / "p", specs, partial=True))
    assert partial.stale_reasons(**same) == ["partial (2 of 118 images)"]


def test_confusion_checked_against_recorded_hash(tmp_path, specs):
    result = read_result(write_kvasir(tmp_path, specs))
    np.save(tmp_path / "kvasir_instrument.confusion.npy", np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(BenchError, match="does not match the sha256"):
        result.confusion()
    os.remove(tmp_path / "kvasir_instrument.confusion.npy")
    with pytest.raises(BenchError, match="confusion matrix of kvasir_instrument.json is missing"):
        result.confusion()


def test_a_tampered_confusion_matrix_makes_the_result_unreadable(tmp_path, specs):
    """What `bench run` relies on to redo (not trust) a result whose matrix was edited."""
    path = write_kvasir(tmp_path, specs)
    np.save(tmp_path / "kvasir_instrument.confusion.npy", np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(BenchError, match="kvasir_instrument.confusion.npy: does not match the sha256 recorded"):
        read_result(path)
    skipped = []
    assert load_results([tmp_path], on_skip=lambda p, reason: skipped.append(p)) == []
    assert skipped == [path]


def test_load_results_walks_folders_and_skips_foreign_json(tmp_path, specs):
    write_kvasir(tmp_path / "catseg-b", specs)
    write_kvasir(tmp_path / "catseg-l", specs, model_id="catseg-l")
    (tmp_path / "catseg-b" / "notes.json").write_text('{"hello": 1}')
    found = load_results([tmp_path, tmp_path / "catseg-b"])  # overlapping folders: each file once
    assert [(r.model_id, r.eval_set) for r in found] == [("catseg-b", "kvasir_instrument"), ("catseg-l", "kvasir_instrument")]


def test_load_results_errors_name_the_file(tmp_path, specs):
    with pytest.raises(BenchError, match="results folder does not exist"):
        load_results([tmp_path / "nope"])
    path = write_kvasir(tmp_path, specs)
    (tmp_path / "copy.json").write_text(path.read_text())
    with pytest.raises(BenchError, match=r"scores kvasir_instrument for catseg-b again \(also .*copy.json\)"):
        load_results([tmp_path])
    (tmp_path / "copy.json").write_text("{truncated")
    with pytest.raises(BenchError, match="copy.json: not valid JSON"):
        load_results([tmp_path])
    document = json.loads(path.read_text())
    document["schema_version"] = 99
    (tmp_path / "copy.json").write_text(json.dumps(document))
    with pytest.raises(BenchError, match="copy.json: result schema_version 99"):
        load_results([tmp_path])
    del document["metrics"]
    document["schema_version"] = 1
    (tmp_path / "copy.json").write_text(json.dumps(document))
    with pytest.raises(BenchError, match="copy.json: result file lacks field 'metrics'"):
        load_results([tmp_path])
