"""`bench score`: MESS numbers for any model's saved predictions, without detectron2.

Predictions are single-channel PNGs of class indices (8-bit, or 16-bit for more than 256 classes),
at the label's resolution, named like the labels: ``<PRED>/<key>.png`` where ``key`` is the label's
path relative to the spec's label folder with the spec's label suffix removed (the name `bench run
--save-predictions` uses). For a composite dataset (PAXRay-4) each subset has its own folder,
``<PRED>/<subset>/`` (``lungs/``) or ``<PRED>/<eval set>/`` (``paxray4.lungs/``, the layout `bench
run` writes); ``--dataset paxray4.lungs`` scores one subset from ``<PRED>/`` directly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from PIL import Image

from catseg_bench.errors import BenchError

_SHOWN = 5


def read_prediction(path: Path) -> np.ndarray:
    """A prediction PNG as an integer array; anything but a single-channel index image is an error."""
    from catseg_bench.data.decode import index_array

    try:
        with Image.open(path) as img:
            array = index_array(img)
            if array is not None:
                return array
            mode = img.mode
    except FileNotFoundError:
        raise BenchError(f"{path}: prediction file not found") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise BenchError(f"{path}: prediction is not a readable PNG ({err}); re-export it") from None
    raise BenchError(
        f"{path}: prediction is a {mode} image; predictions must be single-channel PNGs of class indices "
        "(8-bit, or 16-bit for more than 256 classes), not colour renderings"
    )


def prediction_dir(pred_root: Path, eval_set, whole_dataset: bool) -> Path:
    """Where the predictions of `eval_set` are (see the module docstring)."""
    if eval_set.subset is None or not whole_dataset:
        return pred_root
    for candidate in (pred_root / eval_set.subset, pred_root / eval_set.name):
        if candidate.is_dir():
            return candidate
    raise BenchError(
        f"{pred_root}: no folder '{eval_set.subset}/' or '{eval_set.name}/' with the predictions of subset "
        f"{eval_set.subset} of {eval_set.spec.name}; put each subset's PNGs in its own folder"
    )


def score_predictions(eval_set, dataset, pred_dir: Path, out_dir: Path, model_id: str, device: str) -> Path:
    """Score every image of `dataset` against ``pred_dir/<key>.png`` and write the result file."""
    from catseg_bench.metrics import ConfusionMatrix
    from catseg_bench.results import Timing, write_result

    paths = [pred_dir / f"{name}.png" for name in dataset.names]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p.relative_to(pred_dir)) for p in missing[:_SHOWN])
        raise BenchError(
            f"{pred_dir}: {len(missing)} of {len(paths)} predictions of {eval_set.name} are missing (e.g. {shown}); "
            "name each PNG like its label: <label path without the label suffix>.png"
        )
    start = time.perf_counter()
    confusion = ConfusionMatrix(eval_set.num_classes, eval_set.ignore_index, device)
    for index, path in enumerate(paths):
        confusion.update(read_prediction(path), dataset.read_label(index), image=str(path))
    return write_result(
        out_dir,
        eval_set=eval_set,
        model_id=model_id,
        checkpoint_sha256=None,
        settings={"scored_from": "prediction PNGs", "predictions": str(pred_dir.resolve())},
        confusion=confusion,
        images_scored=len(paths),
        images_total=len(paths),
        timing=Timing(seconds=time.perf_counter() - start),
    )


def score(
    dataset_name: str = typer.Option(..., "--dataset", help="Dataset (e.g. kvasir_instrument, paxray4) or one eval set (paxray4.lungs)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Prepared data (default $CATSEG_BENCH_DATA)."),
    pred: Path = typer.Option(..., "--pred", help="Folder of prediction PNGs (class indices), named like the labels."),
    output: Path = typer.Option(..., "--output", help="Results go to OUTPUT/<model id>/<eval set>.json."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="Name of the model in the result (default: the --pred folder's name)."),
    device: str = typer.Option("cpu", "--device", help="Where to accumulate the confusion matrix (cpu, cuda)."),
    specs_dirs: List[Path] = typer.Option([], "--specs", help="Extra folder of dataset specs."),
) -> None:
    """Score saved predictions with the MESS metric and write the same result files as `bench run`.

    Examples:

      bench score --dataset kvasir_instrument --data-root data --pred preds/kvasir --output results

      bench score --dataset paxray4 --data-root data --pred preds/paxray --output results   # preds/paxray/lungs/...
    """
    from rich.console import Console
    from rich.table import Table

    from catseg_bench.aggregate import complete_mean
    from catseg_bench.data import open_eval_set, resolve_data_root
    from catseg_bench.results import read_result
    from catseg_bench.selection import select_eval_sets
    from catseg_bench.specs import load_all

    specs, benchmarks = load_all(specs_dirs)
    eval_sets = select_eval_sets(dataset_name, specs, benchmarks["mess"])
    spec_name = eval_sets[0].spec.name
    if any(es.spec.name != spec_name for es in eval_sets):
        raise BenchError(f"--dataset {dataset_name}: selects several datasets; score one dataset (or one eval set) at a time")
    subset = dataset_name.strip() not in specs
    if not pred.is_dir():
        raise BenchError(f"{pred}: --pred is not a folder")
    root = resolve_data_root(data_root)
    model = model_id or pred.resolve().name
    out_dir = output / model

    summary = Table(title=f"MESS scores of {model}", title_justify="left")
    summary.add_column("eval set", no_wrap=True)
    for header in ("images", "mIoU", "CoI-mIoU", "pACC"):
        summary.add_column(header, justify="right")
    mious = []
    for eval_set in eval_sets:
        dataset = open_eval_set(eval_set, root)
        path = score_predictions(
            eval_set, dataset, prediction_dir(pred, eval_set, whole_dataset=not subset), out_dir, model, device
        )
        metrics = read_result(path).metrics
        mious.append(metrics["mIoU"])
        cells = [metrics[m] for m in ("mIoU", "CoI-mIoU", "pACC")]
        summary.add_row(eval_set.name, str(len(dataset)), *("–" if v is None else f"{v:.2f}" for v in cells))
    if len(eval_sets) > 1:
        mean = complete_mean(mious)
        summary.add_row(f"{spec_name} (mean of subsets)", "", "–" if mean is None else f"{mean:.2f}", "", "")
    console = Console()
    console.print(summary)
    console.print(f"wrote {len(eval_sets)} result file(s) to {out_dir}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
