"""One recipe per MESS dataset, reproducing ``mess/prepare_datasets/prepare_<dataset>.py``, and one
per training set (COCO-Stuff-171, reproducing CAT-Seg's ``datasets/prepare_coco_stuff.py``).

A recipe gets a :class:`RecipeContext` whose ``root`` is a work folder shaped like the data root;
it unpacks its sources where MESS unpacks them and writes MESS's ``*_detectron2`` folders beside
them, so the result is MESS's prepared layout (the spec's ``[data]`` section). Per-image work
runs in worker processes through ``ctx.map``; workers are module-level functions taking one item.

Where MESS's own download step puts data somewhere its conversion step does not look (the
``git clone`` + ``mv`` of ATLANTIS and CWFID nest one folder too deep), we follow the layout the
conversion and the registration expect. Path rewrites that MESS applies to a whole path string
(``str(path).replace('images', 'masks')``) are applied to the path inside the dataset folder only,
so a data root whose own path contains such a word cannot be rewritten by accident.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFile

from catseg_bench.errors import BenchError
from catseg_bench.prepare import INSTALL_EXTRA, convert
from catseg_bench.prepare.pipeline import RecipeContext

RECIPES: dict[str, Callable[[RecipeContext], None]] = {}


def recipe(name: str):
    def register(fn: Callable[[RecipeContext], None]) -> Callable[[RecipeContext], None]:
        RECIPES[name] = fn
        return fn

    return register


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise BenchError(f"{path}: cannot read the image ({err}); the source is damaged or incomplete") from None


def _array(path: Path) -> np.ndarray:
    return np.array(_open(path))


def _mkdirs(*dirs: Path) -> None:
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise BenchError(f"{path}: {what} not found after unpacking; the archive does not have the layout the preparation script expects")
    return path


# ---------------------------------------------------------------------------------------------- General


def _bdd_label(item: tuple[Path, Path]) -> int:
    src, out_dir = item
    Image.fromarray(_array(src)).save(out_dir / src.name)  # palette indices are the train ids
    return 1


@recipe("bdd100k")
def bdd100k(ctx: RecipeContext) -> None:
    ctx.extract("bdd100k_images_10k.zip", ".")
    ctx.extract("bdd100k_sem_seg_labels_trainval.zip", ".")
    ds = ctx.root / "bdd100k"
    out = ds / "annotations_detectron2" / "val"
    _mkdirs(out)
    masks = sorted(_require(ds / "labels/sem_seg/colormaps/val", "labels/sem_seg/colormaps/val").glob("*.png"))
    ctx.map(_bdd_label, [(m, out) for m in masks], "BDD100K labels")


DARK_ZURICH_LABEL_IDS = (0, 7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
_DARK_ZURICH_MAPPING = {label: index for index, label in enumerate(DARK_ZURICH_LABEL_IDS)} | {255: 255}
# ATLANTIS masks: grey g in 1..56 is class g - 1; 0 is unlabelled.
_ATLANTIS_MAPPING = {grey: grey - 1 for grey in range(1, 57)} | {0: 255}


def _dark_zurich_label(item: tuple[Path, Path]) -> int:
    src, out_dir = item
    mask = _array(src)
    invalid = _array(src.with_name(src.name.replace("labelIds", "invGray")))
    mask[invalid == 255] = 255
    Image.fromarray(convert.map_values(mask, _DARK_ZURICH_MAPPING, src)).save(out_dir / src.name)
    return 1


@recipe("dark_zurich")
def dark_zurich(ctx: RecipeContext) -> None:
    ctx.extract("Dark_Zurich_val_anon.zip", "Dark_Zurich")
    ds = ctx.root / "Dark_Zurich"
    out = ds / "annotations_detectron2" / "val"
    _mkdirs(out)
    masks = sorted(_require(ds / "gt/val/night/GOPR0356", "gt/val/night/GOPR0356").glob("*labelIds.png"))
    ctx.map(_dark_zurich_label, [(m, out) for m in masks], "Dark Zurich labels")


def _mhp_item(item: tuple[Path, Path, str]) -> int:
    image_path, ds, split = item
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as MESS: some MHP v1 JPEGs are truncated
    try:
        image = _open(image_path).convert("RGB")
        image.save(ds / "images_detectron2" / split / image_path.name)
        # MESS globs f"{id}*.png", so id "1" would also take "10_..." masks; kept as is.
        masks = [_array(p) for p in sorted((ds / "annotations").glob(f"{image_path.stem}*.png"))]
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    if not masks:
        raise BenchError(f"{ds / 'annotations'}: no part masks for {image_path.name}")
    try:
        merged = convert.merge_max(masks)
    except ValueError as err:
        raise BenchError(f"{image_path}: its part masks differ in size ({err})") from None
    if merged.ndim != 2 or merged.shape != (image.size[1], image.size[0]):
        raise BenchError(f"{image_path}: merged mask of shape {merged.shape} does not match the image {image.size}")
    Image.fromarray(merged).save(ds / "annotations_detectron2" / split / f"{image_path.stem}.png")
    return 1


@recipe("mhp_v1")
def mhp_v1(ctx: RecipeContext) -> None:
    ctx.extract("LV-MHP-v1.zip", ".")
    ds = ctx.root / "LV-MHP-v1"
    for split in ("train", "val", "test"):
        _mkdirs(ds / "images_detectron2" / split, ds / "annotations_detectron2" / split)
    test_names = set(_require(ds / "test_list.txt", "test_list.txt").read_text().splitlines())
    train_names = set(_require(ds / "train_list.txt", "train_list.txt").read_text().splitlines()[:3000])
    images = sorted((ds / "images").glob("*.jpg"))
    items = [(p, ds, convert.mhp_split(p.name, test_names, train_names)) for p in images]
    ctx.map(_mhp_item, items, "MHP v1 images")


@recipe("foodseg103")
def foodseg103(ctx: RecipeContext) -> None:
    ctx.extract("FoodSeg103.zip", ".")


def _atlantis_item(item: tuple[Path, Path]) -> int:
    image_path, ds = item
    split = image_path.parent.parent.name
    _open(image_path).convert("RGB").save(ds / "images_detectron2" / split / image_path.name)
    relative = image_path.relative_to(ds).as_posix().replace("images", "masks").replace("jpg", "png")
    mask = convert.map_values(_array(ds / relative), _ATLANTIS_MAPPING, ds / relative)
    Image.fromarray(mask).save(ds / "annotations_detectron2" / split / image_path.name.replace("jpg", "png"))
    return 1


@recipe("atlantis")
def atlantis(ctx: RecipeContext) -> None:
    ctx.extract("atlantis.tar.gz", "atlantis", strip=1, subdir="atlantis")
    ds = ctx.root / "atlantis"
    _mkdirs(ds / "images_detectron2" / "test", ds / "annotations_detectron2" / "test")
    images = sorted(_require(ds / "images" / "test", "images/test").glob("*/*.jpg"))
    ctx.map(_atlantis_item, [(p, ds) for p in images], "ATLANTIS images")


VOC_TO_DRAM = {0: 11, 1: 11, 2: 11, 3: 0, 4: 1, 5: 2, 6: 11, 7: 11, 8: 3, 9: 4, 10: 5, 11: 11, 12: 6,
               13: 7, 14: 11, 15: 8, 16: 9, 17: 10, 18: 11, 19: 11, 20: 11, 255: 255}


def _dram_item(item: tuple[Path, Path]) -> int:
    image_path, ds = item
    name = f"{image_path.parent.name}_{image_path.name}"
    _open(image_path).convert("RGB").save(ds / "images_detectron2" / "test" / name)
    relative = image_path.relative_to(ds).as_posix().replace("test", "labels").replace(".jpg", ".png")
    mask = convert.map_values(_array(ds / relative), VOC_TO_DRAM, ds / relative)
    Image.fromarray(mask).save(ds / "annotations_detectron2" / "test" / name.replace(".jpg", ".png"))
    return 1


@recipe("dram")
def dram(ctx: RecipeContext) -> None:
    ctx.extract("DRAM_processed.zip", ".bench-scratch")
    ctx.extract(".bench-scratch/DRAM_processed.rar", ".")
    ctx.remove_after_verify(ctx.root / ".bench-scratch")
    ds = ctx.root / "DRAM_processed"
    _mkdirs(ds / "images_detectron2" / "test", ds / "annotations_detectron2" / "test")
    images = sorted(_require(ds / "test", "test").glob("**/*.jpg"))
    ctx.map(_dram_item, [(p, ds) for p in images], "DRAM images")


# ---------------------------------------------------------------------------------------------- Earth Monitoring

ISAID_COLOURS = (
    (0, (0, 0, 0)), (1, (0, 0, 63)), (2, (0, 63, 63)), (3, (0, 63, 0)), (4, (0, 63, 127)),
    (5, (0, 63, 191)), (6, (0, 63, 255)), (7, (0, 127, 63)), (8, (0, 127, 127)), (9, (0, 0, 127)),
    (10, (0, 0, 191)), (11, (0, 0, 255)), (12, (0, 191, 127)), (13, (0, 127, 191)), (14, (0, 127, 255)),
    (15, (0, 100, 155)),
)


def _isaid_item(item: tuple[Path, Path, str]) -> int:
    mask_path, ds, image_id = item
    image = _array(ds / "val" / "images" / f"{image_id}.png")
    mask = convert.colours_to_index_inplace(_array(mask_path), ISAID_COLOURS)
    image_tiles = convert.tiles(image, pad=convert.IMAGE_PAD)
    mask_tiles = convert.tiles(mask, pad=convert.LABEL_PAD)
    for index, (image_tile, mask_tile) in enumerate(zip(image_tiles, mask_tiles)):
        Image.fromarray(image_tile).save(ds / "images_detectron2" / "val" / f"{image_id}_{index}.png")
        Image.fromarray(mask_tile).save(ds / "annotations_detectron2" / "val" / f"{image_id}_{index}.png")
    return 1


@recipe("isaid")
def isaid(ctx: RecipeContext) -> None:
    ctx.extract(ctx.source("isaid_val_images") / "part1.zip", "isaid/val")
    ctx.extract(ctx.source("isaid_val_masks") / "images.zip", "isaid/raw_val")
    ds = ctx.root / "isaid"
    _mkdirs(ds / "images_detectron2" / "val", ds / "annotations_detectron2" / "val")
    # MESS loops over the sorted masks and writes tiles named by id, so for an id with several
    # masks the last one in sorted order wins; we convert only that one.
    by_id: dict[str, Path] = {}
    for mask_path in sorted(_require(ds / "raw_val" / "images", "raw_val/images").glob("*.png")):
        by_id[mask_path.name.split("_")[0]] = mask_path
    ctx.map(_isaid_item, [(p, ds, i) for i, p in by_id.items()], "iSAID tiles")


POTSDAM_TEST = tuple(f"top_potsdam_{t}" for t in (
    "2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13", "6_14", "6_15", "7_13"))
POTSDAM_COLOURS = ((0, (255, 255, 255)), (1, (0, 0, 255)), (2, (0, 255, 255)), (3, (0, 255, 0)),
                   (4, (255, 255, 0)), (5, (255, 0, 0)))


def _potsdam_item(item: tuple[Path, Path]) -> int:
    rgb_path, ds = item
    image_id = rgb_path.stem[:-4]
    images = ds / "images_detectron2" / "test"
    convert.save_tiles(np.array(_open(rgb_path).convert("RGB")), images / "rgb", image_id, ".png", convert.IMAGE_PAD)
    irrg_name = rgb_path.name.replace("RGB", "IRRG")
    convert.save_tiles(_array(ds / "3_Ortho_IRRG" / irrg_name), images / "irrg", image_id, ".png", convert.IMAGE_PAD)
    label = _array(ds / "Labels" / rgb_path.name.replace("RGB", "label"))
    label = (label > 128).astype(np.uint8) * 255  # some labels have graded edges
    mask = convert.colours_to_index_inplace(label, POTSDAM_COLOURS)
    convert.save_tiles(mask, ds / "annotations_detectron2" / "test", image_id, ".png", convert.LABEL_PAD)
    return 1


@recipe("isprs_potsdam")
def isprs_potsdam(ctx: RecipeContext) -> None:
    ctx.extract("Potsdam.zip", "ISPRS_Potsdam")
    ds = ctx.root / "ISPRS_Potsdam"
    ctx.extract("ISPRS_Potsdam/Potsdam/2_Ortho_RGB.zip", "ISPRS_Potsdam")
    ctx.extract("ISPRS_Potsdam/Potsdam/3_Ortho_IRRG.zip", "ISPRS_Potsdam")
    ctx.extract("ISPRS_Potsdam/Potsdam/5_Labels_all.zip", "ISPRS_Potsdam/Labels")
    shutil.rmtree(ds / "Potsdam", ignore_errors=True)
    images = ds / "images_detectron2" / "test"
    _mkdirs(images / "rgb", images / "irrg", ds / "annotations_detectron2" / "test")
    tifs = sorted(_require(ds / "2_Ortho_RGB", "2_Ortho_RGB").glob("*.tif"))
    ctx.map(_potsdam_item, [(p, ds) for p in tifs if p.stem[:-4] in POTSDAM_TEST], "ISPRS Potsdam tiles")


def read_sentinel2(path: Path) -> np.ndarray:
    """A multi-band GeoTIFF as (bands, H, W), like rasterio's ``read()``."""
    try:
        import tifffile
    except ImportError:
        raise BenchError(f"reading the Sentinel-2 GeoTIFFs needs tifffile: {INSTALL_EXTRA}") from None

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
    except (ValueError, tifffile.TiffFileError) as err:
        hint = " (`pip install imagecodecs` adds the TIFF compressions tifffile lacks)" if "imagecodecs" in str(err) else ""
        raise BenchError(f"{path}: cannot read the GeoTIFF ({err}){hint}") from None
    band_axis = next((axes.index(a) for a in "SCIQ" if a in axes), None)
    if data.ndim != 3 or band_axis is None:
        raise BenchError(f"{path}: expected a multi-band image, got axes {axes} and shape {data.shape}")
    return np.moveaxis(data, band_axis, 0)


