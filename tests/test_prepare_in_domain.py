"""The six in-domain recipes against CAT-Seg's own preparation scripts.

tests/data/in_domain_prepare/sources/ holds tiny sources in the original formats (ADE20K-full's
index_ade20k.pkl and *_seg.png, PASCAL-Context's MATLAB .mat and RLE trainval_merged.json, VOC
PNGs); expected/ holds what KU-CVLAB/CAT-Seg@6d3a188's datasets/prepare_*.py wrote from them
(run_official.py; README.md says how to rerun). Here the sources are packed as the real downloads
are, served at the spec URLs (or placed as the manual download), prepared with `bench prepare`, and
every written label must be byte-identical to the official one (and A-847's re-encoded images too).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catseg_bench.errors import BenchError
from catseg_bench.prepare import convert
from catseg_bench.prepare.recipes import read_ade_index
from catseg_bench.specs import load_specs

from test_prepare_recipes import env  # noqa: F401 (the fixture)
from test_prepare_support import sha, tar_bytes, zip_bytes

pytest.importorskip("scipy", reason="the prepare extra (scipy) reads PC-459's .mat files")
pytest.importorskip("pycocotools", reason="the prepare extra (pycocotools) decodes PC-59's RLE")

FIXTURE = Path(__file__).parent / "data" / "in_domain_prepare"
SOURCES = FIXTURE / "sources"
OFFICIAL = json.loads((FIXTURE / "expected" / "outputs.json").read_text())
SPECS = load_specs()


def files_under(folder: str, prefix: str = "", exclude: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The files of sources/<folder> as archive members named <prefix><path below folder>."""
    root = SOURCES / folder
    return {prefix + str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part in exclude for part in p.relative_to(root).parts)}


def voc2010_tar() -> bytes:
    return tar_bytes(files_under("VOCdevkit/VOC2010/JPEGImages", "VOCdevkit/VOC2010/JPEGImages/"), mode="w")


def voc2012_sources() -> dict[str, bytes]:
    tar = {**files_under("VOCdevkit/VOC2012/JPEGImages", "VOCdevkit/VOC2012/JPEGImages/"),
           **files_under("VOCdevkit/VOC2012/ImageSets", "VOCdevkit/VOC2012/ImageSets/")}
    aug = files_under("VOCdevkit/VOC2012/SegmentationClassAug", "SegmentationClassAug/")
    return {"VOCtrainval_11-May-2012.tar": tar_bytes(tar, mode="w"), "SegmentationClassAug.zip": zip_bytes(aug)}


def pc459_sources() -> dict[str, bytes]:
    return {
        "VOCtrainval_03-May-2010.tar": voc2010_tar(),
        "trainval.tar.gz": tar_bytes(files_under("VOCdevkit/VOC2010/trainval", "trainval/")),
        "pascalcontext_val.txt": (SOURCES / "VOCdevkit/VOC2010/pascalcontext_val.txt").read_bytes(),
    }


def pc59_sources() -> dict[str, bytes]:
    return {"VOCtrainval_03-May-2010.tar": voc2010_tar(),
            "trainval_merged.json": (SOURCES / "VOCdevkit/VOC2010/trainval_merged.json").read_bytes()}


def assert_official(data_root: Path, real: str, official: str | None = None) -> None:
    """Every label the recipe wrote equals CAT-Seg's, byte for byte, and no label is missing or extra
    (``official="ade847_images"``: the images A-847's script re-encodes)."""
    images = (official or real).endswith("_images")
    label_dir = data_root / (SPECS[real].data.image_dir if images else SPECS[real].eval_sets()[0].label_dir)
    expected = OFFICIAL[official or real]
    written = sorted(p.name for p in label_dir.iterdir() if not p.name.startswith("."))
    assert written == sorted(expected)
    for name, record in expected.items():
        path = label_dir / name
        assert sha(path.read_bytes()) == record["sha256"], f"{real}: {name} differs from CAT-Seg's output"
        with Image.open(path) as image:
            assert (image.mode, list(image.size), image.format) == (record["mode"], record["size"], record["format"])
            decoded = np.array(image)
        if not images:
            np.testing.assert_array_equal(decoded, np.array(Image.open(FIXTURE / "expected" / real / f"{Path(name).stem}.png")))


