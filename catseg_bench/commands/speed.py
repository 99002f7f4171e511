"""`bench speed`: throughput and peak memory of any registered model's inference on synthetic images.

Measures what the runner does per batch (the segmenter's `predict` on images its `prepare_image`
already prepared; for CAT-Seg: all windows of the batch in one forward, merge, resize to the
original size, argmax), after a warm-up batch, and the class-name encoding (`set_classes`).
Weights are random unless --checkpoint is given: speed does not depend on their values. Speed
goals live here and in `benchmarks/`, never in tests.

`--suite mess` measures every evaluation set of a benchmark at its own vocabulary size and typical
image size (`TYPICAL_IMAGE_SIZES`) and projects the wall time of a full run: the sum over the sets
of (images x seconds per image + text encoding). Decoding, the confusion matrix and writing
results are not in the projection.
"""

from __future__ import annotations

import itertools
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


_vocabularies = itertools.count()  # a fresh vocabulary per measurement, so no text cache hides its cost


def build_for_speed(model: str, checkpoint: str | None, device, precision: str, mode: str, compile_model: bool):
    """A registered segmenter for timing: untrained (random, seeded) weights unless `checkpoint` is given."""
    from catseg_bench import api, registry

    entry = registry.find_segmenter(model)
    if checkpoint is None and "checkpoint" in entry.run_options():
        checkpoint = "none"
    args: dict = {}
    if compile_model:
        if "compile" not in {p.name for p in entry.parameters()}:
            raise BenchError(f"--compile: {model} has no compile option (see `bench models list`)")
        args["compile"] = True
    return api.build_segmenter(model, checkpoint=checkpoint, model_args=args, device=str(device), precision=precision,
                               mode=mode, seed=0)


def measure_speed(segmenter, device: torch.device, *, classes: int, batch: int, images: int,
                  image_size: tuple[int, int] = (480, 640), warmup: int = 1, seed: int = 0) -> SpeedResult:
    """Time a segmenter's `predict` on `images` synthetic images, `batch` per call (`prepare_image`
    runs untimed, as in the runner's workers), after timing `set_classes` on `classes` new names."""
    import torch

    originals = synthetic_images(images, image_size, seed)
    prepared = [segmenter.prepare_image(image) for image in originals]
    sizes = [image_size] * images
    vocabulary = next(_vocabularies)
    names = tuple(f"class number {i} of vocabulary {vocabulary}" for i in range(classes))
    start = time.perf_counter()
    segmenter.set_classes(names)
    _sync(device)
    text_seconds = time.perf_counter() - start

    def run(chunk: slice) -> None:
        segmenter.predict(prepared[chunk], sizes[chunk])

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
    settings = segmenter.settings()
    return SpeedResult(
        model=segmenter.model_id, device=str(device), precision=str(settings.get("precision", "-")),
        mode=str(settings.get("mode", "-")), classes=classes, batch=batch, images=images, image_size=image_size,
        text_seconds=text_seconds, seconds=seconds, images_per_second=images / seconds, peak_memory_bytes=peak,
        peak_memory_kind=kind,
    )


