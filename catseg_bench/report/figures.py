"""The report's pictures as PNG bytes: class-coloured label maps and the confusion heat map."""

from __future__ import annotations

import colorsys
import io
from typing import Sequence

import numpy as np
from PIL import Image

IGNORE_COLOUR = (40, 40, 40)
HEATMAP_MAX_CLASSES = 30


def class_colours(num_classes: int) -> np.ndarray:
    """(K, 3) uint8: one colour per class of a set, the same in every report (tab10 for up to 10
    classes, tab20 for up to 20, then hues spaced by the golden ratio)."""
    import matplotlib

    if num_classes <= 20:
        palette = matplotlib.colormaps["tab10" if num_classes <= 10 else "tab20"]
        colours = [palette(i)[:3] for i in range(num_classes)]
    else:
        colours = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65 + 0.35 * (i % 2), 0.95 - 0.3 * (i % 3) / 2)
                   for i in range(num_classes)]
    return (np.asarray(colours) * 255).round().astype(np.uint8)


def colour_label(label: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """An (h, w, 3) rendering of class indices; anything outside the classes (ignore) is dark grey."""
    out = np.empty(label.shape + (3,), dtype=np.uint8)
    out[:] = IGNORE_COLOUR
    inside = (label >= 0) & (label < len(colours))
    out[inside] = colours[label[inside]]
    return out


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def confusion_heatmap(confusion: np.ndarray, class_names: Sequence[str], title: str) -> bytes:
    """Rows: ground-truth class; columns: predicted class; each row normalised to its pixels (ignore
    pixels left out), so the diagonal is the class accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(class_names)
    by_gt = np.asarray(confusion, dtype=np.float64)[:k, :k].T
    totals = by_gt.sum(axis=1, keepdims=True)
    share = np.divide(by_gt, totals, out=np.zeros_like(by_gt), where=totals > 0)
    side = min(9.0, 2.5 + 0.28 * k)
    figure, axes = plt.subplots(figsize=(side + 1.2, side))
    shown = axes.imshow(share, cmap="viridis", vmin=0.0, vmax=1.0)
    axes.set_xticks(range(k), class_names, rotation=90, fontsize=7)
    axes.set_yticks(range(k), class_names, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("ground truth")
    axes.set_title(title, fontsize=9)
    if k <= 12:
        for (i, j), value in np.ndenumerate(share):
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                      color="black" if value > 0.5 else "white")
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04, label="share of the row's pixels")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()
