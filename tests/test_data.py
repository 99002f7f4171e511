"""catseg_bench.data: data root, pairing by key, decoding, items, and errors that name the file."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catseg_bench.data import (
    DATA_ROOT_ENV,
    FolderEvalSet,
    decode_image,
    decode_label,
    open_eval_set,
    resolve_data_root,
)
from catseg_bench.data.decode import image_size
from catseg_bench.errors import BenchError
from catseg_bench.specs import parse_dataset_spec


def make_eval_set(tmp_path: Path, **overrides):
    """An in-memory spec 'toy' (3 classes, ignore 255) with `overrides` applied to its fields or [data]."""
    data = {"image_dir": "toy/images", "label_dir": "toy/labels", "image_ext": ".jpg", "label_ext": ".png"}
    data.update(overrides.pop("data", {}))
    raw = {
        "name": "toy", "display_name": "Toy", "domain": "Testing", "split": "test", "num_images": 2,
        "class_names": ["bg", "a", "b"], "ignore_index": 255, "license": "CC0", "link": "https://example.org",
        "data": data, **overrides,
    }
    return parse_dataset_spec(tmp_path / "specs" / "toy.toml", raw).eval_sets()[0]


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def label(height: int, width: int) -> np.ndarray:
    values = np.zeros((height, width), dtype=np.uint8)
    values[:, width // 2:] = 2
    values[0, 0] = 255
    return values


# --- data root ---------------------------------------------------------------------------------

def test_data_root_from_option_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    (tmp_path / "opt").mkdir()
    assert resolve_data_root(tmp_path / "opt") == tmp_path / "opt"
    assert resolve_data_root(str(tmp_path / "opt")) == tmp_path / "opt"
    assert resolve_data_root(None) == tmp_path / "env"


def test_no_data_root_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    with pytest.raises(BenchError, match=r"--data-root DIR or set CATSEG_BENCH_DATA"):
        resolve_data_root(None)


def test_data_root_that_does_not_exist_is_named(tmp_path, monkeypatch):
    with pytest.raises(BenchError, match=r"nowhere: data root given by --data-root"):
        resolve_data_root(tmp_path / "nowhere")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "gone"))
    with pytest.raises(BenchError, match=r"gone: data root given by \$CATSEG_BENCH_DATA"):
        resolve_data_root(None)


# --- pairing -----------------------------------------------------------------------------------

def test_pairs_by_relative_path_without_suffix_sorted_and_recursive(tmp_path):
    es = make_eval_set(tmp_path, data={"image_ext": "_rgb_anon.png", "label_ext": "_gt_labelIds.png"})
    for key in ("seq2/frame_000", "frame_010", "frame_002"):
        write_png(tmp_path / "toy/images" / f"{key}_rgb_anon.png", rgb(4, 6))
        write_png(tmp_path / "toy/labels" / f"{key}_gt_labelIds.png", label(4, 6))
    (tmp_path / "toy/images/.DS_Store").write_bytes(b"junk")
    write_png(tmp_path / "toy/labels/._frame_010_gt_labelIds.png", label(4, 6))  # macOS resource copy
    (tmp_path / "toy/images/notes.txt").write_text("not an image")
    dataset = open_eval_set(es, tmp_path)
    assert isinstance(dataset, FolderEvalSet)
    assert dataset.names == ["frame_002", "frame_010", "seq2/frame_000"]
    assert dataset.image_path(2) == tmp_path / "toy/images/seq2/frame_000_rgb_anon.png"
    assert dataset.label_path(0) == tmp_path / "toy/labels/frame_002_gt_labelIds.png"


def test_suffix_match_is_case_sensitive_like_mess(tmp_path):
    es = make_eval_set(tmp_path, data={"image_ext": ".PNG", "label_ext": ".PNG"})
    write_png(tmp_path / "toy/images/01.PNG", rgb(3, 3))
    write_png(tmp_path / "toy/labels/01.PNG", label(3, 3))
    write_png(tmp_path / "toy/images/02.png", rgb(3, 3))  # other suffix: not part of the set
    assert open_eval_set(es, tmp_path).names == ["01"]


def test_label_folder_inside_image_folder_is_not_read_as_images(tmp_path):
    es = make_eval_set(tmp_path, data={"image_dir": "toy", "label_dir": "toy/labels", "image_ext": ".png"})
    write_png(tmp_path / "toy/a.png", rgb(3, 3))
    write_png(tmp_path / "toy/labels/a.png", label(3, 3))
    assert open_eval_set(es, tmp_path).names == ["a"]


def test_label_without_image_is_an_error_naming_it(tmp_path):
    es = make_eval_set(tmp_path)
    write_png(tmp_path / "toy/images/a.jpg", rgb(3, 3))
    write_png(tmp_path / "toy/labels/a.png", label(3, 3))
    write_png(tmp_path / "toy/labels/orphan.png", label(3, 3))
    with pytest.raises(BenchError, match=r"toy/labels: 1 label\(s\) of toy \(toy.toml\) have no image '<name>.jpg'.*: orphan.png;"):
        open_eval_set(es, tmp_path)


def test_image_without_label_is_an_error_naming_it(tmp_path):
    es = make_eval_set(tmp_path)
    for key in ("a", "b", "c", "d", "e", "f", "g"):
        write_png(tmp_path / "toy/images" / f"{key}.jpg", rgb(3, 3))
    write_png(tmp_path / "toy/labels/a.png", label(3, 3))
    with pytest.raises(BenchError) as info:
        open_eval_set(es, tmp_path)
    message = info.value.message
    assert "6 image(s) of toy" in message and "b.jpg, c.jpg, d.jpg, e.jpg, f.jpg and 1 more" in message
    assert 'images_without_labels = "skip"' in message


def test_images_without_labels_are_skipped_when_the_spec_says_so(tmp_path):
    es = make_eval_set(tmp_path, data={"image_ext": "_image.png", "label_ext": "_annotation.png", "images_without_labels": "skip"})
    for key in ("001", "002", "003"):
        write_png(tmp_path / "toy/images" / f"{key}_image.png", rgb(3, 3))
    write_png(tmp_path / "toy/labels/002_annotation.png", label(3, 3))
    dataset = open_eval_set(es, tmp_path)
    assert dataset.names == ["002"] and len(dataset) == 1
    assert [p.name for p in dataset.skipped_images] == ["001_image.png", "003_image.png"]


def test_missing_folder_and_empty_set_are_errors_naming_the_folder(tmp_path):
    es = make_eval_set(tmp_path)
    with pytest.raises(BenchError, match=r"toy/images: folder of toy \(toy.toml\) does not exist; prepare"):
        open_eval_set(es, tmp_path)
    (tmp_path / "toy/images").mkdir(parents=True)
    (tmp_path / "toy/labels").mkdir(parents=True)
    with pytest.raises(BenchError, match=r"toy/images: no '\*.jpg' image with a '\*.png' label"):
        open_eval_set(es, tmp_path)


# --- items and decoding ------------------------------------------------------------------------

def test_items_hold_rgb_uint8_image_int64_label_and_name(tmp_path):
    es = make_eval_set(tmp_path, data={"image_ext": ".png"})
    pixels = rgb(5, 7)
    write_png(tmp_path / "toy/images/a.png", pixels)
    write_png(tmp_path / "toy/labels/a.png", label(5, 7))
    item = open_eval_set(es, tmp_path)[0]
    assert item["name"] == "a"
    assert item["image"].dtype == np.uint8 and item["image"].shape == (5, 7, 3)
    np.testing.assert_array_equal(item["image"], pixels)
    assert item["label"].dtype == np.int64
    np.testing.assert_array_equal(item["label"], label(5, 7).astype(np.int64))
    assert item["image"].flags.writeable


def test_read_label_never_decodes_the_image(tmp_path):
    es = make_eval_set(tmp_path)
    (tmp_path / "toy/images").mkdir(parents=True)
    (tmp_path / "toy/images/a.jpg").write_bytes(b"not a jpeg at all")
    write_png(tmp_path / "toy/labels/a.png", label(4, 4))
    dataset = open_eval_set(es, tmp_path)
    assert dataset.read_label(0)[0, 0] == 255
    with pytest.raises(BenchError, match=r"toy/images/a.jpg: not a readable image"):
        dataset[0]


def test_dataset_pickles_for_dataloader_workers(tmp_path):
    es = make_eval_set(tmp_path, data={"image_ext": ".png"})
    write_png(tmp_path / "toy/images/a.png", rgb(3, 4))
    write_png(tmp_path / "toy/labels/a.png", label(3, 4))
    dataset = open_eval_set(es, tmp_path)
    clone = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(clone[0]["image"], dataset[0]["image"])


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_grayscale_image_becomes_three_equal_channels():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = decode_image(_png_bytes(gray), "g.png")
    assert image.shape == (3, 4, 3)
    np.testing.assert_array_equal(image[:, :, 1], gray)
    np.testing.assert_array_equal(image[:, :, 0], image[:, :, 2])


def test_rgba_drops_alpha_like_detectron2():
    rgba = np.dstack([rgb(2, 3), np.zeros((2, 3), np.uint8)])
    np.testing.assert_array_equal(decode_image(_png_bytes(rgba), "a.png"), rgba[:, :, :3])


def test_palette_image_is_expanded_to_its_colours():
    image = Image.frombytes("P", (2, 1), bytes([0, 1]))
    image.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    np.testing.assert_array_equal(decode_image(buffer.getvalue(), "p.png"), [[[10, 20, 30], [40, 50, 60]]])


def test_sixteen_bit_image_is_scaled_not_clipped():
    wide = np.array([[0, 257 * 100, 65535, 128]], dtype=np.uint16)
    image = decode_image(_png_bytes(wide), "x.png")
    np.testing.assert_array_equal(image[:, :, 0], [[0, 100, 255, 0]])


def test_exif_orientation_is_applied_to_images_and_their_header_size():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    Image.fromarray(rgb(4, 10)).save(buffer, format="JPEG", exif=exif.tobytes())
    image = decode_image(buffer.getvalue(), "photo.jpg")
    assert image.shape == (10, 4, 3)
    assert image_size(buffer.getvalue(), "photo.jpg") == (10, 4)


def test_truncated_image_is_an_error_naming_the_file(tmp_path):
    data = _png_bytes(rgb(64, 64))
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BenchError, match=r"cut.png: image is corrupt or truncated"):
        decode_image(path, str(path))


def test_labels_keep_palette_indices_and_16_bit_values():
    indices = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    palette = Image.frombytes("P", (2, 2), indices.tobytes())
    palette.putpalette([255 - i // 3 for i in range(768)])  # colours unlike the indices
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    np.testing.assert_array_equal(decode_label(buffer.getvalue(), "p.png"), indices)
    wide = np.array([[0, 300], [4000, 65535]], dtype=np.uint16)
    decoded = decode_label(_png_bytes(wide), "w.png")
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, wide.astype(np.int64))


def test_colour_label_is_an_error_naming_the_file():
    with pytest.raises(BenchError, match=r"mask.png: label is a RGB image with 3 channel\(s\); labels must be single-channel"):
        decode_label(_png_bytes(rgb(2, 2)), "mask.png")