# Typical (height, width) of the images each MESS dataset is evaluated at (labels are scored at
# this size, so the final resize and arg-max run at it). Sources: "tiles" = the 1024 x 1024 tiling
# in the dataset's spec (dataset_specs/*.toml, prepare instructions); "paper" = the size the
# dataset's paper or site states for all its images; "typical" = the most common size of a set
# whose images vary (an estimate, for the projection only).
TYPICAL_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "bdd100k": (720, 1280),  # paper: 1280 x 720 frames
    "dark_zurich": (1080, 1920),  # paper: 1920 x 1080 frames
    "mhp_v1": (480, 640),  # typical: web photos of varying size
    "foodseg103": (512, 682),  # typical: web photos of varying size
    "atlantis": (768, 1024),  # typical: Flickr photos of varying size
    "dram": (720, 960),  # typical: paintings of varying size
    "isaid": (1024, 1024),  # tiles
    "isprs_potsdam": (1024, 1024),  # tiles
    "worldfloods": (1024, 1024),  # tiles
    "floodnet": (1024, 1024),  # tiles
    "uavid": (1024, 1024),  # tiles
    "kvasir_instrument": (576, 720),  # typical: endoscopy frames from 576 x 720 up to 1024 x 1280
    "chase_db1": (960, 999),  # paper: 999 x 960 retinal images
    "cryonuseg": (512, 512),  # paper: 512 x 512 patches
    "paxray4": (512, 512),  # typical: projected chest radiographs
    "corrosion_cs": (512, 512),  # typical: inspection photos of varying size
    "deepcrack": (384, 544),  # paper: 544 x 384 images
    "pst900": (720, 1280),  # paper: 1280 x 720 frames
    "zerowaste_f": (1080, 1920),  # paper: 1920 x 1080 frames
    "suim": (480, 640),  # typical: underwater photos of varying size
    "cub_200": (375, 500),  # typical: Flickr photos, long side mostly 500
    "cwfid": (966, 1296),  # paper: 1296 x 966 field images
}


@dataclass
class SuiteRow:
    eval_set: str
    classes: int
    image_size: tuple[int, int]
    images: int  # images of the evaluation set (what the projection multiplies)
    measured_images: int
    seconds_per_image: float
    text_seconds: float
    projected_seconds: float  # images x seconds_per_image + text_seconds
    peak_memory_bytes: int


def measure_suite(segmenter, device: torch.device, eval_sets: list[tuple[str, int, int, tuple[int, int]]], *,
                  images: int, batch: int, warmup: int) -> list[SuiteRow]:
    """`measure_speed` per evaluation set (name, classes, images in the set, image size)."""
    rows = []
    for name, classes, set_images, size in eval_sets:
        r = measure_speed(segmenter, device, classes=classes, batch=batch, images=images, image_size=size, warmup=warmup)
        per_image = r.seconds / r.images
        rows.append(SuiteRow(name, classes, size, set_images, images, per_image, r.text_seconds,
                             set_images * per_image + r.text_seconds, r.peak_memory_bytes))
    return rows


def suite_sets(suite: str, fallback_size: tuple[int, int], only: list[str] | None = None
               ) -> list[tuple[str, int, int, tuple[int, int]]]:
    """(eval set, classes, images, typical image size) for every evaluation set of a benchmark, or
    for the datasets / eval sets named in `only`; sizes missing from the table are `fallback_size`."""
    from catseg_bench.specs import load_benchmark, load_specs

    specs = load_specs()
    members = load_benchmark(suite).members
    rows = [
        (eval_set.name, eval_set.num_classes, specs[name].num_images, TYPICAL_IMAGE_SIZES.get(name, fallback_size))
        for name in members
        for eval_set in specs[name].eval_sets()
        if only is None or name in only or eval_set.name in only
    ]
    unknown = sorted(set(only or ()) - {row[0] for row in rows} - set(members))
    if unknown:
        raise BenchError(f"--sets {','.join(unknown)}: not in the {suite} benchmark; see `bench datasets list`")
    return rows


