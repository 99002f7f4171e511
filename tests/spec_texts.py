"""Spec texts and reference data shared by the spec and `bench datasets` tests."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TEST_DATA

# MESS registration name -> class list, copied from shared/reference/mess_datasets.json.
MESS_CLASS_NAMES: dict[str, list[str]] = json.loads(
    (TEST_DATA / "mess_class_names.json").read_text(encoding="utf-8")
)["class_names"]

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
