"""`check_eval_set` on a synthetic suite with planted defects: each reported, naming its file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from catseg_bench.data import check_eval_set
from catseg_bench.data.check import (
    BAD_IMAGE,
    BAD_LABEL,
    COUNT,
    LABEL_VALUES,
    MISSING_DIR,
    NO_FILES,
    SIZE_MISMATCH,
    UNPAIRED_IMAGE,
    UNPAIRED_LABEL,
)
from catseg_bench.specs import load_specs
from catseg_bench.synth import SYNTH_MANIFEST, write_suite

SPECS = load_specs()
PST900 = SPECS["pst900"].eval_sets()[0]  # 5 classes
ZEROWASTE = SPECS["zerowaste_f"].eval_sets()[0]  # 5 classes, ".PNG"
SUIM = SPECS["suim"].eval_sets()[0]


@pytest.fixture()
def root(tmp_path):
    write_suite(tmp_path, [SPECS["pst900"], SPECS["zerowaste_f"], SPECS["suim"]], images_per_set=3, seed=0)
    return tmp_path


def _kinds(findings) -> list[tuple[str, str]]:
    return sorted((f.kind, f.file) for f in findings)


def _set_label(path, array) -> None:
    Image.fromarray(array.astype(np.uint8)).save(path, format="PNG")


def _read_label(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def test_clean_suite_has_no_findings(root):
    assert [check_eval_set(es, root) for es in (PST900, ZEROWASTE, SUIM)] == [[], [], []]


def test_missing_label(root):
    label = root / PST900.label_dir / "synth_001.png"
    label.unlink()
    findings = check_eval_set(PST900, root)
    image = root / PST900.image_dir / "synth_001.png"
    assert _kinds(findings) == [(COUNT, str(root / PST900.image_dir)), (UNPAIRED_IMAGE, str(image))]
    by_kind = {f.kind: f for f in findings}
    assert "no label '<name>.png'" in by_kind[UNPAIRED_IMAGE].message
    assert "2 image/label pairs, expected 3 (synthetic suite manifest" in by_kind[COUNT].message


def test_value_7_in_a_5_class_label(root):
    path = root / PST900.label_dir / "synth_000.png"
    label = _read_label(path)
    label[5:7, 5:7] = 7
    _set_label(path, label)
    findings = check_eval_set(PST900, root)
    assert _kinds(findings) == [(LABEL_VALUES, str(path))]
    assert findings[0].message == "label values 7 are outside the classes 0..4 and the ignore value 255"
    assert findings[0].eval_set == "pst900"


def test_label_of_another_size_than_its_image(root):
    path = root / ZEROWASTE.label_dir / "synth_002.PNG"
    label = _read_label(path)
    _set_label(path, label[:-3, :])
    findings = check_eval_set(ZEROWASTE, root)
    assert _kinds(findings) == [(SIZE_MISMATCH, str(path))]
    height, width = label.shape
    assert f"label is {width}x{height - 3} (WxH) but its image" in findings[0].message
    assert f"synth_002.PNG is {width}x{height}" in findings[0].message


def test_an_extra_image(root):
    extra = root / SUIM.image_dir / "extra.jpg"
    Image.new("RGB", (50, 60)).save(extra)
    findings = check_eval_set(SUIM, root)
    assert _kinds(findings) == [(UNPAIRED_IMAGE, str(extra))]  # the 3 pairs are intact: count is fine
    assert f"image has no label '<name>.png' under {root / SUIM.label_dir}" == findings[0].message


def test_a_label_without_image(root):
    orphan = root / SUIM.label_dir / "orphan.png"
    _set_label(orphan, np.zeros((50, 50)))
    findings = check_eval_set(SUIM, root)
    assert (UNPAIRED_LABEL, str(orphan)) in _kinds(findings)


def test_all_planted_defects_together_serial_and_in_workers(root):
    _set_label(root / PST900.label_dir / "synth_000.png", np.full((50, 50), 7))  # wrong size and value
    (root / PST900.label_dir / "synth_001.png").unlink()
    (root / PST900.image_dir / "synth_002.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    serial = check_eval_set(PST900, root, workers=1)
    assert _kinds(serial) == sorted([
        (COUNT, str(root / PST900.image_dir)),
        (UNPAIRED_IMAGE, str(root / PST900.image_dir / "synth_001.png")),
        (LABEL_VALUES, str(root / PST900.label_dir / "synth_000.png")),
        (SIZE_MISMATCH, str(root / PST900.label_dir / "synth_000.png")),
        (BAD_IMAGE, str(root / PST900.image_dir / "synth_002.png")),
    ])
    assert check_eval_set(PST900, root, workers=2) == serial


def test_count_is_checked_against_the_spec_for_real_data(root):
    (root / SYNTH_MANIFEST).unlink()
    findings = check_eval_set(PST900, root)
    assert _kinds(findings) == [(COUNT, str(root / PST900.image_dir))]
    assert findings[0].message == "3 image/label pairs, expected 288 (num_images in pst900.toml)"
    assert check_eval_set(PST900, root, expected_count=3) == []


def test_missing_folders_and_empty_folders(root):
    cub = SPECS["cub_200"].eval_sets()[0]
    findings = check_eval_set(cub, root)
    assert [(f.kind, f.file) for f in findings] == [(MISSING_DIR, str(root / cub.image_dir)), (MISSING_DIR, str(root / cub.label_dir))]
    assert "bench prepare cub_200" in findings[0].message
    (root / cub.image_dir).mkdir(parents=True)
    (root / cub.label_dir).mkdir(parents=True)
    kinds = [f.kind for f in check_eval_set(cub, root)]
    assert kinds == [NO_FILES, COUNT]


def test_unreadable_files_are_findings_not_crashes(root):
    image = root / SUIM.image_dir / "synth_000.jpg"
    image.write_bytes(b"this is no jpeg")
    label = root / SUIM.label_dir / "synth_001.png"
    Image.new("RGB", (60, 60)).save(label)
    findings = check_eval_set(SUIM, root)
    assert _kinds(findings) == [(BAD_IMAGE, str(image)), (BAD_LABEL, str(label))]
    assert "single-channel" in [f for f in findings if f.kind == BAD_LABEL][0].message


def test_truncated_image_found_only_when_decoding(root):
    image = root / PST900.image_dir / "synth_000.png"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])
    assert check_eval_set(PST900, root) == []  # the header alone is intact
    findings = check_eval_set(PST900, root, decode_images=True)
    assert _kinds(findings) == [(BAD_IMAGE, str(image))]