def suite_table(rows: list[SuiteRow], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for header in ("eval set", "classes", "image size", "images", "s/image", "text s", "projected min"):
        table.add_column(header, justify="left" if header == "eval set" else "right", no_wrap=header == "eval set")
    for r in rows:
        table.add_row(r.eval_set, str(r.classes), f"{r.image_size[0]}x{r.image_size[1]}", str(r.images),
                      f"{r.seconds_per_image:.3f}", f"{r.text_seconds:.2f}", f"{r.projected_seconds / 60:.1f}")
    total = sum(r.projected_seconds for r in rows)
    table.add_row("full run (projected)", "", "", str(sum(r.images for r in rows)), "", "", f"{total / 60:.1f}",
                  style="bold")
    return table


def speed_table(results: list[SpeedResult]) -> Table:
    first = results[0]
    table = Table(
        title=f"{first.model} on {first.device}: {first.mode} inference, {first.images} images of "
        f"{first.image_size[0]}x{first.image_size[1]} per row",
        title_justify="left",
    )
    for header in ("precision", "classes", "batch", "images/s", "s/image", "text s", f"peak MiB ({first.peak_memory_kind})"):
        table.add_column(header, justify="left" if header == "precision" else "right", no_wrap=header == "precision")
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
    model: str = typer.Option("catseg-b", "--model", help="A registered model (see `bench models list`) or module:Class."),
    checkpoint: Optional[str] = typer.Option(None, "--checkpoint", help="Weights to load (default: untrained, random)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (tf32 on CUDA, fp32 elsewhere), fp32, tf32, bf16, or a comma list: fp32,bf16."
    ),
    mode: str = typer.Option("sliding", "--mode", help="sliding (the paper's patch inference) or whole (one view at the CLIP resolution)."),
    images: int = typer.Option(8, "--images", min=1, help="Timed images per row."),
    classes: str = typer.Option("20", "--classes", help="Vocabulary size T, or a comma list: 2,20,150,847."),
    batch: str = typer.Option("1", "--batch", help="Images per forward, or a comma list: 1,4."),
    size: str = typer.Option("480x640", "--size", help="Synthetic image size HEIGHTxWIDTH (before the 640 resize)."),
    warmup: int = typer.Option(1, "--warmup", min=0, help="Untimed batches first."),
    suite: Optional[str] = typer.Option(
        None, "--suite", help="mess: every evaluation set at its class count and image size, and the projected full-run time."
    ),
    sets: Optional[str] = typer.Option(None, "--sets", help="With --suite: only these datasets or eval sets (comma list)."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model first (CAT-Seg: aggregator and decoder)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON instead of a table."),
) -> None:
    """Measure images/s and peak memory of any registered model's inference (synthetic images)."""
    import json

    from model.common.device import PRECISIONS, resolve_device
    from model.inference import default_precision

    torch_device = resolve_device(device)
    precisions = [default_precision(torch_device) if p.strip() == "auto" else p.strip() for p in precision.split(",")]
    for p in precisions:
        if p not in PRECISIONS:
            raise BenchError(f"--precision {p}: choose from auto, {', '.join(PRECISIONS)}")
    image_size = parse_size(size)
    class_counts = _int_list(classes, "--classes")
    batches = _int_list(batch, "--batch")
    suite_rows = None
    if sets is not None and suite is None:
        raise BenchError("--sets selects evaluation sets of a --suite; add --suite mess")
    if suite is not None:
        from catseg_bench.specs import SpecError

        if len(precisions) > 1 or len(batches) > 1:
            raise BenchError("--suite measures one precision and one batch size; give single values")
        try:
            suite_rows = suite_sets(suite, image_size, sets.split(",") if sets else None)
        except SpecError as err:
            raise BenchError(f"--suite {suite}: {err}") from None
    if suite_rows is not None:
        segmenter = build_for_speed(model, checkpoint, torch_device, precisions[0], mode, compile_model)
        rows = measure_suite(segmenter, torch_device, suite_rows, images=images, batch=batches[0], warmup=warmup)
        total = sum(r.projected_seconds for r in rows)
        if json_out:
            record = {"suite": suite, "model": model, "device": str(torch_device), "precision": precisions[0],
                      "mode": mode, "batch": batches[0], "projected_seconds": total, "rows": [asdict(r) for r in rows]}
            print(json.dumps(record, indent=1))
        else:
            title = (f"{model} on {torch_device}, {precisions[0]}, {mode}: {suite} projected in "
                     f"{total / 60:.1f} min ({images} timed image(s) per set)")
            Console().print(suite_table(rows, title))
        return
    results = []
    for p in precisions:
        segmenter = build_for_speed(model, checkpoint, torch_device, p, mode, compile_model)
        results.extend(
            measure_speed(segmenter, torch_device, classes=t, batch=b, images=images, image_size=image_size, warmup=warmup)
            for t in class_counts
            for b in batches
        )
    if json_out:
        print(json.dumps([r.as_dict() for r in results], indent=1))
    else:
        Console().print(speed_table(results))


def register(app: typer.Typer) -> None:
    app.command("speed")(speed)
