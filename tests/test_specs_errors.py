"""Every way a spec can be wrong is an error that names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from catseg_bench.specs import SpecError, load_specs

from spec_texts import SOLAR_SPEC as VALID


COMPOSITE = """\
name = "solar"
display_name = "Solar Panels"
domain = "Energy"
split = "test"
num_images = 3
ignore_index = 255
license = "CC0"
link = "https://example.org/solar"

[data]
image_dir = "solar/images"
image_ext = ".jpg"
label_ext = ".png"

[[subsets]]
name = "panels"
label_dir = "solar/labels/panels"
class_names = ["others", "panel"]

[[subsets]]
name = "cracks"
label_dir = "solar/labels/cracks"
class_names = ["others", "crack"]
classes_of_interest = [1]
"""

DATA_TABLE = '[data]\nimage_dir = "solar/images"\nlabel_dir = "solar/labels"\nimage_ext = ".jpg"\nlabel_ext = ".png"\n'


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"test setup: {old!r} must occur once"
    return text.replace(old, new)


def _expect_error(directory: Path, text: str, field: str, stem: str = "solar") -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_specs([directory])
    message = info.value.message
    assert str(path) in message, message
    assert f"'{field}'" in message, message
    assert "\n" not in message
    return message


def test_the_templates_are_valid(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "solar.toml").write_text(VALID, encoding="utf-8")
    (tmp_path / "b" / "solar.toml").write_text(COMPOSITE, encoding="utf-8")
    assert load_specs([tmp_path / "a"])["solar"].num_classes == 3
    composite = load_specs([tmp_path / "b"])["solar"]
    assert [es.name for es in composite.eval_sets()] == ["solar.panels", "solar.cracks"]
    assert composite.eval_sets()[0].classes_of_interest == (0, 1)  # omitted = all classes


CASES = {
    # unknown keys, at every level
    "unknown top-level key": (VALID, 'split = "test"\n', 'split = "test"\ncolour = "red"\n', "colour"),
    "unknown data key": (VALID, 'label_ext = ".png"\n', 'label_ext = ".png"\nimage_root = "x"\n', "data.image_root"),
    "unknown prepare key": (VALID, "manual = true\n", "manual = true\nmirror = 1\n", "prepare.mirror"),
    "unknown subset key": (COMPOSITE, 'name = "cracks"\n', 'name = "cracks"\ncolour = 3\n', "subsets[1].colour"),
    # missing fields
    "missing domain": (VALID, 'domain = "Energy"\n', "", "domain"),
    "missing license": (VALID, 'license = "CC0"\n', "", "license"),
    "missing data table": (VALID, DATA_TABLE, "", "data"),
    "missing data.image_dir": (VALID, 'image_dir = "solar/images"\n', "", "data.image_dir"),
    "missing data.label_dir": (VALID, 'label_dir = "solar/labels"\n', "", "data.label_dir"),
    "missing class_names": (VALID, 'class_names = ["background", "panel", "crack"]\n', "", "class_names"),
    "missing subset label_dir": (COMPOSITE, 'label_dir = "solar/labels/cracks"\n', "", "subsets[1].label_dir"),
    # wrong types and values
    "num_images as string": (VALID, "num_images = 3", 'num_images = "3"', "num_images"),
    "num_images negative": (VALID, "num_images = 3", "num_images = -1", "num_images"),
    "ignore_index as bool": (VALID, "ignore_index = 255", "ignore_index = true", "ignore_index"),
    "class_names as string": (VALID, 'class_names = ["background", "panel", "crack"]', 'class_names = "panel"', "class_names"),
    "class_names holding a number": (VALID, '"panel", "crack"]', '"panel", 3]', "class_names"),
    "class_names empty": (VALID, 'class_names = ["background", "panel", "crack"]', "class_names = []", "class_names"),
    "class_names repeated": (VALID, '"panel", "crack"]', '"panel", "panel"]', "class_names"),
    "class_names repeated in another case": (VALID, '"panel", "crack"]', '"panel", "Panel"]', "class_names"),
    "class_names repeated with other spaces": (VALID, '"panel", "crack"]', '"solar panel", "solar  panel "]', "class_names"),
    "data as string": (VALID.replace(DATA_TABLE, ""), 'split = "test"\n', 'split = "test"\ndata = "x"\n', "data"),
    "bad label_dtype": (VALID, 'split = "test"\n', 'split = "test"\nlabel_dtype = "int8"\n', "label_dtype"),
    "bad unpaired policy": (VALID, 'label_ext = ".png"\n', 'label_ext = ".png"\nimages_without_labels = "maybe"\n', "data.images_without_labels"),
    "absolute image_dir": (VALID, 'image_dir = "solar/images"', 'image_dir = "/srv/solar/images"', "data.image_dir"),
    "label_dir escaping the root": (VALID, 'label_dir = "solar/labels"', 'label_dir = "../solar/labels"', "data.label_dir"),
    # indices outside the class list
    "class of interest out of range": (VALID, "classes_of_interest = [1, 2]", "classes_of_interest = [1, 3]", "classes_of_interest"),
    "negative class of interest": (VALID, "classes_of_interest = [1, 2]", "classes_of_interest = [-1]", "classes_of_interest"),
    "background out of range": (VALID, "background_index = 0", "background_index = 7", "background_index"),
    "subset class of interest out of range": (COMPOSITE, "classes_of_interest = [1]", "classes_of_interest = [2]", "subsets[1].classes_of_interest"),
    # the ignore value
    "ignore inside the class range": (VALID, "ignore_index = 255", "ignore_index = 2", "ignore_index"),
    "ignore outside any label dtype": (VALID, "ignore_index = 255", "ignore_index = 70000", "ignore_index"),
    "ignore overflowing uint8": (VALID, "ignore_index = 255", "ignore_index = 256", "label_dtype"),
    "classes overflowing uint8": (
        VALID, 'class_names = ["background", "panel", "crack"]\nignore_index = 255',
        "class_names = [" + ", ".join(f'"c{i}"' for i in range(300)) + "]\nignore_index = 65535", "label_dtype",
    ),
    # composite specs
    "composite with top-level class_names": (COMPOSITE, 'split = "test"\n', 'split = "test"\nclass_names = ["a", "b"]\n', "class_names"),
    "composite with top-level coi": (COMPOSITE, 'split = "test"\n', 'split = "test"\nclasses_of_interest = [1]\n', "classes_of_interest"),
    "composite with top-level label_dir": (COMPOSITE, 'image_ext = ".jpg"\n', 'image_ext = ".jpg"\nlabel_dir = "solar/labels"\n', "data.label_dir"),
    "composite repeating a subset name": (COMPOSITE, 'name = "cracks"', 'name = "panels"', "subsets.name"),
    "composite subsets of unequal size": (COMPOSITE, '["others", "crack"]', '["others", "crack", "dust"]', "subsets.class_names"),
    "composite subset with bad label_dir": (COMPOSITE, 'label_dir = "solar/labels/cracks"', 'label_dir = "/labels"', "subsets[1].label_dir"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_spec_names_file_and_field(tmp_path, case):
    template, old, new, field = CASES[case]
    _expect_error(tmp_path, _edit(template, old, new), field)


def test_composite_subset_that_is_not_a_table(tmp_path):
    text = COMPOSITE.split("[[subsets]]")[0].replace("[data]", 'subsets = ["panels"]\n\n[data]')
    _expect_error(tmp_path, text, "subsets[0]")


def test_name_must_equal_file_stem(tmp_path):
    message = _expect_error(tmp_path, VALID, "name", stem="solar_panels")
    assert "'solar'" in message and "'solar_panels'" in message


def test_duplicate_name_across_spec_dirs(tmp_path):
    for folder in ("first", "second"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "solar.toml").write_text(VALID, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path / "first", tmp_path / "second"])
    message = info.value.message
    assert str(tmp_path / "second" / "solar.toml") in message and str(tmp_path / "first" / "solar.toml") in message
    assert "'name'" in message and "duplicate" in message


def test_user_spec_cannot_shadow_a_builtin_dataset(tmp_path):
    text = VALID.replace('name = "solar"', 'name = "cwfid"')
    message = _expect_error(tmp_path, text, "name", stem="cwfid")
    assert "dataset_specs" in message and "cwfid.toml" in message


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "solar.toml"
    path.write_text(VALID + "\nthis is not toml\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path])
    assert str(path) in info.value.message and "TOML" in info.value.message


def test_spec_that_is_not_utf8_names_the_file(tmp_path):
    path = tmp_path / "solar.toml"
    path.write_bytes(VALID.replace("Solar Panels", "Panneaux solaires \xe9t\xe9").encode("latin-1"))
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path])
    assert str(path) in info.value.message and "UTF-8" in info.value.message


def test_missing_specs_folder_is_named(tmp_path):
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path / "nowhere"])
    assert str(tmp_path / "nowhere") in info.value.message and "--specs" in info.value.message


BENCHMARK = """\
name = "energy"
display_name = "Energy benchmark"
aggregation = "mean"

