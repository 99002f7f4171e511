"""Write the tiny in-domain sources under sources/, in each dataset's original format (see README.md).

Deterministic (fixed seeds); rerun only to change the fixture, then rerun run_official.py.
Needs numpy, Pillow, scipy (the PC-459 .mat files, MATLAB v5 as scipy.io.savemat writes them) and
pycocotools (the PC-59 RLE strings of trainval_merged.json).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from pycocotools import mask as rle

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources"


def _image(h: int, w: int, seed: int) -> Image.Image:
    """A smooth RGB picture (small as JPEG) with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) * 127 // max(h + w - 2, 1)], -1)
    return Image.fromarray(np.clip(base + rng.integers(-6, 7, size=(h, w, 3)), 0, 255).astype(np.uint8))


def _blocks(h: int, w: int, values: list[int], seed: int) -> np.ndarray:
    """Rectangular regions of `values` (coarse, so the PNGs stay small)."""
    rng = np.random.default_rng(seed)
    out = np.full((h, w), values[0], dtype=np.int64)
    for value in values[1:]:
        y0, x0 = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
        y1, x1 = int(rng.integers(y0 + 1, h)), int(rng.integers(x0 + 1, w))
        out[y0:y1, x0:x1] = value
    return out


def ade20k_full() -> None:
    """ADE20K_2021_17_01: index_ade20k.pkl + <name>.jpg / <name>_seg.png (R/10*256+G = class id)."""
    top = SOURCES / "ADE20K_2021_17_01"
    # (split folder, scene folder, file stem, height, width): the second is above 512 on its short side.
    entries = [
        ("validation", "abbey", "ADE_val_00000001", 30, 40),
        ("validation", "street", "ADE_val_00000002", 513, 600),
        ("validation", "kitchen", "ADE_val_00000003", 700, 520),
        ("training", "abbey", "ADE_train_00000001", 20, 24),
    ]
    # Full-ADE ids: wall (2978 -> train id 0), building (312 -> 1), adding machine (3148 -> 846),
    # ashcan (64 -> 127), and three ids outside the 847 (1, 3000, 5) plus 0 (unlabelled).
    ids = [2978, 312, 3148, 64, 1, 3000, 5, 0]
    folders, names = [], []
    for index, (split, scene, stem, h, w) in enumerate(entries):
        folder = top / "images" / "ADE" / split / scene
        folder.mkdir(parents=True, exist_ok=True)
        _image(h, w, index).save(folder / f"{stem}.jpg", quality=60)
        classes = _blocks(h, w, ids[index % 3:] + ids[:index % 3], seed=10 + index)
        seg = np.zeros((h, w, 3), dtype=np.uint8)
        seg[..., 0] = (classes // 256) * 10 + (classes % 7)  # R/10 floors away the 0..6 added here
        seg[..., 1] = classes % 256
        seg[..., 2] = (classes * 3) % 256  # instance channel, ignored
        Image.fromarray(seg).save(folder / f"{stem}_seg.png")
        folders.append(str(Path("ADE20K_2021_17_01") / "images" / "ADE" / split / scene))
        names.append(f"{stem}.jpg")
    index = {"folder": folders, "filename": names, "objectnames": ["-", "wall", "building"],
             "objectPresence": np.zeros((3, len(names)), dtype=np.uint8)}
    with (top / "index_ade20k.pkl").open("wb") as handle:
        pickle.dump(index, handle)


def pascal_context() -> None:
    """VOC2010: trainval/<id>.mat (LabelMap 1..459), pascalcontext_val.txt, labels.txt, trainval_merged.json."""
    voc = SOURCES / "VOCdevkit" / "VOC2010"
    (voc / "trainval").mkdir(parents=True, exist_ok=True)
    (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
    sizes = {"2008_000002": (7, 9), "2008_000003": (6, 5), "2008_000007": (5, 8), "2008_000008": (4, 6)}
    for seed, (stem, (h, w)) in enumerate(sizes.items()):
        _image(h, w, 20 + seed).save(voc / "JPEGImages" / f"{stem}.jpg")
    # PC-459: three .mat files; 2008_000007 is listed in the val list but has none (the official skips it).
    for seed, stem in enumerate(["2008_000002", "2008_000003", "2008_000008"]):
        h, w = sizes[stem]
        label_map = _blocks(h, w, [459, 1, 2, 458, 230], seed=30 + seed).astype(np.uint16)
        scipy.io.savemat(voc / "trainval" / f"{stem}.mat", {"LabelMap": label_map})
    (voc / "pascalcontext_val.txt").write_text("2008_000002\n2008_000003\n2008_000007\n")
    (voc / "labels.txt").write_text("1: accordion\n2: aeroplane\n3: airconditioner\n458: wood\n459: wool\n")
    # PC-59: val images 2008_000002 / _000003 / _000007, a train image; category ids are labels.txt ids.
    images = [{"image_id": i + 1, "file_name": f"{stem}.jpg", "height": sizes[stem][0], "width": sizes[stem][1],
               "phase": "train" if stem == "2008_000008" else "val"} for i, stem in enumerate(sizes)]
    annos = []
    rng = np.random.default_rng(40)
    # 2 aeroplane -> 0, 9 bag -> 1, 458 wood -> 58, 1 accordion (not among the 59) -> 255, 115 -> 23.
    categories = [2, 9, 458, 1, 115]
    for image in images:
        h, w = image["height"], image["width"]
        for n in range(3):
            region = np.zeros((h, w), dtype=np.uint8, order="F")
            y0, x0 = int(rng.integers(0, h - 1)), int(rng.integers(0, w - 1))
            region[y0:int(rng.integers(y0 + 1, h + 1)), x0:int(rng.integers(x0 + 1, w + 1))] = 1
            encoded = rle.encode(region)
            encoded["counts"] = encoded["counts"].decode("ascii")
            annos.append({"image_id": image["image_id"], "category_id": categories[(image["image_id"] + n) % 5],
                          "segmentation": encoded, "id": len(annos) + 1})
    (voc / "trainval_merged.json").write_text(json.dumps({"images": images, "annos_segmentation": annos,
                                                          "categories": [{"category_id": c} for c in categories]}))


def pascal_voc() -> None:
    """VOC2012: SegmentationClassAug/<id>.png (0 background, 1..20, 255 boundary) + ImageSets/Segmentation/val.txt."""
    voc = SOURCES / "VOCdevkit" / "VOC2012"
    for folder in ("SegmentationClassAug", "JPEGImages", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    stems = ["2007_000033", "2007_000042", "2007_000061", "2007_000032"]
    for seed, stem in enumerate(stems):
        h, w = 6 + seed, 7
        values = [0] if stem == "2007_000061" else [0, 1, 20, 255, 7, 254]  # 2007_000061: background only
        Image.fromarray(_blocks(h, w, values, seed=50 + seed).astype(np.uint8)).save(voc / "SegmentationClassAug" / f"{stem}.png")
        _image(h, w, 60 + seed).save(voc / "JPEGImages" / f"{stem}.jpg")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n2007_000042\n2007_000061\n")


def ade20k_150() -> None:
    """ADEChallengeData2016: annotations/validation/*.png (0 other, 1..150), images/validation/*.jpg."""
    top = SOURCES / "ADEChallengeData2016"
    for split in ("validation", "training"):
        (top / "annotations" / split).mkdir(parents=True, exist_ok=True)
        (top / "images" / split).mkdir(parents=True, exist_ok=True)
    for seed, (split, stem) in enumerate([("validation", "ADE_val_00000001"), ("validation", "ADE_val_00000002"),
                                          ("training", "ADE_train_00000001")]):
        h, w = 5 + seed, 6
        Image.fromarray(_blocks(h, w, [0, 1, 150, 75, 2], seed=70 + seed).astype(np.uint8)).save(
            top / "annotations" / split / f"{stem}.png")
        _image(h, w, 80 + seed).save(top / "images" / split / f"{stem}.jpg")


if __name__ == "__main__":
    shutil.rmtree(SOURCES, ignore_errors=True)
    ade20k_full()
    pascal_context()
    pascal_voc()
    ade20k_150()
    print(f"wrote {sum(1 for p in SOURCES.rglob('*') if p.is_file())} files under {SOURCES}")