def _worldfloods_item(item: tuple[Path, Path]) -> int:
    s2_path, ds = item
    image_id = s2_path.stem
    norm = convert.sentinel2_to_uint8(read_sentinel2(s2_path))
    images = ds / "images_detectron2" / "test"
    convert.save_tiles(convert.composite(norm, convert.WORLDFLOODS_RGB), images / "rgb", image_id, ".png", convert.IMAGE_PAD)
    convert.save_tiles(convert.composite(norm, convert.WORLDFLOODS_IRRG), images / "irrg", image_id, ".png", convert.IMAGE_PAD)
    gt_path = ds / s2_path.relative_to(ds).as_posix().replace("S2", "gt")
    mask = convert.map_values(_array(gt_path), convert.WORLDFLOODS_LABELS, gt_path)
    convert.save_tiles(mask, ds / "annotations_detectron2" / "test", image_id, ".png", convert.LABEL_PAD)
    return 1


@recipe("worldfloods")
def worldfloods(ctx: RecipeContext) -> None:
    ctx.extract("worldfloods_test", "WorldFloods/test")
    ds = ctx.root / "WorldFloods"
    images = ds / "images_detectron2" / "test"
    _mkdirs(images / "rgb", images / "irrg", ds / "annotations_detectron2" / "test")
    tifs = sorted(_require(ds / "test" / "S2", "test/S2").glob("*.tif"))
    ctx.map(_worldfloods_item, [(p, ds) for p in tifs], "WorldFloods tiles")


