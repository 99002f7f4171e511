"""`bench score`: MESS numbers for any model's saved predictions, without detectron2.

The prediction folder is evaluated as a segmenter (`predictions`) through the same runner as `bench
run`: resumable after an interruption, shardable with torchrun, with the same result files. The
folder layout is described in `catseg_bench.segmenters.predictions`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer


def score(
    dataset_name: str = typer.Option(
        ..., "--dataset", help="Dataset (e.g. kvasir_instrument, paxray4) or one eval set (paxray4.lungs)."
    ),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Prepared data (default $CATSEG_BENCH_DATA)."),
    pred: Path = typer.Option(..., "--pred", help="Folder of prediction PNGs (class indices), named like the labels."),
    output: Path = typer.Option(..., "--output", help="Results go to OUTPUT/<model id>/<eval set>.json."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="Name of the model in the result (default: the --pred folder's name)."),
    device: str = typer.Option("cpu", "--device", help="Where to accumulate the confusion matrix (cpu, cuda)."),
    workers: int = typer.Option(min(4, os.cpu_count() or 1), "--workers", min=0, help="DataLoader reading workers."),
    specs_dirs: List[Path] = typer.Option([], "--specs", help="Extra folder of dataset specs."),
    allow_incomplete: bool = typer.Option(
        False, "--allow-incomplete", help="Score a set with fewer images than its spec expects, as a partial result."
    ),
) -> None:
    """Score saved predictions with the MESS metric and write the same result files as `bench run`.

    Examples:

      bench score --dataset kvasir_instrument --data-root data --pred preds/kvasir --output results

      bench score --dataset paxray4 --data-root data --pred preds/paxray --output results   # preds/paxray/lungs/...
    """
    from rich.console import Console

    from catseg_bench import api
    from catseg_bench.aggregate import subset_mean
    from catseg_bench.commands.run import progress_display, report_outcomes
    from catseg_bench.errors import BenchError

    if not pred.is_dir():
        raise BenchError(f"{pred}: --pred is not a folder")
    console = Console()
    progress, on_progress = progress_display(console, int(os.environ.get("RANK", "0")) == 0)
    with progress:
        report = api.score_predictions(pred, dataset_name, data_root, output, model_id, device=device,
                                       specs_dirs=specs_dirs, workers=workers, allow_incomplete=allow_incomplete,
                                       on_progress=on_progress)
    report_outcomes(console, report)
    if not report.world.is_main:
        return
    scores = {o.eval_set: o.miou for o in report.outcomes}
    for spec in {e.spec.name: e.spec for e in api.select(dataset_name, specs_dirs) if e.subset is not None}.values():
        if all(e.name in scores for e in spec.eval_sets()):
            mean = subset_mean(spec, scores)
            console.print(f"{spec.name} (mean of subsets): mIoU {'–' if mean is None else f'{mean:.2f}'}", highlight=False)
    done = [o for o in report.outcomes if o.status != "failed"]
    console.print(f"wrote {len(done)} result file(s) to {report.result_dir}", highlight=False, soft_wrap=True)
    report.raise_for_failures(reasons=False)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
