"""The synthetic suite: every spec's exact layout, deterministic, and clean under `check_eval_set`."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from catseg_bench.data import check_eval_set, open_eval_set
from catseg_bench.errors import BenchError
from catseg_bench.specs import load_specs, parse_dataset_spec
from catseg_bench.synth import SYNTH_MANIFEST, synthetic_count, write_suite

from spec_texts import many_classes_spec

SPECS = load_specs()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    written = write_suite(root, SPECS, images_per_set=3, seed=7)
    return root, written


def _digest(root) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_every_eval_set_is_written_and_passes_check(suite):
    root, written = suite
    eval_sets = [es for spec in SPECS.values() for es in spec.eval_sets()]
    assert written == {es.name: 3 for es in eval_sets}
    for es in eval_sets:
        assert check_eval_set(es, root) == [], es.name
        assert synthetic_count(root, es.name) == 3


def test_files_follow_each_spec_layout(suite):
    root, _ = suite
    dark = SPECS["dark_zurich"]
    assert (root / dark.data.image_dir / "synth_000_rgb_anon.png").is_file()
    assert (root / dark.data.label_dir / "synth_000_gt_labelIds.png").is_file()
    assert (root / SPECS["zerowaste_f"].data.image_dir / "synth_002.PNG").is_file()
    with Image.open(root / SPECS["bdd100k"].data.image_dir / "synth_000.jpg") as image:
        assert image.format == "JPEG"
    for es in SPECS["paxray4"].eval_sets():
        assert sorted(p.name for p in (root / es.label_dir).iterdir()) == ["synth_000.png", "synth_001.png", "synth_002.png"]


def test_cwfid_like_spec_gets_an_unlabelled_image_that_is_skipped(suite):
    root, _ = suite
    cwfid = SPECS["cwfid"]
    images = sorted(p.name for p in (root / cwfid.data.image_dir).iterdir())
    assert images == ["synth_000_image.png", "synth_001_image.png", "synth_002_image.png", "synth_003_image.png"]
    assert open_eval_set(cwfid.eval_sets()[0], root).names == ["synth_000", "synth_001", "synth_002"]


def test_labels_hold_coherent_blobs_of_several_classes_and_ignore_pixels(suite):
    root, _ = suite
    sizes = set()
    for name in ("bdd100k", "cub_200", "suim", "chase_db1"):
        es = SPECS[name].eval_sets()[0]
        dataset = open_eval_set(es, root)
        for index in range(len(dataset)):
            item = dataset[index]
            label = item["label"]
            sizes.add(label.shape)
            assert item["image"].shape[:2] == label.shape
            assert 48 <= label.shape[0] <= 96 and 48 <= label.shape[1] <= 96
            classes = set(np.unique(label).tolist()) - {es.ignore_index}
            assert len(classes) >= 2 and classes <= set(range(es.num_classes))
            assert (label == es.ignore_index).any()
            # Spatially coherent: most horizontal neighbours share a class (random noise would not).
            assert (label[:, 1:] == label[:, :-1]).mean() > 0.8
    assert len(sizes) > 3 and any(h != w for h, w in sizes)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    chosen = [SPECS["cwfid"], SPECS["paxray4"], SPECS["bdd100k"]]
    write_suite(tmp_path / "a", chosen, images_per_set=2, seed=3)
    write_suite(tmp_path / "b", chosen, images_per_set=2, seed=3)
    write_suite(tmp_path / "c", chosen, images_per_set=2, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    a, c = _digest(tmp_path / "a"), _digest(tmp_path / "c")
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a if k != SYNTH_MANIFEST)


def test_one_spec_stream_does_not_depend_on_the_others(tmp_path):
    write_suite(tmp_path / "one", [SPECS["suim"]], images_per_set=2, seed=1)
    write_suite(tmp_path / "two", [SPECS["cwfid"], SPECS["suim"]], images_per_set=2, seed=1)
    one = _digest(tmp_path / "one")
    two = _digest(tmp_path / "two")
    assert all(two[k] == v for k, v in one.items() if k != SYNTH_MANIFEST)


def test_sixteen_bit_labels_for_more_than_255_classes(tmp_path):
    spec = many_classes_spec(tmp_path, num_images=900)
    written = write_suite(tmp_path / "root", [spec], images_per_set=6, seed=0)
    assert written == {"many": 6}
    with Image.open(tmp_path / "root/many/ann/synth_000.png") as image:
        assert image.mode.startswith("I;16")
    labels = open_eval_set(spec.eval_sets()[0], tmp_path / "root")
    values = np.concatenate([labels.read_label(i).ravel() for i in range(len(labels))])
    assert values.max() == 65535 and values[values != 65535].max() > 255
    assert check_eval_set(spec.eval_sets()[0], tmp_path / "root") == []


def test_rewriting_replaces_own_files_only(tmp_path):
    write_suite(tmp_path, [SPECS["suim"], SPECS["cwfid"]], images_per_set=4, seed=0)
    write_suite(tmp_path, [SPECS["suim"]], images_per_set=2, seed=0)
    manifest = json.loads((tmp_path / SYNTH_MANIFEST).read_text())
    assert {k: v["num_images"] for k, v in manifest["eval_sets"].items()} == {"suim": 2, "cwfid": 4}
    assert len(list((tmp_path / SPECS["suim"].data.image_dir).iterdir())) == 2
    assert check_eval_set(SPECS["suim"].eval_sets()[0], tmp_path) == []
    assert check_eval_set(SPECS["cwfid"].eval_sets()[0], tmp_path) == []


def test_refuses_a_folder_holding_other_data(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(BenchError, match=r"not empty and not a synthetic suite"):
        write_suite(tmp_path, [SPECS["suim"]])
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_a_run_failing_part_way_keeps_what_it_wrote_and_can_be_rerun(tmp_path):
    raw = {
        "name": "odd", "display_name": "Odd", "domain": "Testing", "split": "test", "num_images": 1,
        "class_names": ["a", "b"], "ignore_index": 255, "license": "CC0", "link": "https://example.org",
        "data": {"image_dir": "odd/img", "label_dir": "odd/ann", "image_ext": ".xyz", "label_ext": ".png"},
    }
    odd = parse_dataset_spec(tmp_path / "odd.toml", raw)
    root = tmp_path / "root"
    with pytest.raises(BenchError, match=r"odd\.toml.*data\.image_ext"):
        write_suite(root, [SPECS["suim"], odd], images_per_set=2)
    assert synthetic_count(root, "suim") == 2
    assert check_eval_set(SPECS["suim"].eval_sets()[0], root) == []
    assert write_suite(root, [SPECS["cwfid"]], images_per_set=2) == {"cwfid": 2}