def _floodnet_item(item: tuple[Path, Path]) -> int:
    image_path, ds = item
    image_id = image_path.stem
    image = np.array(_open(image_path).convert("RGB"))
    convert.save_tiles(image, ds / "images_detectron2" / "test", image_id, ".jpg", convert.IMAGE_PAD)
    mask_path = image_path.parent.parent / "test-label-img" / f"{image_id}_lab.png"
    convert.save_tiles(_array(mask_path), ds / "annotations_detectron2" / "test", image_id, ".png", convert.LABEL_PAD)
    return 1


@recipe("floodnet")
def floodnet(ctx: RecipeContext) -> None:
    ctx.extract("FloodNet-Supervised_v1.0", "FloodNet-Supervised_v1.0", strip=_wrapper_depth(ctx, "FloodNet-Supervised_v1.0"))
    ds = ctx.root / "FloodNet-Supervised_v1.0"
    _mkdirs(ds / "images_detectron2" / "test", ds / "annotations_detectron2" / "test")
    images = sorted(_require(ds / "test" / "test-org-img", "test/test-org-img").glob("*.jpg"))
    ctx.map(_floodnet_item, [(p, ds) for p in images], "FloodNet tiles")


def _wrapper_depth(ctx: RecipeContext, name: str) -> int:
    """A manual source given as a zip of the folder `name` holds it as its top folder; a placed folder does not."""
    return 0 if ctx.source(name).is_dir() else 1


