"""MESS's pixel conversions against hand-computed values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from catseg_bench.errors import BenchError
from catseg_bench.prepare import convert


def test_tiles_are_row_major_and_padded_image_0_label_255():
    image = np.arange(3 * 1030 * 2, dtype=np.uint16).reshape(3, 1030, 2) % 200 + 1  # 3 rows, 1030 cols: 2 tiles
    pieces = convert.tiles(image, pad=0)
    assert len(pieces) == 2 and all(p.shape == (1024, 1024, 2) and p.dtype == np.uint8 for p in pieces)
    assert (pieces[0][:3, :, :] == image[:, :1024]).all() and (pieces[0][3:] == 0).all()
    assert (pieces[1][:3, :6] == image[:, 1024:]).all()
    assert (pieces[1][:3, 6:] == 0).all() and (pieces[1][3:] == 0).all()

    label = np.full((1025, 1, ), 7, dtype=np.int64)  # non-uint8 input, as after MESS's np.vectorize
    pieces = convert.tiles(label, pad=255)
    assert [p.dtype for p in pieces] == [np.uint8, np.uint8]
    assert (pieces[0][:, 0] == 7).all() and (pieces[0][:, 1:] == 255).all()
    assert pieces[1][0, 0] == 7 and (pieces[1].ravel()[1:] == 255).all()  # second row of tiles: one pixel


def test_colour_map_sequential_keeps_red_of_unknown_colours():
    rgb = np.array([[[0, 0, 0], [255, 0, 0], [0, 255, 0], [200, 10, 10], [0, 0, 63]]], dtype=np.uint8)
    assert convert.colours_to_index_inplace(rgb, convert.CWFID_COLOURS).tolist() == [[0, 1, 2, 200, 0]]
    isaid = [(0, (0, 0, 0)), (1, (0, 0, 63)), (15, (0, 100, 155))]
    rgb = np.array([[[0, 0, 63], [0, 100, 155], [0, 100, 156]]], dtype=np.uint8)
    assert convert.colours_to_index_inplace(rgb, isaid).tolist() == [[1, 15, 0]]


def test_exact_colour_lookup_refuses_off_palette_pixels():
    palette = {(0, 0, 0): 0, (255, 255, 255): 7}
    rgb = np.array([[[255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
    assert convert.colours_to_index_exact(rgb, palette, Path("m.bmp")).tolist() == [[7, 0]]
    rgb[0, 1] = (0, 0, 1)
    with pytest.raises(BenchError, match=r"m.bmp: pixel \(1, 0\) has colour \(0, 0, 1\)"):
        convert.colours_to_index_exact(rgb, palette, Path("m.bmp"))


def test_map_values_div255_and_merge_max():
    assert convert.map_values(np.array([[0, 1, 255]], np.uint8), {0: 255, 1: 0, 255: 255}, Path("x")).tolist() == [[255, 0, 255]]
    with pytest.raises(BenchError, match=r"label values \[2\] have no mapping"):
        convert.map_values(np.array([[2]], np.uint8), {0: 0}, Path("x"))
    assert convert.div255(np.array([0, 128, 254, 255], np.uint8)).tolist() == [0, 0, 0, 1]
    a = np.array([[0, 3], [5, 0]], np.uint8)
    b = np.array([[2, 1], [0, 0]], np.uint8)
    assert convert.merge_max([a, b]).tolist() == [[2, 3], [5, 0]]


def test_sentinel2_normalisation_and_irrg_takes_nir_red_blue():
    bands = np.zeros((13, 1, 2), dtype=np.uint16)
    bands[:, 0, 0] = np.arange(13) * 1000
    bands[:, 0, 1] = 60000
    norm = convert.sentinel2_to_uint8(bands)
    assert norm.shape == (1, 2, 13)
    # band 7 (B8): 7000 / (3981.96268494 + 2500.47885249) = 1.0799 -> clipped to 1 -> 255
    # band 3 (B4): 3000 / (3418.90147615 + 2811.78109878) = 0.48150 -> 122.78 -> 122
    # band 1 (B2): 1000 / (3758.07467509 + 2794.09579088) = 0.15262 -> 38.92 -> 38
    assert convert.composite(norm, convert.WORLDFLOODS_IRRG)[0, 0].tolist() == [255, 122, 38]
    # band 2 (B3): 2000 / (3238.08247208 + 2549.4940614) = 0.34557 -> 88.12 -> 88
    assert convert.composite(norm, convert.WORLDFLOODS_RGB)[0, 0].tolist() == [122, 88, 38]
    assert (norm[0, 1] == 255).all()
    with pytest.raises(BenchError, match="13 Sentinel-2 bands"):
        convert.sentinel2_to_uint8(np.zeros((3, 1, 1), np.uint16))


def test_paxray_takes_channels_0_10_24_163():
    target = np.zeros((166, 2, 2), dtype=bool)
    target[0, 0, 0] = target[10, 0, 1] = target[24, 1, 0] = target[163, 1, 1] = True
    target[1] = target[162] = target[164] = True  # neighbours must not leak in
    out = convert.paxray_channels(target)
    assert list(out) == ["lungs", "mediastinum", "bones", "diaphragm"]
    assert out["lungs"].tolist() == [[1, 0], [0, 0]]
    assert out["mediastinum"].tolist() == [[0, 1], [0, 0]]
    assert out["bones"].tolist() == [[0, 0], [1, 0]]
    assert out["diaphragm"].tolist() == [[0, 0], [0, 1]]
    assert out["lungs"].dtype == np.uint8


def test_split_rules():
    names = [f"Image_{i:02d}{s}.jpg" for i in range(1, 15) for s in "RL"]
    test = convert.chase_db1_test(names)
    assert len(test) == 20 and test[0] == "Image_05L.jpg" and "Image_04R.jpg" not in test
    assert len(convert.CWFID_TEST_IDS) == 21 and 28 in convert.CWFID_TEST_IDS
    assert convert.mhp_split("7.jpg", {"7.jpg"}, {"7.jpg"}) == "test"
    assert convert.mhp_split("8.jpg", set(), {"8.jpg"}) == "train"
    assert convert.mhp_split("9.jpg", set(), {"8.jpg"}) == "val"
    images = "1 001.A/a.jpg\n2 001.A/b.jpg\n3 002.B/c.jpg\n"
    split = "1 1\n2 0\n3 0\n"
    assert convert.cub_test_images(images, split) == ["001.A/b.jpg", "002.B/c.jpg"]


def test_train_id_table_maps_listed_values_and_sends_every_other_value_to_255():
    table = convert.train_id_table([0, 12, 91])  # train IDs 0, 1, 2
    assert table.dtype == np.uint8 and table.shape == (256,)
    label = np.array([[0, 11, 12], [91, 255, 182]], np.uint8)
    assert convert.to_train_ids(label, table, Path("x.png")).tolist() == [[0, 255, 1], [2, 255, 255]]
    with pytest.raises(BenchError, match="x.png: expected a single-channel 8-bit label map"):
        convert.to_train_ids(np.zeros((2, 2, 3), np.uint8), table, Path("x.png"))
    with pytest.raises(BenchError, match="got uint16"):
        convert.to_train_ids(np.zeros((2, 2), np.uint16), table, Path("x.png"))
