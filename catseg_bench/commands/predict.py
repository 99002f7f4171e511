"""`bench predict`: segment one image with any vocabulary and any registered model.

Writes any of: PRED.png (class index per pixel, 8-bit, or 16-bit for more than 256 classes),
PROBS.npy (per-class scores, float32 (T, H, W) at the image's size, for models that have them:
CAT-Seg's probabilities, SAN's mask-weighted scores) and OVERLAY.png (the
image with a colour per class and a legend). Always prints each class's share of the pixels.
"""

from __future__ import annotations

import colorsys
import io
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from catseg_bench.errors import BenchError

OVERLAY_ALPHA = 0.5
LEGEND_ROW = 18  # pixels per legend row


def parse_classes(classes: str | None, classes_file: Path | None) -> list[str]:
    """`--classes "a,b,c"` (comma separated) or `--classes-file F` (one name per line; a line may
    hold synonyms "sofa, couch", of which the prompt uses the first)."""
    if (classes is None) == (classes_file is None):
        raise BenchError("give the vocabulary with exactly one of --classes \"a,b,c\" or --classes-file FILE")
    if classes_file is not None:
        try:
            lines = classes_file.read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise BenchError(f"{classes_file}: cannot read the class file ({err.strerror})") from None
        names = [line.strip() for line in lines if line.strip()]
        origin = str(classes_file)
    else:
        names = [name.strip() for name in classes.split(",")]
        if any(not name for name in names):
            raise BenchError(f"--classes {classes!r}: empty class name; separate names with single commas")
        origin = "--classes"
    if not names:
        raise BenchError(f"{origin}: no class names")
    return names


def read_rgb(path: Path) -> np.ndarray:
    """The image as `bench run` reads it (EXIF orientation applied, 16-bit scaled, size-limited)."""
    from catseg_bench.data.decode import decode_image

    if not path.is_file():
        raise BenchError(f"{path}: image not found")
    return decode_image(path, str(path))


def palette(n: int) -> np.ndarray:
    """n well-separated RGB colours (golden-ratio hues, alternating brightness), uint8 (n, 3)."""
    colours = [colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 1.0 if i % 2 == 0 else 0.7) for i in range(n)]
    return (np.array(colours).reshape(n, 3) * 255).round().astype(np.uint8)


def render_overlay(image: np.ndarray, labels: np.ndarray, class_names: list[str]) -> Image.Image:
    """The image blended with one colour per class, and a legend of the classes present (by area)."""
    colours = palette(len(class_names))
    blended = (image * (1 - OVERLAY_ALPHA) + colours[labels] * OVERLAY_ALPHA).round().astype(np.uint8)
    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    font = ImageFont.load_default()
    legend_width = 16 + max(int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(class_names[i], font=font)) for i in present) + 60
    height = max(image.shape[0], LEGEND_ROW * len(present) + 8)
    canvas = Image.new("RGB", (image.shape[1] + legend_width, height), "white")
    canvas.paste(Image.fromarray(blended), (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = image.shape[1] + 6
    for row, index in enumerate(present):
        y = 4 + row * LEGEND_ROW
        draw.rectangle([x0, y, x0 + 12, y + 12], fill=tuple(int(c) for c in colours[index]), outline="black")
        share = 100 * counts[index] / labels.size
        draw.text((x0 + 18, y), f"{class_names[index]}  {share:.1f}%", fill="black", font=font)
    return canvas


def _png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def label_png(labels: np.ndarray, num_classes: int) -> Image.Image:
    """Class indices as a single-channel PNG image: 8-bit up to 256 classes, else 16-bit."""
    if num_classes <= 256:
        return Image.fromarray(labels.astype(np.uint8))  # mode "L"
    return Image.fromarray(labels.astype(np.uint16))  # mode "I;16"


def predict(
    image: Path = typer.Argument(..., help="The image to segment (any format Pillow reads)."),
    model: str = typer.Option(..., "--model", help="A registered model (see `bench models list`) or module:Class."),
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", help="Weights: the model's default (the official ones where published), 'hub', a "
        "path or URL, or 'none' for untrained (random) weights."
    ),
    model_args: Optional[str] = typer.Option(
        None, "--model-args", help="Constructor arguments key=value[,key=value...] (see `bench models list`)."
    ),
    classes: Optional[str] = typer.Option(None, "--classes", help='Comma-separated class names: "sky,tree,road".'),
    classes_file: Optional[Path] = typer.Option(None, "--classes-file", help="One class name per line."),
    out: Optional[Path] = typer.Option(None, "--out", help="PRED.png: class index per pixel."),
    probs: Optional[Path] = typer.Option(
        None, "--probs", help="PROBS.npy: float32 (T, H, W) per-class scores (models with `predict_scores`)."
    ),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="OVERLAY.png: colour overlay with a legend."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    mode: str = typer.Option("sliding", "--mode", help="CAT-Seg: sliding (the paper's patch inference) or whole (one view at the CLIP resolution)."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (tf32 on CUDA, fp32 elsewhere), fp32, tf32 or bf16 (autocast)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of untrained (random) weights."),
) -> None:
    """Segment IMAGE into the given classes with any registered model."""
    from catseg_bench import api, registry
    from catseg_bench.segmenters import has_scores, is_untrained
    from model.common.files import atomic_write_bytes

    console = Console()
    class_names = parse_classes(classes, classes_file)
    rgb = read_rgb(image)
    if probs is not None and not has_scores(registry.find_segmenter(model).load()):  # before building it
        raise BenchError(f"--probs: {model} gives class labels only (no per-class scores); drop --probs")
    segmenter = api.build_segmenter(model, checkpoint=checkpoint, model_args=model_args, device=device,
                                    precision=precision, mode=mode, seed=seed)
    if is_untrained(segmenter):
        Console(stderr=True).print(f"[yellow]warning:[/] {model} runs UNTRAINED random weights")
    segmenter.set_classes(tuple(class_names))
    prepared = [segmenter.prepare_image(rgb)]
    if probs is not None:
        scores = segmenter.predict_scores(prepared, [rgb.shape[:2]])[0]
        labels = scores.argmax(dim=0).cpu().numpy()
        buffer = io.BytesIO()
        np.save(buffer, scores.float().cpu().numpy())
        atomic_write_bytes(probs, buffer.getvalue())
    else:
        labels = segmenter.predict(prepared, [rgb.shape[:2]])[0].cpu().numpy()
    if out is not None:
        atomic_write_bytes(out, _png_bytes(label_png(labels, len(class_names))))
    if overlay is not None:
        atomic_write_bytes(overlay, _png_bytes(render_overlay(rgb, labels, class_names)))

    counts = np.bincount(labels.ravel(), minlength=len(class_names))
    described = ", ".join(f"{k} {v}" for k, v in segmenter.settings().items() if k in ("mode", "protocol", "precision"))
    table = Table(title=f"{image.name}: {model}" + (f", {described}" if described else ""), title_justify="left")
    table.add_column("index", justify="right")
    table.add_column("class")
    table.add_column("pixels %", justify="right")
    for index in np.argsort(-counts, kind="stable"):
        table.add_row(str(index), class_names[index], f"{100 * counts[index] / labels.size:.2f}")
    console.print(table)
    for path, what in ((out, "class indices"), (probs, "scores"), (overlay, "overlay")):
        if path is not None:
            console.print(f"wrote {path} ({what})")


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