UAVID_GREYS = {0: 0, 34: 5, 38: 1, 57: 7, 75: 3, 79: 6, 90: 2, 113: 4}


def _uavid_item(item: tuple[Path, Path]) -> int:
    image_path, ds = item
    image_id = f"{image_path.parent.parent.name}_{image_path.stem}"
    image = np.array(_open(image_path).convert("RGB"))
    convert.save_tiles(image, ds / "images_detectron2" / "val", image_id, ".png", convert.IMAGE_PAD)
    label_path = image_path.parent.parent / "Labels" / image_path.name
    grey = np.array(_open(label_path).convert("L"))  # PIL's ITU-R 601-2 luma, as MESS
    mask = convert.map_values(grey, UAVID_GREYS, label_path)
    convert.save_tiles(mask, ds / "annotations_detectron2" / "val", image_id, ".png", convert.LABEL_PAD)
    return 1


@recipe("uavid")
def uavid(ctx: RecipeContext) -> None:
    ctx.extract("uavid_v1.5_official_release_image.zip", "uavid_v1.5")
    ds = ctx.root / "uavid_v1.5"
    wrapper = ds / "uavid_v1.5_official_release_image"
    if wrapper.is_dir():
        for child in wrapper.iterdir():
            child.rename(ds / child.name)
        wrapper.rmdir()
    _mkdirs(ds / "images_detectron2" / "val", ds / "annotations_detectron2" / "val")
    images = sorted(_require(ds / "uavid_val", "uavid_val").glob("*/Images/*.png"))
    ctx.map(_uavid_item, [(p, ds) for p in images], "UAVid tiles")


# ---------------------------------------------------------------------------------------------- Medical Sciences


def _one_bit_departure(ctx: RecipeContext, kept: int, total: int) -> None:
    """Say and record that `kept` of `total` masks were 1-bit PNGs whose foreground :func:`convert.div255`
    kept, where MESS's ``np.uint8(mask / 255)`` turns it into background."""
    if kept:
        ctx.depart(f"{kept} of {total} masks are 1-bit PNGs: their foreground is kept as class 1, where MESS's "
                   "np.uint8(mask / 255) would turn it into class 0 (no foreground pixel left)")


def _kvasir_item(item: tuple[str, Path]) -> int:
    image_id, ds = item
    _open(ds / "images" / f"{image_id}.jpg").convert("RGB").save(ds / "images_detectron2" / "test" / f"{image_id}.png", "PNG")
    mask = _array(ds / "masks" / f"{image_id}.png")
    if mask.ndim != 3:  # a 1-bit mask included: MESS's [:, :, 0] fails on it too
        raise BenchError(f"{ds / 'masks' / f'{image_id}.png'}: expected an RGB mask (MESS takes channel 0)")
    Image.fromarray(convert.div255(mask[:, :, 0])).save(ds / "annotations_detectron2" / "test" / f"{image_id}.png", "PNG")
    return 1


@recipe("kvasir_instrument")
def kvasir_instrument(ctx: RecipeContext) -> None:
    ctx.extract("kvasir-instrument.zip", ".")
    ds = ctx.root / "kvasir-instrument"
    for inner in ("images.tar.gz", "masks.tar.gz"):
        ctx.extract(f"kvasir-instrument/{inner}", "kvasir-instrument")
        (ds / inner).unlink(missing_ok=True)
    _mkdirs(ds / "images_detectron2" / "test", ds / "annotations_detectron2" / "test")
    ids = [line.rstrip() for line in _require(ds / "test.txt", "test.txt").read_text().splitlines()]
    ctx.map(_kvasir_item, [(i, ds) for i in ids if i], "Kvasir-Instrument images")


def _chase_item(item: tuple[Path, Path]) -> int:
    image_path, ds = item
    _open(image_path).convert("RGB").save(ds / "images_detectron2" / "test" / image_path.name)
    # MESS only casts to uint8 (its comment says /255): right for 0/1 (1-bit) masks, kept as is.
    mask = _array(ds / f"{image_path.stem}_1stHO.png").astype(np.uint8)
    Image.fromarray(mask).save(ds / "annotations_detectron2" / "test" / f"{image_path.stem}.png")
    return 1


