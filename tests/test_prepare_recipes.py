"""Every `bench prepare` recipe end to end: tiny sources in each dataset's original format, served at
the real spec URLs through a local mirror (or placed as manual downloads), converted by the CLI,
and compared with hand-computed outputs. CHASE DB1 is covered in test_prepare_download.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from test_prepare_support import (
    encoded, encrypted_zip_bytes, make_test_spec, png, rar4_bytes, read, real_files, rgb, sha, start_server,
    tar_bytes, zip_bytes,
)


class Env:
    def __init__(self, tmp_path, cli):
        self.tmp = tmp_path
        self.cli = cli
        self.server = start_server(tmp_path / "mirror")
        self.specs = tmp_path / "specs"
        self.data = tmp_path / "data"

    def prepare(self, real, num_images, remote=None, manual=None, jobs=1, expect_exit=0):
        remote, manual = remote or {}, manual or {}
        digests = {}
        for entry in real_files(real):
            name = entry.get("name") or entry["url"].rstrip("/").rsplit("/", 1)[-1]
            if name in remote:
                if isinstance(remote[name], dict):
                    self.server.place_folder(entry["url"], remote[name])
                else:
                    self.server.place(entry["url"], remote[name])
                    digests[name] = sha(remote[name])
        spec = make_test_spec(self.specs, real, num_images, digests)
        folder = self.data / ".bench-downloads" / spec
        for name, content in manual.items():
            _write(folder / name, content)
        result = self.cli("prepare", spec, "--data-root", self.data, "--mirror", self.server.url,
                          "--specs", self.specs, "--jobs", str(jobs))
        assert result.exit_code == expect_exit, result.output
        return result


def _write(path, content):
    if isinstance(content, dict):
        for rel, data in content.items():
            _write(path / rel, data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


@pytest.fixture()
def env(tmp_path, cli):
    e = Env(tmp_path, cli)
    yield e
    e.server.shutdown()
    e.server.server_close()


def tif(array) -> bytes:
    return encoded(array, "TIFF")


def jpg(h=4, w=5, seed=0) -> bytes:
    return encoded(rgb(h, w, seed), "JPEG")


def palette_png(indices) -> bytes:
    image = Image.fromarray(np.asarray(indices, np.uint8), "P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    return encoded(image, "PNG")


# ------------------------------------------------------------------------------------------ General


def test_bdd100k_manual_files_then_palette_indices(env):
    result = env.prepare("bdd100k", 1, expect_exit=1)
    assert "bdd100k_images_10k.zip" in result.output and "bdd100k_sem_seg_labels_trainval.zip" in result.output
    assert str(env.data / ".bench-downloads" / "bdd100k_t") in result.output.replace("\n", "")
    labels = [[0, 18], [255, 3]]
    env.prepare("bdd100k", 1, manual={
        "bdd100k_images_10k.zip": zip_bytes({"bdd100k/images/10k/val/a1.jpg": jpg(2, 2)}),
        "bdd100k_sem_seg_labels_trainval.zip": zip_bytes({"bdd100k/labels/sem_seg/colormaps/val/a1.png": palette_png(labels)}),
    })
    assert read(env.data / "bdd100k/annotations_detectron2/val/a1.png").tolist() == labels
    assert (env.data / ".bench-downloads" / "bdd100k_t" / "bdd100k_images_10k.zip").exists()  # manual files are kept


def test_dark_zurich_label_ids_and_invalid_pixels(env):
    stem = "gt/val/night/GOPR0356/GOPR0356_frame_000001_gt_"
    archive = zip_bytes({
        stem + "labelIds.png": png(np.array([[0, 7, 33], [26, 8, 7]], np.uint8)),
        stem + "invGray.png": png(np.array([[0, 0, 0], [255, 0, 0]], np.uint8)),
        "rgb_anon/val/night/GOPR0356/GOPR0356_frame_000001_rgb_anon.png": png(rgb(2, 3, 1)),
    })
    env.prepare("dark_zurich", 1, {"Dark_Zurich_val_anon.zip": archive})
    out = read(env.data / "Dark_Zurich/annotations_detectron2/val/GOPR0356_frame_000001_gt_labelIds.png")
    assert out.tolist() == [[0, 1, 19], [255, 2, 1]]


def test_mhp_v1_split_lists_and_max_merge(env):
    a = np.array([[0, 3, 3], [0, 0, 1]], np.uint8)
    b = np.array([[2, 2, 0], [0, 5, 0]], np.uint8)
    archive = zip_bytes({
        "LV-MHP-v1/images/1.jpg": jpg(2, 3), "LV-MHP-v1/images/2.jpg": jpg(2, 3, 1), "LV-MHP-v1/images/3.jpg": jpg(2, 3, 2),
        "LV-MHP-v1/annotations/1_02_01.png": png(a), "LV-MHP-v1/annotations/1_02_02.png": png(b),
        "LV-MHP-v1/annotations/2_01_01.png": png(a), "LV-MHP-v1/annotations/3_01_01.png": png(b),
        "LV-MHP-v1/test_list.txt": b"1.jpg\n", "LV-MHP-v1/train_list.txt": b"2.jpg\n",
    })
    env.prepare("mhp_v1", 1, {"LV-MHP-v1.zip": archive})
    ds = env.data / "LV-MHP-v1"
    merged = Image.open(ds / "annotations_detectron2/test/1.png")
    assert merged.mode == "L" and np.array(merged).tolist() == [[2, 3, 3], [0, 5, 1]]
    assert (ds / "images_detectron2/train/2.jpg").exists() and (ds / "images_detectron2/val/3.jpg").exists()


def test_foodseg103_password_zip_unpacked_as_is(env):
    label = png(np.array([[0, 103]], np.uint8))
    archive = encrypted_zip_bytes({
        "FoodSeg103/Images/img_dir/test/00001.jpg": jpg(1, 2),
        "FoodSeg103/Images/ann_dir/test/00001.png": label,
        "FoodSeg103/Images/img_dir/train/00002.jpg": jpg(1, 2),
    }, "LARCdataset9947")
    env.prepare("foodseg103", 1, {"FoodSeg103.zip": archive})
    assert (env.data / "FoodSeg103/Images/ann_dir/test/00001.png").read_bytes() == label


def test_atlantis_github_archive_subfolder_and_grey_map(env):
    archive = tar_bytes({
        "atlantis-0123abc/README.md": b"repo",
        "atlantis-0123abc/atlantis/images/test/river/r1.jpg": jpg(2, 2),
        "atlantis-0123abc/atlantis/masks/test/river/r1.png": png(np.array([[0, 1], [56, 2]], np.uint8)),
        "atlantis-0123abc/atlantis/images/train/sea/s1.jpg": jpg(2, 2),
    })
    env.prepare("atlantis", 1, {"atlantis.tar.gz": archive})
    ds = env.data / "atlantis"
    assert read(ds / "annotations_detectron2/test/r1.png").tolist() == [[255, 0], [55, 1]]
    assert (ds / "images_detectron2/test/r1.jpg").exists() and not (env.data / "atlantis/README.md").exists()


def test_dram_rar_inside_zip_and_voc_remap(env):
    rar = rar4_bytes({
        "DRAM_processed/test/monet/m1.jpg": jpg(2, 3),
        "DRAM_processed/labels/monet/m1.png": png(np.array([[0, 3, 20], [15, 255, 16]], np.uint8)),
        "DRAM_processed/train/monet/m2.jpg": jpg(2, 3),
    })
    env.prepare("dram", 1, {"DRAM_processed.zip": zip_bytes({"DRAM_processed.rar": rar})})
    ds = env.data / "DRAM_processed"
    assert read(ds / "annotations_detectron2/test/monet_m1.png").tolist() == [[11, 0, 11], [8, 255, 9]]
    assert (ds / "images_detectron2/test/monet_m1.jpg").exists()
    assert not (ds.parent / ".bench-scratch").exists()


# ------------------------------------------------------------------------------------------ Earth Monitoring


def test_isaid_drive_folders_colours_and_tiles(env):
    image = rgb(3, 1030, 5)
    colours = np.zeros((3, 1030, 3), np.uint8)
    colours[0, 0] = (0, 0, 63)  # ship -> 1
    colours[1, 1029] = (0, 100, 155)  # harbor -> 15
    colours[2, 5] = (0, 127, 255)  # plane -> 14
    images = zip_bytes({"images/P0001.png": png(image), "images/P0002.png": png(image[:, :10])})
    masks = zip_bytes({"images/P0001_instance_color_RGB.png": png(colours),
                       "images/P0002_instance_color_RGB.png": png(colours[:, :10])})
    env.prepare("isaid", 3, {"isaid_val_images": {"part1.zip": images}, "isaid_val_masks": {"images.zip": masks}}, jobs=2)
    out = env.data / "isaid"
    tile0, tile1 = read(out / "annotations_detectron2/val/P0001_0.png"), read(out / "annotations_detectron2/val/P0001_1.png")
    assert tile0.shape == (1024, 1024) and tile0[0, 0] == 1 and tile0[2, 5] == 14 and tile0[1, 1] == 0
    assert (tile0[3:] == 255).all() and tile1[1, 5] == 15 and (tile1[:3, 6:] == 255).all()
    img1 = read(out / "images_detectron2/val/P0001_1.png")
    assert (img1[:3, :6] == image[:, 1024:]).all() and (img1[:3, 6:] == 0).all() and (img1[3:] == 0).all()
    assert sorted(p.name for p in (out / "images_detectron2/val").iterdir()) == ["P0001_0.png", "P0001_1.png", "P0002_0.png"]


def test_isprs_potsdam_manual_nested_zips_binarised_colours_tiles(env):
    label = np.zeros((2, 1025, 3), np.uint8)
    label[0, 0] = (250, 250, 250)  # graded white -> road 0
    label[0, 1] = (0, 0, 200)  # -> (0,0,255) building 1
    label[0, 2] = (255, 10, 0)  # -> (255,0,0) clutter 5
    label[0, 3] = (0, 255, 0)  # tree 3
    label[:, 4:] = (255, 255, 0)  # car 4
    label[1, 1024] = (0, 255, 255)  # low vegetation 2 (second tile)
    inner = {
        "Potsdam/2_Ortho_RGB.zip": zip_bytes({"2_Ortho_RGB/top_potsdam_2_13_RGB.tif": tif(rgb(2, 1025, 1)),
                                              "2_Ortho_RGB/top_potsdam_2_10_RGB.tif": tif(rgb(2, 3, 1))}),
        "Potsdam/3_Ortho_IRRG.zip": zip_bytes({"3_Ortho_IRRG/top_potsdam_2_13_IRRG.tif": tif(rgb(2, 1025, 2))}),
        "Potsdam/5_Labels_all.zip": zip_bytes({"top_potsdam_2_13_label.tif": tif(label)}),
    }
    env.prepare("isprs_potsdam", 2, manual={"Potsdam.zip": zip_bytes(inner)})
    ds = env.data / "ISPRS_Potsdam"
    tile0 = read(ds / "annotations_detectron2/test/top_potsdam_2_13_0.png")
    assert tile0[0, :5].tolist() == [0, 1, 5, 3, 4] and (tile0[2:] == 255).all()
    assert read(ds / "annotations_detectron2/test/top_potsdam_2_13_1.png")[1, 0] == 2
    irrg = read(ds / "images_detectron2/test/irrg/top_potsdam_2_13_1.png")
    assert (irrg[:2, :1] == rgb(2, 1025, 2)[:, 1024:]).all() and (irrg[:, 1:] == 0).all()
    assert (ds / "images_detectron2/test/rgb/top_potsdam_2_13_0.png").exists()
    assert not (ds / "Potsdam").exists() and not list(ds.glob("**/top_potsdam_2_10_*.png"))


@pytest.mark.parametrize("planar", [True, False])
def test_worldfloods_drive_folder_irrg_composite_normalised_and_tiled(env, planar):
    import io

    import tifffile

    bands = np.zeros((13, 2, 1025), np.uint16)
    bands[:, 0, 0] = np.arange(13) * 1000
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, bands if planar else bands.transpose(1, 2, 0), photometric="minisblack",
                     planarconfig="separate" if planar else "contig", compression="zlib")
    gt = np.array([[0, 1, 2, 3] + [1] * 1021, [1] * 1025], np.uint8)
    env.prepare("worldfloods", 2, {"worldfloods_test": {"S2/EMSR1.tif": buffer.getvalue(), "gt/EMSR1.tif": tif(gt)}})
    ds = env.data / "WorldFloods"
    irrg = read(ds / "images_detectron2/test/irrg/EMSR1_0.png")
    assert irrg[0, 0].tolist() == [255, 122, 38] and (irrg[2:] == 0).all()
    assert read(ds / "images_detectron2/test/rgb/EMSR1_0.png")[0, 0].tolist() == [122, 88, 38]
    mask = read(ds / "annotations_detectron2/test/EMSR1_0.png")
    assert mask[0, :4].tolist() == [255, 0, 1, 2] and (mask[2:] == 255).all()
    assert read(ds / "annotations_detectron2/test/EMSR1_1.png")[0, 0] == 0


def test_floodnet_manual_folder_tiles_images_as_jpeg(env):
    label = np.zeros((2, 1030), np.uint8)
    label[0, 1029] = 9
    folder = {"test/test-org-img/7.jpg": jpg(2, 1030), "test/test-label-img/7_lab.png": png(label),
              "train/train-org-img/8.jpg": jpg(2, 2)}
    env.prepare("floodnet", 2, manual={"FloodNet-Supervised_v1.0": folder})
    ds = env.data / "FloodNet-Supervised_v1.0"
    tile1 = read(ds / "annotations_detectron2/test/7_1.png")
    assert tile1[0, 5] == 9 and tile1[0, 6] == 255 and tile1[1, 0] == 0
    assert Image.open(ds / "images_detectron2/test/7_1.jpg").format == "JPEG"


def test_uavid_manual_zip_luma_grey_map(env):
    label = np.zeros((2, 1025, 3), np.uint8)
    label[0, 0] = (128, 0, 0)  # building: luma 38 -> 1
    label[0, 1] = (128, 64, 128)  # road: luma 90 -> 2
    label[0, 2] = (192, 0, 192)  # static car: luma 79 -> 6
    label[1, 1024] = (64, 64, 0)  # human: luma 57 -> 7
    root = "uavid_v1.5_official_release_image/uavid_val/seq16"
    archive = zip_bytes({f"{root}/Images/000000.png": png(rgb(2, 1025, 3)), f"{root}/Labels/000000.png": png(label)})
    env.prepare("uavid", 2, manual={"uavid_v1.5_official_release_image.zip": archive})
    ds = env.data / "uavid_v1.5"
    assert read(ds / "annotations_detectron2/val/seq16_000000_0.png")[0, :4].tolist() == [1, 2, 6, 0]
    assert read(ds / "annotations_detectron2/val/seq16_000000_1.png")[1, 0] == 7
    assert (ds / "uavid_val").is_dir()


# ------------------------------------------------------------------------------------------ Medical Sciences


def test_kvasir_inner_tars_and_channel0_div255(env):
    mask = np.zeros((2, 2, 3), np.uint8)
    mask[0, 0] = 255
    mask[1, 1] = (254, 255, 255)
    archive = zip_bytes({
        "kvasir-instrument/images.tar.gz": tar_bytes({"images/ck1.jpg": jpg(2, 2), "images/ck2.jpg": jpg(2, 2)}),
        "kvasir-instrument/masks.tar.gz": tar_bytes({"masks/ck1.png": png(mask), "masks/ck2.png": png(mask)}),
        "kvasir-instrument/test.txt": b"ck1\n", "kvasir-instrument/train.txt": b"ck2\n",
    })
    env.prepare("kvasir_instrument", 1, {"kvasir-instrument.zip": archive})
    ds = env.data / "kvasir-instrument"
    assert read(ds / "annotations_detectron2/test/ck1.png").tolist() == [[1, 0], [0, 0]]
    assert Image.open(ds / "images_detectron2/test/ck1.png").format == "PNG"
    assert not (ds / "images.tar.gz").exists()


def test_cryonuseg_manual_folder_annotator1_div255(env):
    masks = "Annotator 1 (biologist second round of manual marks up)/" * 2 + "mask binary"
    folder = {"tissue images/Human_1.tif": tif(rgb(2, 2, 4)),
              f"{masks}/Human_1.png": png(np.array([[0, 255], [255, 128]], np.uint8))}
    env.prepare("cryonuseg", 1, manual={"archive": folder})
    ds = env.data / "CryoNuSeg"
    assert read(ds / "annotations_detectron2/Human_1.png").tolist() == [[0, 1], [1, 0]]
    assert Image.open(ds / "images_detectron2/Human_1.png").mode == "RGB"
    assert _departures(ds / "annotations_detectron2") is None  # 8-bit masks: exactly MESS's result


def one_bit_png(values) -> bytes:
    return encoded(Image.fromarray(np.asarray(values, np.uint8)).convert("1"), "PNG")


def _departures(label_dir):
    path = label_dir / ".bench-mess-departures.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_one_bit_masks_keep_their_foreground_and_the_departure_is_said_and_recorded(env):
    masks = "Annotator 1 (biologist second round of manual marks up)/" * 2 + "mask binary"
    folder = {"tissue images/Human_1.tif": tif(rgb(2, 2, 4)), f"{masks}/Human_1.png": one_bit_png([[0, 255], [255, 0]])}
    result = env.prepare("cryonuseg", 1, manual={"archive": folder})
    labels = env.data / "CryoNuSeg/annotations_detectron2"
    assert read(labels / "Human_1.png").tolist() == [[0, 1], [1, 0]]  # MESS's /255 would give all 0
    said = [line for line in result.output.splitlines() if "departure from MESS" in line]
    assert said == ["  CryoNuSeg: departure from MESS: 1 of 1 masks are 1-bit PNGs: their foreground is kept as class 1, "
                    "where MESS's np.uint8(mask / 255) would turn it into class 0 (no foreground pixel left)"]
    record = _departures(labels)
    assert record["departures_from_mess"] == [said[0].split("departure from MESS: ", 1)[1]]
    digests = json.loads((labels / ".bench-label-digests.json").read_text())
    assert record["label_fingerprint"] == digests["label_fingerprint"]

    archive = zip_bytes({"test_img/d1.jpg": jpg(2, 2), "test_lab/d1.png": one_bit_png([[0, 255], [255, 255]]),
                         "test_img/d2.jpg": jpg(2, 2), "test_lab/d2.png": png(np.array([[0, 255], [0, 0]], np.uint8))})
    result = env.prepare("deepcrack", 2, {"DeepCrack.zip": archive})
    labels = env.data / "DeepCrack/annotations_detectron2/test"
    assert read(labels / "d1.png").tolist() == [[0, 1], [1, 1]] and read(labels / "d2.png").tolist() == [[0, 1], [0, 0]]
    assert "DeepCrack: departure from MESS: 1 of 2 masks are 1-bit PNGs" in result.output
    assert _departures(labels)["departures_from_mess"][0].startswith("1 of 2 masks are 1-bit PNGs")


def test_paxray4_json_split_npy_channels(env):
    import io

    target = np.zeros((166, 2, 2), bool)
    target[0, 0, 0] = target[10, 0, 1] = target[24, 1, 0] = target[163, 1, 1] = True
    buffer = io.BytesIO()
    np.save(buffer, target)
    entries = {"test": [{"image": "images/p1.png", "target": "labels/p1.npy"}],
               "train": [{"image": "images/p2.png", "target": "labels/p2.npy"}]}
    archive = zip_bytes({"paxray.json": json.dumps(entries).encode(), "images/p1.png": png(np.full((2, 2), 9, np.uint8)),
                         "images/p2.png": png(np.zeros((2, 2), np.uint8)), "labels/p1.npy": buffer.getvalue()})
    env.prepare("paxray4", 1, {"paxray_dataset.zip": archive})
    ds = env.data / "paxray_dataset"
    expected = {"lungs": [[1, 0], [0, 0]], "mediastinum": [[0, 1], [0, 0]], "bones": [[0, 0], [1, 0]], "diaphragm": [[0, 0], [0, 1]]}
    for task, values in expected.items():
        assert read(ds / f"annotations_detectron2/test/{task}/p1.png").tolist() == values
    assert read(ds / "images_detectron2/test/p1.png").shape == (2, 2, 3)
    assert not (ds / "labels").exists()


# ------------------------------------------------------------------------------------------ Engineering


def test_corrosion_cs_masks_resaved_unchanged(env):
    top = "Corrosion Condition State Classification/original/Test"
    values = np.array([[0, 1], [2, 3]], np.uint8)
    archive = zip_bytes({f"{top}/images/c1.jpeg": jpg(2, 2), f"{top}/masks/c1.png": palette_png(values)})
    env.prepare("corrosion_cs", 1, {"31729733.zip": archive})
    resaved = Image.open(env.data / f"{top}/masks/c1.png")
    assert resaved.mode == "L" and np.array(resaved).tolist() == values.tolist()


def test_deepcrack_zip_from_github_div255(env):
    archive = zip_bytes({"test_img/d1.jpg": jpg(2, 2), "test_lab/d1.png": png(np.array([[0, 255], [128, 255]], np.uint8)),
                         "train_img/d2.jpg": jpg(2, 2)})
    env.prepare("deepcrack", 1, {"DeepCrack.zip": archive})
    assert read(env.data / "DeepCrack/annotations_detectron2/test/d1.png").tolist() == [[0, 1], [0, 1]]


def test_pst900_thermal_kept_and_inferno_pseudo_colour(env):
    archive = zip_bytes({"PST900_RGBT_Dataset/test/thermal/t1.png": png(np.array([[0, 255]], np.uint8)),
                         "PST900_RGBT_Dataset/test/labels/t1.png": png(np.array([[0, 4]], np.uint8))})
    env.prepare("pst900", 1, {"PST900_RGBT_Dataset.zip": archive})
    pseudo = read(env.data / "PST900_RGBT_Dataset/test/thermal_pseudo/t1.png")
    assert pseudo.tolist() == [[[0, 0, 3], [252, 254, 164]]]  # inferno(0), inferno(255) x 255, truncated


def test_zerowaste_unpacked_as_is(env):
    top = "splits_final_deblurred/test"
    archive = zip_bytes({f"{top}/data/z1.PNG": png(rgb(1, 2, 1)), f"{top}/sem_seg/z1.PNG": png(np.array([[0, 4]], np.uint8))})
    env.prepare("zerowaste_f", 1, {"zerowaste-f-final.zip": archive})
    assert read(env.data / "zerowaste-f" / top / "sem_seg/z1.PNG").tolist() == [[0, 4]]


# ------------------------------------------------------------------------------------------ Agriculture and Biology


def test_suim_bmp_exact_palette(env):
    mask = np.array([[[0, 0, 0], [0, 0, 255], [0, 255, 0], [0, 255, 255]],
                     [[255, 0, 0], [255, 0, 255], [255, 255, 0], [255, 255, 255]]], np.uint8)
    archive = zip_bytes({"TEST/images/s1.jpg": jpg(2, 4), "TEST/masks/s1.bmp": encoded(mask, "BMP")})
    env.prepare("suim", 1, {"TEST.zip": archive})
    assert read(env.data / "SUIM/annotations_detectron2/test/s1.png").tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_cub_200_two_tarballs_split_and_species_index(env):
    images = tar_bytes({
        "CUB_200_2011/images.txt": b"1 001.Black_footed_Albatross/a_1.jpg\n2 002.Laysan_Albatross/b_2.jpg\n",
        "CUB_200_2011/train_test_split.txt": b"1 1\n2 0\n",
        "CUB_200_2011/images/001.Black_footed_Albatross/a_1.jpg": jpg(1, 4),
        "CUB_200_2011/images/002.Laysan_Albatross/b_2.jpg": jpg(1, 4, 1),
        "attributes.txt": b"1 has_bill_shape\n",
    })
    segs = tar_bytes({
        "segmentations/001.Black_footed_Albatross/a_1.png": png(np.zeros((1, 4), np.uint8)),
        "segmentations/002.Laysan_Albatross/b_2.png": png(np.array([[0, 128, 129, 255]], np.uint8)),
    })
    env.prepare("cub_200", 1, {"CUB_200_2011.tgz": images, "segmentations.tgz": segs})
    ds = env.data / "CUB_200_2011"
    assert read(ds / "annotations_detectron2/test/b_2.png").tolist() == [[0, 0, 2, 2]]
    assert (ds / "images_detectron2/test/b_2.jpg").exists() and (ds / "attributes.txt").exists()


def test_cwfid_mess_test_ids_and_swapped_colours(env):
    from catseg_bench.prepare.convert import CWFID_TEST_IDS

    mask = np.array([[[0, 0, 0], [255, 0, 0], [0, 255, 0]]], np.uint8)
    top = "dataset-36290d0912a032f0bd1a5678ed55457ddafde217"  # GitHub's archive of the pinned commit
    files = {f"{top}/README.md": b"cwfid"}
    for i in range(1, 61):
        files[f"{top}/images/{i:03}_image.png"] = png(rgb(1, 3, i))
        files[f"{top}/annotations/{i:03}_annotation.png"] = png(mask)
    env.prepare("cwfid", 21, {"cwfid-dataset.zip": zip_bytes(files)})
    out = env.data / "cwfid/annotations_detectron2/test"
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:03}_annotation.png" for i in CWFID_TEST_IDS]
    assert read(out / "028_annotation.png").tolist() == [[0, 1, 2]]  # red -> 1 'crop seedling', green -> 2 'weed' (MESS)


# ------------------------------------------------------------------------------------------ Training sets

# Stuffthingmaps values (COCO category id - 1) and the train IDs CAT-Seg's prepare_coco_stuff.py gives them:
# person 0 -> 0, unused thing id 11 -> 255, stop sign 12 -> 11, dining table 66 -> 60, toothbrush 89 -> 79,
# unused 90 -> 255, banner 91 -> 80, wood 181 -> 170, 182 (no class) -> 255, unlabelled 255 -> 255.
COCO_STUFF_VALUES = [[0, 11, 12, 66, 89], [90, 91, 181, 182, 255]]
COCO_STUFF_TRAIN_IDS = [[0, 255, 11, 60, 79], [255, 80, 170, 255, 255]]


def coco_stuff_archives() -> dict[str, bytes]:
    """train2017.zip and stuffthingmaps_trainval2017.zip as shipped: `train2017/` at the top of both,
    the label maps also hold a `val2017/` folder (which the train set must not take)."""
    images = zip_bytes({"train2017/000000000009.jpg": jpg(2, 5), "train2017/000000000025.jpg": jpg(2, 5, 1)})
    labels = zip_bytes({
        "train2017/000000000009.png": png(np.array(COCO_STUFF_VALUES, np.uint8)),
        "train2017/000000000025.png": png(np.full((2, 5), 24, np.uint8)),  # giraffe 24 -> 23
        "val2017/000000000139.png": png(np.zeros((2, 5), np.uint8)),
    })
    return {"train2017.zip": images, "stuffthingmaps_trainval2017.zip": labels}


def test_coco_stuff_171_train_ids_in_parallel(env):
    env.prepare("coco_stuff_171", 2, coco_stuff_archives(), jobs=2)
    ds = env.data / "coco-stuff"
    label = Image.open(ds / "annotations_detectron2/train2017/000000000009.png")
    assert label.mode == "L" and np.array(label).tolist() == COCO_STUFF_TRAIN_IDS
    assert (read(ds / "annotations_detectron2/train2017/000000000025.png") == 23).all()
    assert sorted(p.name for p in (ds / "images/train2017").iterdir()) == ["000000000009.jpg", "000000000025.jpg"]
    assert read(ds / "annotations/train2017/000000000009.png").tolist() == COCO_STUFF_VALUES  # kept, as CAT-Seg's layout
    assert not list(ds.glob("**/val2017"))
    assert json.loads((ds / ".bench-prepared.json").read_text())["counts"] == {"coco_stuff_171_t": 2}


def test_coco_stuff_171_by_its_name_counts_pairs_against_the_118287_of_train2017(env, cli):
    from catseg_bench.prepare.verify import check_command
    from catseg_bench.specs import load_specs, training_specs_dir

    for name, data in coco_stuff_archives().items():
        env.server.place(next(f["url"] for f in real_files("coco_stuff_171") if f["name"] == name), data)
    result = cli("prepare", "coco_stuff_171", "--data-root", env.data, "--mirror", env.server.url)
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "record it as sha256" not in output  # digests are offered for recording only once the data verified
    assert "2 image/label pairs, expected 118287" in output
    assert not (env.data / "coco-stuff").exists()  # nothing half-done is published
    work = env.data / ".bench-prepare" / "coco_stuff_171"
    spec = load_specs([training_specs_dir()])["coco_stuff_171"]
    command = check_command(spec).split()
    assert command == ["bench", "datasets", "check", "coco_stuff_171", "--specs", str(training_specs_dir())]
    check = cli(*command[1:], "--data-root", work, "--json")
    assert check.exit_code == 1 and json.loads(check.stdout)["eval_sets"][0]["expected_images"] == 118287
    assert check_command(load_specs()["bdd100k"]) == "bench datasets check bdd100k"
