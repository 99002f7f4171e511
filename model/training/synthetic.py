"""A synthetic, learnable segmentation task for the training demo and tests.

Each scene is a Voronoi partition of the image into a few regions; every region is one class,
drawn with that class's colour and texture (a sky gradient, grass noise, brick courses, sand
grain, snow, water ripples). A model that learns colour and texture can segment it, so a tiny
CAT-Seg trained for a few minutes on a CPU gets well above chance. Scenes are a pure function of
(seed, index); a held-out set is the same generator with another seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name -> (base RGB colour, texture)
SCENE_CLASSES: dict[str, tuple[tuple[int, int, int], str]] = {
    "sky": ((90, 150, 230), "gradient"),
    "grass": ((60, 150, 50), "noise"),
    "brick wall": ((165, 70, 50), "bricks"),
    "sand": ((225, 200, 140), "grain"),
    "snow": ((240, 242, 248), "flat"),
    "water": ((30, 80, 140), "ripples"),
}


@dataclass(frozen=True)
class SyntheticScenes:
    """`count` scenes of `size` x `size` pixels over `num_classes` of `SCENE_CLASSES`.

    A `SampleSource` (read_image / read_label); `ignore_border` pixels around some scenes carry the
    ignore label 255, like the padding of real data.
    """

    count: int
    seed: int
    size: int = 192
    num_classes: int = 4
    min_regions: int = 2
    max_regions: int = 5
    ignore_border: int = 6

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(list(SCENE_CLASSES)[: self.num_classes])

    def __len__(self) -> int:
        return self.count

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        if not 0 <= index < self.count:
            raise IndexError(f"scene {index} is outside 0..{self.count - 1}")
        return np.random.default_rng([self.seed, index, stream])

    def read_label(self, index: int) -> np.ndarray:
        rng = self._rng(index, 0)
        regions = int(rng.integers(self.min_regions, self.max_regions + 1))
        centres = rng.uniform(0, self.size, size=(regions, 2))
        classes = rng.integers(0, self.num_classes, size=regions)
        yy, xx = np.mgrid[0 : self.size, 0 : self.size]
        distance = (yy[..., None] - centres[:, 0]) ** 2 + (xx[..., None] - centres[:, 1]) ** 2
        label = classes[distance.argmin(axis=-1)].astype(np.uint8)
        if rng.random() < 0.25:
            b = self.ignore_border
            label[:b], label[-b:], label[:, :b], label[:, -b:] = 255, 255, 255, 255
        return label

    def read_image(self, index: int) -> np.ndarray:
        label = self.read_label(index)
        rng = self._rng(index, 1)
        image = np.zeros((self.size, self.size, 3), dtype=np.float32)
        yy, xx = np.mgrid[0 : self.size, 0 : self.size].astype(np.float32)
        for class_id, (colour, texture) in enumerate(list(SCENE_CLASSES.values())[: self.num_classes]):
            mask = label == class_id
            if not mask.any():
                continue
            base = np.array(colour, dtype=np.float32) * rng.uniform(0.85, 1.15)
            layer = np.broadcast_to(base, image.shape).copy()
            if texture == "gradient":
                layer *= (0.8 + 0.4 * yy / self.size)[..., None]
            elif texture == "noise":
                layer += rng.normal(0, 25, size=(self.size, self.size, 1))
            elif texture == "bricks":
                mortar = ((yy % 16) < 2) | (((xx + 16 * ((yy // 16) % 2)) % 32) < 2)
                layer[mortar] = 200.0
            elif texture == "grain":
                layer += rng.normal(0, 10, size=(self.size, self.size, 3))
            elif texture == "ripples":
                layer *= (1.0 + 0.25 * np.sin(xx / 3.0 + 0.3 * yy))[..., None]
            image[mask] = layer[mask]
        image += rng.normal(0, 4, size=image.shape)
        image[label == 255] = 0
        return np.clip(image, 0, 255).astype(np.uint8)