[[domains]]
name = "Energy"
datasets = ["solar"]
"""


def test_user_benchmark_naming_an_unknown_dataset(tmp_path):
    (tmp_path / "solar.toml").write_text(VALID, encoding="utf-8")
    text = BENCHMARK.replace('["solar"]', '["solar", "wind"]')
    message = _expect_error(tmp_path, text, "domains.datasets", stem="energy")
    assert "'wind'" in message


def test_user_benchmark_disagreeing_with_a_spec_domain(tmp_path):
    (tmp_path / "solar.toml").write_text(VALID, encoding="utf-8")
    path = tmp_path / "energy.toml"
    path.write_text(BENCHMARK.replace('name = "Energy"', 'name = "Power"'), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_specs([tmp_path])
    message = info.value.message
    assert str(tmp_path / "solar.toml") in message and "'domain'" in message and "energy.toml" in message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('aggregation = "mean"', 'aggregation = "weighted"', "aggregation"),
        ('display_name = "Energy benchmark"\n', "", "display_name"),
        ('datasets = ["solar"]', "datasets = [1]", "domains[0].datasets"),
        ('name = "Energy"\n', 'name = "Energy"\ncolour = 1\n', "domains[0].colour"),
    ],
)
def test_invalid_benchmark_names_file_and_field(tmp_path, old, new, field):
    (tmp_path / "solar.toml").write_text(VALID, encoding="utf-8")
    _expect_error(tmp_path, _edit(BENCHMARK, old, new), field, stem="energy")