@recipe("chase_db1")
def chase_db1(ctx: RecipeContext) -> None:
    ctx.extract("CHASEDB1.zip", "CHASEDB1")
    ds = ctx.root / "CHASEDB1"
    _mkdirs(ds / "images_detectron2" / "test", ds / "annotations_detectron2" / "test")
    test = convert.chase_db1_test([p.name for p in ds.glob("*.jpg")])
    ctx.map(_chase_item, [(ds / name, ds) for name in test], "CHASE DB1 images")


CRYONUSEG_MASKS = ("Annotator 1 (biologist second round of manual marks up)/"
                   "Annotator 1 (biologist second round of manual marks up)/mask binary")


def _cryonuseg_item(item: tuple[Path, Path]) -> int:
    image_path, ds = item
    _open(image_path).convert("RGB").save(ds / "images_detectron2" / f"{image_path.stem}.png", "PNG")
    mask = _array(ds / CRYONUSEG_MASKS / f"{image_path.stem}.png")
    Image.fromarray(convert.div255(mask)).save(ds / "annotations_detectron2" / f"{image_path.stem}.png")
    return int(convert.is_one_bit(mask))  # counts the departures from MESS


@recipe("cryonuseg")
def cryonuseg(ctx: RecipeContext) -> None:
    ctx.extract("archive.zip", "CryoNuSeg")
    ds = ctx.root / "CryoNuSeg"
    _mkdirs(ds / "images_detectron2", ds / "annotations_detectron2")
    images = sorted(_require(ds / "tissue images", "'tissue images'").glob("*.tif"))
    _one_bit_departure(ctx, ctx.map(_cryonuseg_item, [(p, ds) for p in images], "CryoNuSeg images"), len(images))


def _paxray_item(item: tuple[dict, Path]) -> int:
    entry, ds = item
    name = entry["image"][7:]  # drops "images/"
    _open(ds / entry["image"]).convert("RGB").save(ds / "images_detectron2" / "test" / name)
    try:
        target = np.load(ds / entry["target"])
    except (OSError, ValueError) as err:
        raise BenchError(f"{ds / entry['target']}: cannot read the target array ({err})") from None
    for task, mask in convert.paxray_channels(target).items():
        Image.fromarray(mask).save(ds / "annotations_detectron2" / "test" / task / name)
    return 1


@recipe("paxray4")
def paxray4(ctx: RecipeContext) -> None:
    ctx.extract("paxray_dataset.zip", "paxray_dataset")
    ds = ctx.root / "paxray_dataset"
    _mkdirs(ds / "images_detectron2" / "test", *(ds / "annotations_detectron2" / "test" / t for t in convert.PAXRAY_CHANNELS.values()))
    entries = json.loads(_require(ds / "paxray.json", "paxray.json").read_text())["test"]
    ctx.map(_paxray_item, [(e, ds) for e in entries], "PAXRay images")
    ctx.remove_after_verify(ds / "labels")  # as MESS, to save disk


# ---------------------------------------------------------------------------------------------- Engineering


def _resave(path: Path) -> int:
    Image.fromarray(_array(path)).save(path)
    return 1


@recipe("corrosion_cs")
def corrosion_cs(ctx: RecipeContext) -> None:
    ctx.extract("31729733.zip", ".")
    ds = ctx.root / "Corrosion Condition State Classification"
    masks = sorted(_require(ds / "original/Test/masks", "original/Test/masks").glob("*.png"))
    ctx.map(_resave, masks, "Corrosion CS masks")


def _deepcrack_item(item: tuple[Path, Path]) -> int:
    mask_path, out_dir = item
    mask = _array(mask_path)
    Image.fromarray(convert.div255(mask)).save(out_dir / mask_path.name)
    return int(convert.is_one_bit(mask))  # counts the departures from MESS


@recipe("deepcrack")
def deepcrack(ctx: RecipeContext) -> None:
    ctx.extract("DeepCrack.zip", "DeepCrack")
    ds = ctx.root / "DeepCrack"
    out = ds / "annotations_detectron2" / "test"
    _mkdirs(out)
    masks = sorted(_require(ds / "test_lab", "test_lab").glob("*.png"))
    _one_bit_departure(ctx, ctx.map(_deepcrack_item, [(m, out) for m in masks], "DeepCrack masks"), len(masks))


def _pst900_item(item: tuple[Path, Path]) -> int:
    thermal_path, out_dir = item
    from matplotlib import colormaps

    pseudo = (colormaps["inferno"](_array(thermal_path)) * 255).astype(np.uint8)[:, :, :3]
    Image.fromarray(pseudo).save(out_dir / thermal_path.name)
    return 1


@recipe("pst900")
def pst900(ctx: RecipeContext) -> None:
    ctx.extract("PST900_RGBT_Dataset.zip", ".")
    ds = ctx.root / "PST900_RGBT_Dataset"
    out = ds / "test" / "thermal_pseudo"  # MESS's pseudo-colour copy; the benchmark reads test/thermal
    _mkdirs(out)
    thermal = sorted(_require(ds / "test" / "thermal", "test/thermal").glob("*.png"))
    ctx.map(_pst900_item, [(p, out) for p in thermal], "PST900 thermal pseudo-colour")


@recipe("zerowaste_f")
def zerowaste_f(ctx: RecipeContext) -> None:
    ctx.extract("zerowaste-f-final.zip", "zerowaste-f")