def test_a847_manual_zip_to_16_bit_tiffs_and_resized_images(env):
    archive = zip_bytes(files_under("ADE20K_2021_17_01", "ADE20K_2021_17_01/"))
    env.prepare("ade847", 3, manual={"ADE20K_2021_17_01.zip": archive})
    assert_official(env.data, "ade847")
    assert_official(env.data, "ade847", "ade847_images")  # images_detectron2: resized, re-encoded as CAT-Seg does
    labels = env.data / SPECS["ade847"].eval_sets()[0].label_dir
    big = np.array(Image.open(labels / "ADE_val_00000002.tif"))
    assert big.dtype == np.uint16 and big.shape == (512, 599) and {0, 846, 65535} <= set(np.unique(big).tolist())


def test_a847_asks_for_the_registration_download(env):
    result = env.prepare("ade847", 3, expect_exit=1)
    text = " ".join(result.output.split())
    assert "needs files you download yourself" in text and "ADE20K_2021_17_01.zip (or ADE20K_2021_17_01)" in text
    assert "https://groups.csail.mit.edu/vision/datasets/ADE20K/request_data/" in text


def test_a847_unpacked_folder_works_too(env):
    folder = {str(p.relative_to(SOURCES / "ADE20K_2021_17_01")): p.read_bytes()
              for p in (SOURCES / "ADE20K_2021_17_01").rglob("*") if p.is_file()}
    env.prepare("ade847", 3, manual={"ADE20K_2021_17_01": folder})
    assert_official(env.data, "ade847")


def test_pc459_mat_label_maps_then_pc59_rle_merged_into_the_same_voc2010(env):
    env.prepare("pc459", 2, remote=pc459_sources())
    assert_official(env.data, "pc459")  # 2008_000007 is listed but has no .mat: skipped, as CAT-Seg skips it
    env.prepare("pc59", 3, remote=pc59_sources())
    assert_official(env.data, "pc59")
    assert_official(env.data, "pc459")  # still there after the merge
    marker = json.loads((env.data / "VOCdevkit" / ".bench-prepared.json").read_text())
    assert marker["dataset"] == "pc459_t" and marker["shared_with"]["pc59_t"]["counts"] == {"pc59_t": 3}
    again = env.cli("prepare", "pc59_t", "--data-root", env.data, "--specs", env.specs)
    assert again.exit_code == 0 and "already prepared" in again.output


def test_a150_minus_one(env):
    archive = zip_bytes(files_under("ADEChallengeData2016", "ADEChallengeData2016/"))
    env.prepare("ade150", 2, remote={"ADEChallengeData2016.zip": archive})
    assert_official(env.data, "ade150")


def test_voc20_and_voc20b_share_voc2012(env):
    env.prepare("voc20", 2, remote=voc2012_sources())
    assert_official(env.data, "voc20")  # 2007_000061 holds only background: CAT-Seg writes no label for it
    env.prepare("voc20b", 3, remote=voc2012_sources())
    assert_official(env.data, "voc20b")
    assert_official(env.data, "voc20")


def test_a_folder_bench_did_not_prepare_is_still_refused(env):
    (env.data / "VOCdevkit" / "VOC2012").mkdir(parents=True)
    result = env.prepare("voc20", 2, remote=voc2012_sources(), expect_exit=1)
    assert "exists but is not a complete PAS-20" in " ".join(result.output.split())


def test_ade_full_conversions():
    seg = np.zeros((1, 3, 3), dtype=np.uint8)
    seg[0, :, 0] = [0, 19, 255]  # R / 10 floors: 0, 1, 25
    seg[0, :, 1] = [7, 0, 255]
    assert convert.ade_full_class_mask(seg).tolist() == [[7, 256, 25 * 256 + 255]]
    assert convert.ade_full_size(512, 700) is None and convert.ade_full_size(400, 900) is None
    assert convert.ade_full_size(513, 600) == (512, 599) and convert.ade_full_size(700, 520) == (689, 512)
    assert convert.ade_full_size(1024, 1025) == (512, 512)  # 512.5 rounds half to even, as Python's round
    ids = np.array([[5, 3, 9, 0]])
    assert convert.ids_to_train_ids(ids, [3, 9], 65535, np.uint16).tolist() == [[65535, 0, 1, 65535]]


def test_ade_index_reader_refuses_code(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "index_ade20k.pkl"
    path.write_bytes(pickle.dumps({"folder": ["a"], "filename": [Sneaky()]}))
    with pytest.raises(BenchError, match=r"builtins\.print is not allowed"):
        read_ade_index(path)
    folders, files = read_ade_index(SOURCES / "ADE20K_2021_17_01" / "index_ade20k.pkl")
    assert len(folders) == len(files) == 4 and files[0] == "ADE_val_00000001.jpg"


def test_fixture_is_tiny():
    total = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert total < 200_000, total
