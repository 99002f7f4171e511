"""Spec texts and reference data shared by the spec and `bench datasets` tests."""

from __future__ import annotations

import json
from pathlib import Path

from catseg_bench.specs import DatasetSpec, parse_dataset_spec

from conftest import TEST_DATA

# MESS registration name -> class list, copied from shared/reference/mess_datasets.json.
MESS_CLASS_NAMES: dict[str, list[str]] = json.loads(
    (TEST_DATA / "mess_class_names.json").read_text(encoding="utf-8")
)["class_names"]

# The MESS datasets of each domain, both in the column order of the seed's Table 1.
MESS_DOMAINS: dict[str, list[str]] = {
    "General": ["bdd100k", "dark_zurich", "mhp_v1", "foodseg103", "atlantis", "dram"],
    "Earth Monitoring": ["isaid", "isprs_potsdam", "worldfloods", "floodnet", "uavid"],
    "Medical Sciences": ["kvasir_instrument", "chase_db1", "cryonuseg", "paxray4"],
    "Engineering": ["corrosion_cs", "deepcrack", "pst900", "zerowaste_f"],
    "Agriculture and Biology": ["suim", "cub_200", "cwfid"],
}
MESS_NAMES: list[str] = [name for names in MESS_DOMAINS.values() for name in names]
# The in-domain suite (dataset_specs/in_domain.toml), in the papers' column order.
IN_DOMAIN_NAMES: list[str] = ["ade847", "pc459", "ade150", "pc59", "voc20", "voc20b"]
BUILTIN_NAMES: list[str] = MESS_NAMES + IN_DOMAIN_NAMES

# A valid user spec in a new domain.
SOLAR_SPEC = """\
name = "solar"
display_name = "Solar Panels"
domain = "Energy"
split = "test"
num_images = 3
class_names = ["background", "panel", "crack"]
ignore_index = 255
background_index = 0
classes_of_interest = [1, 2]
license = "CC0"
link = "https://example.org/solar"

[data]
image_dir = "solar/images"
label_dir = "solar/labels"
image_ext = ".jpg"
label_ext = ".png"

[prepare]
manual = true
"""


def write_user_spec(directory: Path, **replace: str) -> Path:
    """`SOLAR_SPEC` with each `old=new` substring replaced, written to `directory/<name>.toml`."""
    text = SOLAR_SPEC
    for old, new in replace.items():
        text = text.replace(old, new)
    name = text.split('"', 2)[1]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def many_classes_spec(folder: Path, image_ext: str = ".png", label_ext: str = ".png", num_images: int = 2) -> DatasetSpec:
    """A 300-class spec (16-bit labels, ignore 65535) at `folder/many.toml`, not written to disk."""
    raw = {
        "name": "many", "display_name": "Many", "domain": "Testing", "split": "test", "num_images": num_images,
        "class_names": [f"class {i}" for i in range(300)], "ignore_index": 65535, "label_dtype": "uint16",
        "license": "CC0", "link": "https://example.org",
        "data": {"image_dir": "many/img", "label_dir": "many/ann", "image_ext": image_ext, "label_ext": label_ext},
    }
    return parse_dataset_spec(folder / "many.toml", raw)