# ---------------------------------------------------------------------------------------------- Agriculture and Biology

SUIM_COLOURS = {(0, 0, 0): 0, (0, 0, 255): 1, (0, 255, 0): 2, (0, 255, 255): 3,
                (255, 0, 0): 4, (255, 0, 255): 5, (255, 255, 0): 6, (255, 255, 255): 7}


def _suim_item(item: tuple[Path, Path]) -> int:
    mask_path, out_dir = item
    mask = convert.colours_to_index_exact(_array(mask_path), SUIM_COLOURS, mask_path)
    Image.fromarray(mask).save(out_dir / f"{mask_path.stem}.png", "PNG")
    return 1


@recipe("suim")
def suim(ctx: RecipeContext) -> None:
    ctx.extract("TEST.zip", "SUIM")
    ds = ctx.root / "SUIM"
    out = ds / "annotations_detectron2" / "test"
    _mkdirs(out)
    masks = sorted(_require(ds / "TEST" / "masks", "TEST/masks").glob("*.bmp"))
    ctx.map(_suim_item, [(m, out) for m in masks], "SUIM masks")


def _cub_item(item: tuple[str, Path]) -> int:
    image_file, ds = item
    name = image_file.split("/")[-1]
    _open(ds / "images" / image_file).convert("RGB").save(ds / "images_detectron2" / "test" / name)
    soft = np.array(_open(ds / "segmentations" / image_file.replace("jpg", "png")).convert("L"))
    mask = (soft > 128).astype(np.uint8) * int(image_file.split(".")[0])  # majority of 5 annotators x species id
    Image.fromarray(mask, "L").save(ds / "annotations_detectron2" / "test" / name.replace("jpg", "png"), "PNG")
    return 1


@recipe("cub_200")
def cub_200(ctx: RecipeContext) -> None:
    ctx.extract("CUB_200_2011.tgz", ".")
    ctx.extract("segmentations.tgz", "CUB_200_2011")
    ds = ctx.root / "CUB_200_2011"
    if (ctx.root / "attributes.txt").exists():
        (ctx.root / "attributes.txt").rename(ds / "attributes.txt")
    _mkdirs(ds / "images_detectron2" / "test", ds / "annotations_detectron2" / "test")
    test = convert.cub_test_images(
        _require(ds / "images.txt", "images.txt").read_text(), _require(ds / "train_test_split.txt", "train_test_split.txt").read_text()
    )
    ctx.map(_cub_item, [(f, ds) for f in test], "CUB-200 images")


def _cwfid_item(item: tuple[Path, Path]) -> int:
    mask_path, out_dir = item
    mask = convert.colours_to_index_inplace(_array(mask_path), convert.CWFID_COLOURS)
    Image.fromarray(mask).save(out_dir / mask_path.name)
    return 1


@recipe("cwfid")
def cwfid(ctx: RecipeContext) -> None:
    ctx.extract("cwfid-dataset.zip", "cwfid", strip=1)
    ds = ctx.root / "cwfid"
    out = ds / "annotations_detectron2" / "test"
    _mkdirs(out)
    masks = [_require(ds / "annotations" / f"{i:03}_annotation.png", f"annotations/{i:03}_annotation.png") for i in convert.CWFID_TEST_IDS]
    ctx.map(_cwfid_item, [(m, out) for m in masks], "CWFID masks")


# ---------------------------------------------------------------------------------------------- Training sets


def _coco_stuff_label(item: tuple[Path, Path, np.ndarray]) -> int:
    src, out_dir, table = item
    Image.fromarray(convert.to_train_ids(_array(src), table, src)).save(out_dir / src.name)
    return 1


def _source_ids(ctx: RecipeContext) -> list[int]:
    """[prepare.options].source_ids: one distinct label value in 0..254 per class, in train-ID order."""
    ids = ctx.options.get("source_ids")
    where = f"{ctx.spec.path}: [prepare.options].source_ids"
    if not isinstance(ids, list) or len(ids) != ctx.spec.num_classes:
        raise BenchError(f"{where} must list one label value per class ({ctx.spec.num_classes})")
    if any(not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 255 for v in ids) or len(set(ids)) != len(ids):
        raise BenchError(f"{where} must hold distinct integers in 0..254 (255 is the ignore value)")
    return ids


@recipe("coco_stuff_171")
def coco_stuff_171(ctx: RecipeContext) -> None:
    """CAT-Seg's ``datasets/prepare_coco_stuff.py`` for train2017: images in images/train2017, the
    stuffthingmaps in annotations/train2017, train-ID labels in annotations_detectron2/train2017."""
    table = convert.train_id_table(_source_ids(ctx))
    ctx.extract("train2017.zip", "coco-stuff/images")
    ctx.extract("stuffthingmaps_trainval2017.zip", "coco-stuff/annotations/train2017", subdir="train2017")
    ds = ctx.root / "coco-stuff"
    _require(ds / "images" / "train2017", "images/train2017")
    out = ds / "annotations_detectron2" / "train2017"
    _mkdirs(out)
    labels = sorted(_require(ds / "annotations" / "train2017", "annotations/train2017").glob("*.png"))
    ctx.map(_coco_stuff_label, [(p, out, table) for p in labels], "COCO-Stuff train labels")

