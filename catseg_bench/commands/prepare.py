"""`bench prepare NAME...|all`: download and convert datasets into the MESS layout, verified and resumable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from catseg_bench.errors import BenchError
from catseg_bench.prepare.download import DEFAULT_DOWNLOADS, MIRROR_ENV, Fetcher
from catseg_bench.selection import select_datasets
from catseg_bench.specs import load_all, training_specs_dir


def register(app: typer.Typer) -> None:
    @app.command("prepare")
    def prepare(
        names: list[str] = typer.Argument(..., help="all (the MESS benchmark), suite:NAME (e.g. suite:in_domain), domain:NAME, dataset names (see `bench datasets list`) or a training set (coco_stuff_171)."),
        data_root: Path = typer.Option(..., "--data-root", help="Folder that receives the prepared datasets (created if missing)."),
        download_dir: Optional[Path] = typer.Option(
            None, "--download-dir", help=f"Where downloads go and manual files are looked for (default: DATA_ROOT/{DEFAULT_DOWNLOADS})."
        ),
        keep_archives: bool = typer.Option(False, "--keep-archives", help="Keep downloaded archives after a dataset is prepared."),
        jobs: int = typer.Option(os.cpu_count() or 1, "--jobs", "-j", min=1, help="Worker processes for conversion."),
        mirror: Optional[str] = typer.Option(
            None, "--mirror", help=f"Fetch every file from this mirror root (URL host/path kept under it); also ${MIRROR_ENV}."
        ),
        specs: list[Path] = typer.Option([], "--specs", help="Extra folder(s) of dataset specs."),
    ) -> None:
        """Download, unpack and convert datasets; each is verified (image count = spec's num_images) before it is marked done.

        Reruns skip prepared datasets and finished downloads, and continue partial downloads. Datasets
        behind a registration (BDD100K, ISPRS Potsdam, UAVid, FloodNet, CryoNuSeg) print which files to
        fetch by hand and where to put them, and are picked up on the next run.
        """
        all_specs, benchmarks = load_all([*specs, training_specs_dir()])
        selected = _select(names, all_specs, benchmarks)
        from catseg_bench.prepare import Reporter, prepare_dataset  # the pipeline loads torch

        data_root.mkdir(parents=True, exist_ok=True)
        downloads = download_dir or data_root / DEFAULT_DOWNLOADS
        fetcher = Fetcher.from_env(mirror)
        reporter = Reporter(Console(stderr=True))
        outcomes, failures = [], []
        for spec in selected:
            reporter.say(f"[bold]{spec.display_name}[/bold] ({spec.name})")
            try:
                outcome = prepare_dataset(spec, _recipe_of(spec), data_root, downloads, fetcher, jobs, keep_archives, reporter)
            except BenchError as err:
                reporter.say(f"  [red]failed:[/red] {err.message}")
                failures.append((spec.name, err.message))
                continue
            reporter.say(f"  {outcome.message}")
            outcomes.append(outcome)
        _summary(outcomes, failures)
        manual = [o for o in outcomes if o.status == "manual"]
        if failures or manual:
            parts = []
            if failures:
                parts.append(f"{len(failures)} failed ({', '.join(n for n, _ in failures)})")
            if manual:
                parts.append(f"{len(manual)} wait for files downloaded by hand ({', '.join(o.name for o in manual)}; see above)")
            raise BenchError("bench prepare: " + "; ".join(parts) + "; rerun after fixing, finished datasets are skipped")


def _recipe_of(spec):
    """The spec's recipe, looked up only when it runs: data already in place (prepared by MESS, or a
    user's dataset) is verified and marked done without one."""
    def run_recipe(context) -> None:
        from catseg_bench.prepare import get_recipe

        get_recipe(spec)(context)

    return run_recipe


def _select(names, all_specs, benchmarks):
    if "mess" not in benchmarks:
        raise BenchError("the mess benchmark (dataset_specs/mess.toml) is missing; reinstall catseg-bench")
    return select_datasets(names, all_specs, benchmarks["mess"], benchmarks)


def _summary(outcomes, failures) -> None:
    table = Table(title="bench prepare", title_justify="left")
    for header in ("dataset", "status", "images"):
        table.add_column(header, no_wrap=header == "dataset")
    for o in outcomes:
        table.add_row(o.name, o.status, ", ".join(f"{k}: {v}" for k, v in o.counts.items()) or "-")
    for name, _ in failures:
        table.add_row(name, "failed", "-")
    Console().print(table)
