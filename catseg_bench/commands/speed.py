"""`bench speed`: throughput and peak memory of CAT-Seg inference on synthetic images.

Measures what the runner does per batch (`predict_labels` on already-resized images: all windows
of the batch in one forward, merge, resize to the original size, argmax), after a warm-up batch.
Weights are random unless --checkpoint is given: speed does not depend on their values. Speed
goals live here and in `benchmarks/`, never in tests.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from catseg_bench.errors import BenchError

if TYPE_CHECKING:  # torch loads when a measurement runs, not for every `bench`
    import torch


@dataclass
class SpeedResult:
    model: str
    device: str
    precision: str
    mode: str
    classes: int
    batch: int
    images: int
    image_size: tuple[int, int]
    text_seconds: float  # encoding the class names once (cached afterwards)
    seconds: float  # all timed batches
    images_per_second: float
    peak_memory_bytes: int  # CUDA: peak allocated during the timed batches; CPU: peak RSS of the process
    peak_memory_kind: str

    def as_dict(self) -> dict:
        return asdict(self)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def synthetic_images(count: int, size: tuple[int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(count)]


def measure_speed(net, *, precision: str, mode: str, classes: int, batch: int, images: int,
                  image_size: tuple[int, int] = (480, 640), warmup: int = 1, seed: int = 0) -> SpeedResult:
    """Time `predict_labels` of `net` on `images` synthetic images, `batch` per forward."""
    import torch

    from model import encode_classes, predict_labels, resize_short_side

    device = net.device
    originals = synthetic_images(images, image_size, seed)
    prepared = [resize_short_side(image) for image in originals]
    sizes = [image_size] * images
    names = [f"class number {i}" for i in range(classes)]
    net.text_cache.clear()
    start = time.perf_counter()
    text = encode_classes(net, names)
    _sync(device)
    text_seconds = time.perf_counter() - start

    def run(chunk: slice) -> None:
        predict_labels(net, prepared[chunk], text, mode=mode, precision=precision, original_sizes=sizes[chunk])

    for _ in range(warmup):
        run(slice(0, batch))
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for first in range(0, images, batch):
        run(slice(first, first + batch))
    _sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak, kind = torch.cuda.max_memory_allocated(device), "CUDA allocated"
    else:
        peak, kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process RSS"
    return SpeedResult(
        model=net.config.name, device=str(device), precision=precision, mode=mode, classes=classes, batch=batch,
        images=images, image_size=image_size, text_seconds=text_seconds, seconds=seconds,
        images_per_second=images / seconds, peak_memory_bytes=peak, peak_memory_kind=kind,
    )


def speed_table(results: list[SpeedResult]) -> Table:
    first = results[0]
    table = Table(
        title=f"{first.model} on {first.device}: {first.mode} inference, {first.images} images of "
        f"{first.image_size[0]}x{first.image_size[1]} per row",
        title_justify="left",
    )
    for header in ("precision", "classes", "batch", "images/s", "s/image", "text s", f"peak MiB ({first.peak_memory_kind})"):
        table.add_column(header, justify="left" if header == "precision" else "right")
    for r in results:
        table.add_row(
            r.precision, str(r.classes), str(r.batch), f"{r.images_per_second:.3f}", f"{1 / r.images_per_second:.3f}",
            f"{r.text_seconds:.2f}", f"{r.peak_memory_bytes / 2**20:.0f}",
        )
    return table


def _int_list(value: str, option: str) -> list[int]:
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        raise BenchError(f"{option} {value!r}: expected an integer or comma-separated integers") from None
    if any(n < 1 for n in numbers):
        raise BenchError(f"{option} {value!r}: values must be at least 1")
    return numbers


def parse_size(value: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise BenchError(f"--size {value!r}: expected HEIGHTxWIDTH, e.g. 480x640") from None
    if h < 1 or w < 1:
        raise BenchError(f"--size {value!r}: sides must be positive")
    return h, w


def speed(
    model: str = typer.Option("catseg-b", "--model", help="catseg-b, catseg-l or catseg-tiny."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights to load (default: random)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16, or a comma list: fp32,bf16."),
    mode: str = typer.Option("sliding", "--mode", help="sliding (the paper's patch inference) or whole."),
    images: int = typer.Option(8, "--images", min=1, help="Timed images per row."),
    classes: str = typer.Option("20", "--classes", help="Vocabulary size T, or a comma list: 2,20,150,847."),
    batch: str = typer.Option("1", "--batch", help="Images per forward, or a comma list: 1,4."),
    size: str = typer.Option("480x640", "--size", help="Synthetic image size HEIGHTxWIDTH (before the 640 resize)."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed batches first."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
) -> None:
    """Measure images/s and peak memory of CAT-Seg inference."""
    import json

    import torch

    import model as catseg_model
    from model.common.device import resolve_device
    from model.common.device import PRECISIONS
    from model.inference import MODES

    precisions = [p.strip() for p in precision.split(",")]
    for p in precisions:
        if p not in PRECISIONS:
            raise BenchError(f"--precision {p}: choose from {', '.join(PRECISIONS)}")
    if mode not in MODES:
        raise BenchError(f"--mode {mode}: choose one of {', '.join(MODES)}")
    if model not in catseg_model.list_models():
        raise BenchError(f"--model {model}: unknown model; choose one of {', '.join(catseg_model.list_models())}")
    image_size = parse_size(size)
    class_counts = _int_list(classes, "--classes")
    batches = _int_list(batch, "--batch")
    torch_device = resolve_device(device)
    torch.manual_seed(0)
    try:
        net = catseg_model.create_model(model, checkpoint=checkpoint, device=torch_device)
    except catseg_model.CheckpointError as err:
        raise BenchError(str(err)) from None
    results = [
        measure_speed(net, precision=p, mode=mode, classes=t, batch=b, images=images, image_size=image_size, warmup=warmup)
        for p in precisions
        for t in class_counts
        for b in batches
    ]
    if json_out:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        Console().print(speed_table(results))


def register(app: typer.Typer) -> None:
    app.command("speed")(speed)