# ---------------------------------------------------------------------------------------------- In-domain sets
# CAT-Seg's datasets/prepare_*.py (KU-CVLAB/CAT-Seg@6d3a188), validation sets only, as it prepares them.


class _IndexUnpickler(pickle.Unpickler):
    """Reads index_ade20k.pkl (a dict of lists and numpy arrays) without running arbitrary code:
    only numpy's array reconstruction and plain containers may be loaded."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("builtins", "list"), ("builtins", "dict"), ("builtins", "tuple"), ("builtins", "set"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in index_ade20k.pkl")
        return super().find_class(module, name)


def read_ade_index(path: Path) -> tuple[list[str], list[str]]:
    """The ``folder`` and ``filename`` lists of ADE20K-full's index_ade20k.pkl."""
    try:
        with path.open("rb") as handle:
            index = _IndexUnpickler(handle).load()
        return [str(f) for f in index["folder"]], [str(f) for f in index["filename"]]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError, ValueError) as err:
        raise BenchError(f"{path}: not ADE20K-full's index ({err}); the download is damaged or not ADE20K_2021_17_01") from None


def _ade_full_item(item: tuple[Path, Path, Path, tuple[int, ...]]) -> int:
    import cv2

    jpg, image_out, label_out, ade_ids = item
    img = np.asarray(_open(jpg))
    classes = convert.ade_full_class_mask(_array(jpg.with_name(jpg.name.replace(".jpg", "_seg.png"))))
    size = convert.ade_full_size(*img.shape[:2])
    if size is not None:
        img = cv2.resize(img, size[::-1], interpolation=cv2.INTER_LINEAR)
        classes = cv2.resize(classes, size[::-1], interpolation=cv2.INTER_NEAREST)
    if img.dtype != np.uint8:
        raise BenchError(f"{jpg}: expected an 8-bit image, got {img.dtype}")
    Image.fromarray(img).save(image_out)
    Image.fromarray(convert.ids_to_train_ids(classes, ade_ids, 65535, np.uint16)).save(label_out)
    return 1


def _option_ids(ctx: RecipeContext, key: str, minimum: int, what: str) -> tuple[int, ...]:
    """[prepare.options].<key>: one distinct source id (an integer >= `minimum`) per train ID."""
    ids = ctx.options.get(key)
    if (not isinstance(ids, list) or len(ids) != ctx.spec.num_classes or len(set(ids)) != len(ids)
            or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in ids)):
        raise BenchError(f"{ctx.spec.path}: [prepare.options].{key} must list {ctx.spec.num_classes} distinct "
                         f"{what} (integers >= {minimum}), one per train ID")
    return tuple(ids)


@recipe("ade847")
def ade847(ctx: RecipeContext) -> None:
    """prepare_ade20k_full.py: every ``*_val_*`` entry of index_ade20k.pkl, image and class mask resized to
    short side 512 (when above), ids -> train IDs as 16-bit TIFF (65535 elsewhere), image re-saved."""
    name = "ADE20K_2021_17_01.zip"
    ctx.extract(name, "ADE20K_2021_17_01" if ctx.source(name).is_dir() else ".")
    ds = ctx.root / "ADE20K_2021_17_01"
    folders, files = read_ade_index(_require(ds / "index_ade20k.pkl", "ADE20K_2021_17_01/index_ade20k.pkl"))
    images, labels = ds / "images_detectron2" / "validation", ds / "annotations_detectron2" / "validation"
    _mkdirs(images, labels)
    ade_ids = _option_ids(ctx, "ade_ids", 0, "full-ADE class ids")
    items = [(ctx.root / folder / file, images / file, labels / file.replace(".jpg", ".tif"), ade_ids)
             for folder, file in zip(folders, files) if file.split("_")[1] == "val"]
    for jpg, *_ in items:
        _require(jpg, str(jpg.relative_to(ctx.root)))
    ctx.map(_ade_full_item, items, "A-847 validation")


def _mat_label_map(item: tuple[Path, Path]) -> int:
    try:
        import scipy.io
    except ImportError:
        raise BenchError(f"reading PASCAL-Context's .mat annotations needs scipy: {INSTALL_EXTRA}") from None
    src, out = item
    try:
        mask = scipy.io.loadmat(src)["LabelMap"] - 1  # in the file's dtype, as CAT-Seg subtracts
    except (OSError, ValueError, KeyError, NotImplementedError) as err:
        raise BenchError(f"{src}: not a PASCAL-Context annotation with a LabelMap ({err})") from None
    Image.fromarray(mask).save(out, "TIFF")
    return 1


@recipe("pc459")
def pc459(ctx: RecipeContext) -> None:
    """prepare_pascal_context_459.py: for each id of pascalcontext_val.txt with a trainval/<id>.mat,
    LabelMap - 1 as TIFF."""
    ctx.extract("VOCtrainval_03-May-2010.tar", ".")
    voc = _require(ctx.root / "VOCdevkit" / "VOC2010", "VOCdevkit/VOC2010")
    ctx.extract("trainval.tar.gz", "VOCdevkit/VOC2010")
    out = ctx.root / ctx.spec.eval_sets()[0].label_dir
    _mkdirs(out)
    ids = [line.strip() for line in ctx.source("pascalcontext_val.txt").read_text().splitlines()]
    mats = [(voc / "trainval" / f"{i}.mat", out / f"{i}.tif") for i in ids if i]
    ctx.map(_mat_label_map, [m for m in mats if m[0].exists()], "PC-459 labels")


