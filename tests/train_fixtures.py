"""Small training data shared by the training tests."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from model.training.synthetic import SyntheticScenes

# Two classes and a batch of one keep a catseg-tiny step cheap.
SCENES = SyntheticScenes(6, seed=3, size=96, num_classes=2)


def write_spec_dataset(root: Path, scenes: SyntheticScenes) -> Path:
    """The scenes as a data root with a spec, as `bench train --dataset FILE.toml` reads them."""
    for index in range(len(scenes)):
        for kind, array in (("images", scenes.read_image(index)), ("labels", scenes.read_label(index))):
            (root / "scenes" / kind).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / "scenes" / kind / f"{index:03d}.png")
    spec = root / "specs" / "scenes.toml"
    spec.parent.mkdir()
    names = ", ".join(json.dumps(n) for n in scenes.class_names)
    spec.write_text(
        f'name = "scenes"\ndisplay_name = "Scenes"\ndomain = "Training"\nsplit = "train"\nnum_images = {len(scenes)}\n'
        f'class_names = [{names}]\nignore_index = 255\nlicense = "test data"\nlink = "none"\n\n'
        '[data]\nimage_dir = "scenes/images"\nlabel_dir = "scenes/labels"\nimage_ext = ".png"\nlabel_ext = ".png"\n'
    )
    return spec
