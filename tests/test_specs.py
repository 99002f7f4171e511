"""The 22 built-in MESS specs: they load, their prompts are MESS's, their domains are Table 1's."""

from __future__ import annotations

import json

import pytest

from catseg_bench.specs import builtin_specs_dir, load_benchmark, load_specs, spec_hash, training_specs_dir

from spec_texts import BUILTIN_NAMES, IN_DOMAIN_NAMES, MESS_CLASS_NAMES, MESS_NAMES, write_user_spec


# Seed Table 1: domains in column order, datasets in column order (display names as in its header,
# with its two typos fixed: "SUM" -> SUIM, "CHASE DBI" -> CHASE DB1).
TABLE_1 = {
    "General": ["BDD100K", "Dark Zurich", "MHP v1", "FoodSeg103", "ATLANTIS", "DRAM"],
    "Earth Monitoring": ["iSAID", "ISPRS Pots.", "WorldFloods", "FloodNet", "UAVid"],
    "Medical Sciences": ["KvasirInst.", "CHASE DB1", "CryoNuSeg", "PAXRay-4"],
    "Engineering": ["Corrosion CS", "DeepCrack", "PST900", "ZeroWaste-f"],
    "Agriculture and Biology": ["SUIM", "CUB-200", "CWFID"],
}
SPECS = load_specs()


def test_the_22_mess_datasets_in_table_order_then_the_in_domain_suite():
    assert list(SPECS) == BUILTIN_NAMES
    benchmarks = ("mess", "in_domain")
    assert sorted(p.stem for p in builtin_specs_dir().glob("*.toml") if p.stem not in benchmarks) == sorted(BUILTIN_NAMES)
    assert load_benchmark().members == tuple(MESS_NAMES)  # the MESS benchmark is unchanged
    assert load_benchmark("in_domain").members == tuple(IN_DOMAIN_NAMES)


def test_benchmark_domains_are_table_1():
    benchmark = load_benchmark()
    assert [d.name for d in benchmark.domains] == list(TABLE_1)
    assert [[SPECS[n].display_name for n in d.datasets] for d in benchmark.domains] == list(TABLE_1.values())
    assert benchmark.display_name == "MESS" and benchmark.aggregation == "mean"
    assert [d.display_name for d in benchmark.domains][-1] == "Agri. and Biology"


@pytest.mark.parametrize("name", MESS_NAMES)
def test_builtin_mess_spec(name):
    spec = SPECS[name]
    assert spec.name == name == spec.path.stem
    assert TABLE_1[spec.domain].count(spec.display_name) == 1
    assert spec.ignore_index == 255 and spec.label_dtype == "uint8" and spec.num_images > 0
    assert spec.license and spec.link.startswith("http")
    assert len(spec.spec_hash) == 16
    for es in spec.eval_sets():
        # The prompts are MESS's registration class names, verbatim and in label-index order.
        assert list(es.class_names) == MESS_CLASS_NAMES[es.spec.mess_name if es.subset is None else _subset_mess_name(es)]
        assert all(0 <= i < es.num_classes for i in es.classes_of_interest)
        assert es.image_dir and es.label_dir and es.image_ext and es.label_ext


def _subset_mess_name(es):
    return next(s.mess_name for s in es.spec.subsets if s.name == es.subset)


def test_every_reference_registration_has_a_spec():
    names = {s.mess_name for s in SPECS.values()} | {sub.mess_name for s in SPECS.values() for sub in s.subsets}
    assert set(MESS_CLASS_NAMES) <= names


def test_paxray4_is_composite_of_four_binary_subsets():
    spec = SPECS["paxray4"]
    assert spec.is_composite and spec.class_names == ()
    assert [s.name for s in spec.subsets] == ["lungs", "mediastinum", "bones", "diaphragm"]
    eval_sets = spec.eval_sets()
    assert [es.name for es in eval_sets] == ["paxray4.lungs", "paxray4.mediastinum", "paxray4.bones", "paxray4.diaphragm"]
    assert [es.class_names for es in eval_sets] == [
        ("others", "lung"), ("others", "mediastinum"), ("others", "bones"), ("others", "diaphragm"),
    ]
    assert all(es.classes_of_interest == (1,) and es.image_dir == spec.data.image_dir for es in eval_sets)
    assert len({es.label_dir for es in eval_sets}) == 4


def test_cwfid_keeps_mess_colour_mapping_and_skips_unlabelled_images():
    spec = SPECS["cwfid"]
    assert spec.class_names == ("ground", "crop seedling", "weed")
    assert spec.data.images_without_labels == "skip"
    assert "MESS" in spec.path.read_text(encoding="utf-8").split("class_names")[0]  # the why is in the file


def test_reference_copy_matches_shared(shared_dir):
    """tests/data/mess_class_names.json is a verbatim extract of the project's reference."""
    entries = json.loads((shared_dir / "reference" / "mess_datasets.json").read_text(encoding="utf-8"))
    expected = {}
    for entry in entries:
        names = entry["class_names"]
        expected.update(names if isinstance(names, dict) else {entry["mess_key"]: names})
    assert MESS_CLASS_NAMES == expected


def test_user_spec_with_new_domain_appears_after_the_22(tmp_path):
    write_user_spec(tmp_path, **{'image_ext = ".jpg"': 'image_ext = "jpg"'})
    specs = load_specs([tmp_path])
    assert list(specs) == BUILTIN_NAMES + ["solar"]
    solar = specs["solar"]
    assert solar.domain == "Energy" and solar.class_names == ("background", "panel", "crack")
    assert solar.data.image_ext == ".jpg"  # a bare extension gets its dot
    assert [es.name for es in solar.eval_sets()] == ["solar"]


def test_training_folder_loads_as_an_extra_folder_and_a_folder_named_twice_is_read_once():
    specs = load_specs([training_specs_dir(), builtin_specs_dir(), training_specs_dir()])
    assert list(specs) == BUILTIN_NAMES + ["coco_stuff_171"]
    assert specs["coco_stuff_171"].split == "train" and specs["coco_stuff_171"].num_images == 118287


def test_spec_hash_is_stable_and_tracks_what_is_evaluated(tmp_path):
    base = load_specs([write_user_spec(tmp_path / "a").parent])["solar"].spec_hash
    same = load_specs([write_user_spec(tmp_path / "b").parent])["solar"].spec_hash
    relicensed = load_specs([write_user_spec(tmp_path / "c", **{'"CC0"': '"MIT"'}).parent])["solar"].spec_hash
    renamed = load_specs([write_user_spec(tmp_path / "d", **{'"crack"': '"fracture"'}).parent])["solar"].spec_hash
    reordered = load_specs([write_user_spec(tmp_path / "e", **{'"panel", "crack"': '"crack", "panel"'}).parent])["solar"].spec_hash
    assert base == same == relicensed
    assert len({base, renamed, reordered}) == 3


def test_spec_hash_ignores_key_order_and_documentation_fields():
    raw = {"name": "x", "class_names": ["a", "b"], "data": {"image_dir": "i", "label_dir": "l"}, "license": "A"}
    shuffled = {"license": "B", "data": {"label_dir": "l", "image_dir": "i"}, "class_names": ["a", "b"], "name": "x"}
    assert spec_hash(raw) == spec_hash(shuffled)
    # Pinned: a change of the hashing scheme makes every stored result look stale, so it must be deliberate.
    assert spec_hash(raw) == "e3c34960a9cfc5b9"  # sha256 of the sorted compact JSON, 16 hex