def _ade150_item(item: tuple[Path, Path]) -> int:
    src, out = item
    label = _array(src)
    if label.dtype != np.uint8:
        raise BenchError(f"{src}: expected an 8-bit label, got {label.dtype}")
    Image.fromarray(label - 1).save(out)  # 0 (other) wraps to 255, class c to c - 1
    return 1


@recipe("ade150")
def ade150(ctx: RecipeContext) -> None:
    """prepare_ade20k_150.py: annotations/validation/* minus 1 in uint8."""
    ctx.extract("ADEChallengeData2016.zip", ".")
    src = _require(ctx.root / "ADEChallengeData2016" / "annotations" / "validation", "ADEChallengeData2016/annotations/validation")
    out = ctx.root / ctx.spec.eval_sets()[0].label_dir
    _mkdirs(out)
    ctx.map(_ade150_item, [(p, out / p.name) for p in sorted(src.iterdir())], "A-150 labels")


def _pc59_item(item: tuple[dict, list[dict], Path, tuple[int, ...]]) -> int:
    try:
        from pycocotools import mask as rle
    except ImportError:
        raise BenchError(f"decoding PASCAL-Context's RLE annotations needs pycocotools: {INSTALL_EXTRA}") from None
    image, annos, out, category_ids = item
    mask = np.zeros((image["height"], image["width"]))
    for anno in annos:  # in file order: a later annotation paints over an earlier one
        mask[np.nonzero(rle.decode(anno["segmentation"]))] = anno["category_id"]
    label = convert.ids_to_train_ids(mask.astype(np.int64), category_ids, 255, np.uint8)
    Image.fromarray(label).save(out / image["file_name"].replace("jpg", "png"))
    return 1


@recipe("pc59")
def pc59(ctx: RecipeContext) -> None:
    """prepare_pascal_context_59.py: the val images of trainval_merged.json, their RLE annotations
    painted in order, category ids -> 59 train IDs, everything else 255."""
    ctx.extract("VOCtrainval_03-May-2010.tar", ".")
    _require(ctx.root / "VOCdevkit" / "VOC2010", "VOCdevkit/VOC2010")
    source = ctx.source("trainval_merged.json")
    try:
        data = json.loads(source.read_text())
        val = {image["image_id"]: image for image in data["images"] if image["phase"] == "val"}
        annos: dict[int, list[dict]] = {}
        for anno in data["annos_segmentation"]:
            if anno["image_id"] in val:
                annos.setdefault(anno["image_id"], []).append(anno)
    except (ValueError, KeyError, TypeError) as err:
        raise BenchError(f"{source}: not the Detail API's trainval_merged.json ({err!r}); download it again") from None
    bare = [val[i]["file_name"] for i in val if i not in annos]
    if bare:  # CAT-Seg's script stops with a KeyError on such an image
        raise BenchError(f"{source}: val images without annotations ({', '.join(bare[:3])}); the file is incomplete")
    out = ctx.root / ctx.spec.eval_sets()[0].label_dir
    _mkdirs(out)
    category_ids = _option_ids(ctx, "category_ids", 1, "PASCAL-Context category ids")
    ctx.map(_pc59_item, [(val[i], annos[i], out, category_ids) for i in val], "PC-59 labels")


def _voc_item(item: tuple[Path, Path, tuple[int, ...]]) -> int:
    src, out, class_ids = item
    label = convert.ids_to_train_ids(_array(src), class_ids, 255, np.uint8)
    if (label == 255).all():  # CAT-Seg writes no label for it (nor evaluates its image)
        return 0
    Image.fromarray(label).save(out, "PNG")
    return 1


@recipe("voc20")
@recipe("voc20b")
def pascal_voc(ctx: RecipeContext) -> None:
    """prepare_voc.py: SegmentationClassAug of the val ids, class c -> c - 1, background (0) ->
    options.background_label (255 for PAS-20, 20 for PAS-20b), other values -> 255."""
    background = ctx.options.get("background_label")
    if background not in (255, ctx.spec.num_classes - 1):
        raise BenchError(f"{ctx.spec.path}: [prepare.options].background_label must be 255 (ignored) or "
                         f"{ctx.spec.num_classes - 1} (the last class)")
    ctx.extract("VOCtrainval_11-May-2012.tar", ".")
    voc = _require(ctx.root / "VOCdevkit" / "VOC2012", "VOCdevkit/VOC2012")
    ctx.extract("SegmentationClassAug.zip", "VOCdevkit/VOC2012")
    aug = _require(voc / "SegmentationClassAug", "VOCdevkit/VOC2012/SegmentationClassAug")
    ids = _require(voc / "ImageSets" / "Segmentation" / "val.txt", "ImageSets/Segmentation/val.txt").read_text().split()
    class_ids = tuple(range(1, 21)) + ((0,) if background != 255 else ())
    out = ctx.root / ctx.spec.eval_sets()[0].label_dir
    _mkdirs(out)
    ctx.map(_voc_item, [(aug / f"{i}.png", out / f"{i}.png", class_ids) for i in ids], "PASCAL VOC labels")


def get_recipe(spec) -> Callable[[RecipeContext], None]:
    name = spec.prepare.get("recipe", spec.name)
    if name not in RECIPES:
        raise BenchError(f"{spec.path}: no preparation recipe named '{name}'; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]
