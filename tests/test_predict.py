"""`bench predict` and `bench speed` as a user runs them (catseg-tiny, random weights, CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from catseg_bench.commands.predict import label_png, palette, parse_classes
from catseg_bench.errors import BenchError


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("predict") / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 160, 3), dtype=np.uint8)).save(path, quality=95)
    return path


def test_predict_writes_indices_probabilities_and_an_overlay(photo, tmp_path, cli):
    out, probs, overlay = tmp_path / "pred.png", tmp_path / "probs.npy", tmp_path / "overlay.png"
    result = cli("predict", photo, "--model", "catseg-tiny", "--classes", "sky, tree,road", "--out", out,
                 "--probs", probs, "--overlay", overlay, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "UNTRAINED" in result.stderr
    for name in ("sky", "tree", "road", "pixels %"):
        assert name in result.stdout
    p = np.load(probs)
    assert p.shape == (3, 90, 160) and p.dtype == np.float32
    assert ((p > 0) & (p < 1)).all()
    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (160, 90)
        np.testing.assert_array_equal(np.array(img), p.argmax(0))
    with Image.open(overlay) as img:
        assert img.mode == "RGB" and img.size[1] == 90 and img.size[0] > 160  # image + legend
        legend_colours = {tuple(c) for c in np.array(img)[:, 160:].reshape(-1, 3)}
    present = np.unique(p.argmax(0))
    assert all(tuple(int(v) for v in palette(3)[i]) in legend_colours for i in present)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_predict_runs_san_with_any_vocabulary_and_writes_its_scores(photo, tmp_path, cli):
    out, probs = tmp_path / "san.png", tmp_path / "san.npy"
    result = cli("predict", photo, "--model", "san-b", "--checkpoint", "none", "--classes", "a,b,c", "--out", out,
                 "--probs", probs, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "UNTRAINED" in result.stderr and "whole image" in result.stdout
    scores = np.load(probs)
    assert scores.shape == (3, 90, 160) and scores.dtype == np.float32 and (scores > 0).all()
    with Image.open(out) as img:
        assert img.mode == "L" and img.size == (160, 90)
        np.testing.assert_array_equal(np.array(img), scores.argmax(0))


def test_predict_runs_a_training_free_model_which_has_labels_only(photo, tmp_path, cli):
    out = tmp_path / "maskclip.png"
    result = cli("predict", photo, "--model", "maskclip", "--checkpoint", "none", "--classes", "sky,tree",
                 "--out", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.size == (160, 90) and set(np.unique(np.array(img))) <= {0, 1}
    refused = cli("predict", photo, "--model", "maskclip", "--checkpoint", "none", "--classes", "sky,tree",
                  "--probs", tmp_path / "p.npy", "--device", "cpu")
    assert refused.exit_code == 1 and "--probs: maskclip gives class labels only" in refused.output


def test_class_files_keep_synonyms_and_more_than_256_classes_need_16_bit_pngs(tmp_path):
    names = tmp_path / "classes.txt"
    names.write_text("sofa, couch, lounge\n\nbed \ntraffic light\n", encoding="utf-8")
    assert parse_classes(None, names) == ["sofa, couch, lounge", "bed", "traffic light"]
    assert parse_classes("a,b , c", None) == ["a", "b", "c"]
    labels = np.array([[0, 299], [256, 5]])
    wide = label_png(labels, 300)
    assert wide.mode == "I;16"
    path = tmp_path / "wide.png"
    wide.save(path)
    with Image.open(path) as img:
        np.testing.assert_array_equal(np.array(img), labels)
    assert label_png(np.array([[0, 255]]), 256).mode == "L"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--classes", "a,b", "--classes-file", "x.txt"], "exactly one of --classes"),
        ([], "exactly one of --classes"),
        (["--classes", "a,,b"], "empty class name"),
        (["--classes-file", "absent.txt"], "absent.txt: cannot read the class file"),
        (["--classes", "a", "--model", "catseg-xl"], "--model catseg-xl: unknown model"),
        (["--classes", "a", "--mode", "tiles"], "--mode tiles"),
        (["--classes", "a", "--checkpoint", "absent.pth"], "absent.pth does not exist"),
    ],
)
def test_predict_explains_bad_arguments(photo, cli, args, message):
    if "--model" not in args:
        args = [*args, "--model", "catseg-tiny"]
    result = cli("predict", photo, *args, "--device", "cpu")
    assert result.exit_code == 1
    assert message in result.output


def test_predict_refuses_missing_and_corrupt_images(tmp_path, cli):
    missing = cli("predict", tmp_path / "none.png", "--model", "catseg-tiny", "--classes", "a")
    assert missing.exit_code == 1 and "none.png: image not found" in missing.output
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = cli("predict", broken, "--model", "catseg-tiny", "--classes", "a")
    assert result.exit_code == 1 and "broken.png: not a readable image" in result.output


def test_parse_classes_rejects_an_empty_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(BenchError, match="no class names"):
        parse_classes(None, empty)


def test_speed_reports_throughput_and_memory(cli):
    result = cli("speed", "--model", "catseg-tiny", "--device", "cpu", "--images", "1", "--warmup", "0",
                 "--classes", "2", "--size", "64x96", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["model"] == "catseg-tiny" and row["classes"] == 2 and row["images"] == 1
    assert row["images_per_second"] > 0 and row["peak_memory_bytes"] > 0
    bad = cli("speed", "--model", "catseg-tiny", "--precision", "fp16")
    assert bad.exit_code == 1 and "--precision fp16" in bad.output


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (no pixel data: only the header is ever read)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [14_000, 30_000])  # 196 MP: PIL's own guard; 900 MP: beyond ours too
def test_a_huge_image_is_one_line_not_a_traceback(tmp_path, cli, side):
    from catseg_bench.data.decode import MAX_IMAGE_PIXELS, open_image

    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(side, side))
    if side * side <= MAX_IMAGE_PIXELS:  # what the MESS sources need opens (header only here)
        with open_image(path, str(path)) as img:
            assert img.size == (side, side)
        return
    result = cli("predict", path, "--model", "catseg-tiny", "--classes", "a,b", "--device", "cpu")
    assert result.exit_code == 1
    assert "split it into tiles" in " ".join(result.output.split()) and "Traceback" not in result.output


def test_predict_applies_exif_orientation_as_run_does(tmp_path):
    from catseg_bench.commands.predict import read_rgb
    from catseg_bench.data.decode import decode_image

    pixels = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    seen = read_rgb(path)
    assert seen.shape == (30, 20, 3)  # upright, as `bench run` (detectron2's read_image) sees it
    np.testing.assert_array_equal(seen, decode_image(path, str(path)))


def test_speed_suite_lists_every_mess_eval_set_with_its_classes_images_and_size():
    from catseg_bench.commands.speed import suite_sets

    rows = {name: (classes, images, size) for name, classes, images, size in suite_sets("mess", (1, 1))}
    assert len(rows) == 25 and sum(images for _, images, _ in rows.values()) == 25_609
    assert rows["cub_200"][:2] == (201, 5794) and rows["foodseg103"][:2] == (104, 2125)
    assert rows["floodnet"][2] == (1024, 1024) and rows["paxray4.lungs"][:2] == (2, 180)
    assert [name for name, *_ in suite_sets("mess", (1, 1), ["paxray4", "suim"])] == [
        "paxray4.lungs", "paxray4.mediastinum", "paxray4.bones", "paxray4.diaphragm", "suim"]
    with pytest.raises(BenchError, match="--sets nope: not in the mess benchmark"):
        suite_sets("mess", (1, 1), ["nope"])


def test_speed_suite_projects_the_full_run_from_seconds_per_image(cli):
    result = cli("speed", "--model", "catseg-tiny", "--device", "cpu", "--images", "1", "--warmup", "0",
                 "--mode", "whole", "--suite", "mess", "--sets", "cwfid", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["precision"] == "fp32"  # auto on the CPU
    (row,) = record["rows"]
    assert row["eval_set"] == "cwfid" and row["classes"] == 3 and row["images"] == 21
    assert row["image_size"] == [966, 1296]
    assert row["projected_seconds"] == pytest.approx(21 * row["seconds_per_image"] + row["text_seconds"])
    assert record["projected_seconds"] == row["projected_seconds"]
    bad = cli("speed", "--model", "catseg-tiny", "--sets", "cwfid")
    assert bad.exit_code == 1 and "add --suite mess" in bad.output


def test_speed_measures_any_registered_model(cli):
    """Through the registry: a training-free CLIP method (untrained ViT-B-16) and the --compile check."""
    result = cli("speed", "--model", "sclip", "--device", "cpu", "--images", "1", "--warmup", "0",
                 "--classes", "2", "--size", "64x96", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["model"] == "sclip" and row["precision"] == "fp32" and row["images_per_second"] > 0
    assert row["text_seconds"] > 0
    bad = cli("speed", "--model", "random", "--compile")
    assert bad.exit_code == 1 and "--compile: random has no compile option" in bad.output
