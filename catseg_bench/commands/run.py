"""`bench run`: evaluate a model on the benchmark (or a selection) and end with Table 1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from catseg_bench.demo import DEMO_MODEL
from catseg_bench.errors import BenchError

if TYPE_CHECKING:
    from catseg_bench.runner import SetOutcome

DEMO_IMAGES_PER_SET = 2
DEMO_NOTICE = (
    "DEMO: catseg-tiny with UNTRAINED (random, seeded) weights on a SYNTHETIC suite. "
    "The numbers below exercise the whole pipeline; they are NOT MESS numbers."
)


class _ImagesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} img/s" if speed else "– img/s", style="cyan")


def _summary(outcomes: list[SetOutcome]) -> Table:
    table = Table(title="Run summary", title_justify="left")
    for header in ("eval set", "status", "mIoU", "images", "seconds", "images/s", "peak memory (MiB)"):
        table.add_column(header, justify="left" if header in ("eval set", "status") else "right",
                         no_wrap=header == "eval set")
    styles = {"failed": "red", "skipped": "dim", "resumed": "yellow", "done": "green"}

    def fmt(value, spec):
        return "–" if value is None else format(value, spec)

    for o in outcomes:
        status = f"{o.status} (stale before)" if o.stale_reasons and o.status != "failed" else o.status
        table.add_row(
            o.eval_set, Text(status, style=styles.get(o.status, "")), fmt(o.miou, ".2f"), str(o.images),
            fmt(o.seconds, ".1f"), fmt(o.images_per_second, ".2f"),
            fmt(None if o.peak_memory_bytes is None else o.peak_memory_bytes / 2**20, ".0f"),
        )
    return table


def _explain(console: Console, outcomes: list[SetOutcome]) -> None:
    """One line per set that was redone because its old result was stale, and per failure."""
    for o in outcomes:
        if o.stale_reasons:
            console.print(f"[yellow]redone[/yellow] {o.eval_set}: old result set aside ({'; '.join(o.stale_reasons)})",
                          highlight=False, soft_wrap=True)
        if o.status == "failed":
            console.print(f"[red]failed[/red] {o.eval_set}: {o.message}", highlight=False, soft_wrap=True)


def progress_display(console: Console, enabled: bool) -> tuple[Progress, Callable[[str, int, int], None]]:
    """A rich progress bar per evaluation set, and the callback the runner reports to."""
    progress = Progress(
        TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), _ImagesPerSecond(),
        TimeRemainingColumn(), console=console, disable=not enabled,
    )
    tasks: dict[str, int] = {}

    def on_progress(name: str, done: int, total: int) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name, total=total, completed=done)
        progress.update(tasks[name], completed=done)

    return progress, on_progress


def report_outcomes(console: Console, report) -> None:
    """The run summary and the failure lines (main process), or this process's own failures (others)."""
    if not report.world.is_main:
        errors = Console(stderr=True)
        for o in report.outcomes:
            if o.status == "failed" and not o.failed_elsewhere:
                errors.print(f"[red]failed[/red] {o.eval_set} (process {report.world.rank}): {o.message}",
                             highlight=False, soft_wrap=True)
        return
    console.print(_summary(report.outcomes))
    _explain(console, report.outcomes)


def where_results_are(result_dir: Path, output: Path) -> str:
    """The run's last line (before a failure summary): where its results are and how to see them again."""
    return (f"Results: {result_dir}/ (one JSON per set). Table 1 again: bench table {output}; "
            f"the HTML report: bench report {output} --out report.html")


def print_label_warnings(console: Console, report, verbose: bool = False) -> None:
    """The label sanity warnings stored in every scored set's result: one line per set unless `verbose`."""
    from catseg_bench.data.labelstats import summarised
    from catseg_bench.results import read_result, result_path

    for o in report.outcomes:
        if o.status == "failed":
            continue
        try:
            warnings = read_result(result_path(report.result_dir, o.eval_set)).label_warnings
        except BenchError:
            continue
        for line in warnings if verbose else summarised(warnings, "--verbose lists them"):
            console.print(f"[yellow]warning:[/yellow] {line}", highlight=False, soft_wrap=True)


def suites_of(eval_sets, benchmarks) -> list[str]:
    """The suites whose tables show a run's results: those holding one of its sets (MESS first), and MESS
    for a set of no suite (a user's dataset, shown after the MESS domains)."""
    from catseg_bench.specs import suites_in_order

    names = {es.spec.name for es in eval_sets}
    chosen = [suite.name for suite in suites_in_order(benchmarks) if names & set(suite.members)]
    if names - {name for suite in benchmarks.values() for name in suite.members} and "mess" not in chosen:
        chosen.insert(0, "mess")
    return chosen or ["mess"]


def _model_help() -> str:
    from catseg_bench.registry import available_segmenters

    return f"A registered model ({', '.join(available_segmenters())}; see `bench models list`) or module:Class."


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        model: str = typer.Option(DEMO_MODEL, "--model", help=_model_help()),
        checkpoint: Optional[str] = typer.Option(
            None, "--checkpoint", help="Weights: the model's default (the official ones for catseg-b/-l), 'hub', a "
            "path or URL, or 'none' for untrained (random, seeded) weights, labelled untrained in every table."
        ),
        model_args: Optional[str] = typer.Option(
            None, "--model-args", help="Constructor arguments key=value[,key=value...] (see `bench models list`)."
        ),
        datasets: Optional[str] = typer.Option(
            None, "--datasets", help="all (MESS), suite:NAME (mess, in_domain, or a benchmark file of yours), domain:NAME, or "
            "NAME[,NAME...] (default: all; on a synthetic suite from "
            "`bench datasets synth`, the sets it holds)."
        ),
        data_root: Optional[Path] = typer.Option(None, "--data-root", help="Prepared data (default $CATSEG_BENCH_DATA)."),
        output: Path = typer.Option(Path("bench_out"), "--output", help="Results go to OUTPUT/<model>/."),
        specs: list[Path] = typer.Option([], "--specs", help="Extra folder(s) of dataset specs."),
        limit: Optional[int] = typer.Option(None, "--limit", min=1, help="First N images per set (partial results)."),
        device: str = typer.Option("auto", "--device", help="auto, cpu or cuda[:N]."),
        precision: str = typer.Option(
            "auto", "--precision", help="auto (the official protocol: tf32 on CUDA, fp32 on the CPU), fp32, tf32, or "
            "bf16 (autocast; not the reference protocol). Recorded in every result."
        ),
        mode: str = typer.Option("sliding", "--mode", help="sliding (the paper's patch inference) or whole (the official non-sliding path: one view at the CLIP resolution, the seed's Table 3 'training reso.' row); recorded in the result's settings."),
        batch_size: str = typer.Option(
            "1", "--batch-size", help="Images per forward (all their windows at once), or auto: the largest that fits "
            "the GPU's memory for each set's largest image (1 on the CPU)."
        ),
        workers: int = typer.Option(min(4, os.cpu_count() or 1), "--workers", min=0, help="DataLoader decoding workers."),
        save_predictions: bool = typer.Option(False, "--save-predictions", help="Also write prediction PNGs."),
        save_samples: int = typer.Option(
            0, "--save-samples", min=0, help="Keep N images per set with label and prediction for `bench report`."
        ),
        published: Optional[str] = typer.Option(
            None, "--published", help="Published rows beside ours: seed (the default where the suite has a seed "
            "table), mess2023, none."
        ),
        include_partial: bool = typer.Option(False, "--include-partial", help="Let --limit results into the table."),
        allow_incomplete: bool = typer.Option(
            False, "--allow-incomplete", help="Score a set with fewer images than its spec expects (else it fails); "
            "its result is partial, kept out of the table's aggregates."
        ),
        demo: bool = typer.Option(False, "--demo", help="Synthetic suite + untrained catseg-tiny on the CPU."),
        seed: int = typer.Option(0, "--seed", help="Seed of untrained weights (--checkpoint none) and of the demo's data."),
        verbose: bool = typer.Option(False, "--verbose", help="Every label warning of each set (default: one line per set)."),
    ) -> None:
        """Evaluate MODEL on the selected datasets, resuming finished work, and print Table 1 (and the table
        of each other suite the datasets belong to, e.g. in_domain)."""
        from catseg_bench import api
        from catseg_bench.preflight import require_writable_folder
        from catseg_bench.results import load_published
        from catseg_bench.specs import load_all
        from catseg_bench.synth import write_suite
        from catseg_bench.console_table import print_table

        console = Console(stderr=False)
        if demo:
            if model != DEMO_MODEL or checkpoint or model_args:
                raise BenchError("--demo always runs catseg-tiny with untrained weights; drop --model/--checkpoint/--model-args")
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise BenchError("--demo runs in one process on the CPU; run it without torchrun")
            checkpoint, device = "none", "cpu"
            data_root = require_writable_folder(output) / "demo-data"
            all_specs, benchmarks = load_all(specs)
            members = benchmarks["mess"].members
            write_suite(data_root, [s for s in all_specs.values() if s.name in members],
                        images_per_set=DEMO_IMAGES_PER_SET, seed=seed)
            console.print(Panel(DEMO_NOTICE, style="bold yellow"))
        if datasets is None:
            datasets = api.default_datasets(data_root, specs)
        eval_sets = api.select(datasets, specs)
        suites = suites_of(eval_sets, load_all(specs)[1])
        if published not in (None, "none"):
            for suite in suites:
                load_published(published, suite)  # a bad --published fails now, not after the whole run
        progress, on_progress = progress_display(console, int(os.environ.get("RANK", "0")) == 0)
        try:
            with progress:
                report = api.evaluate(
                    model, eval_sets, data_root, output, checkpoint=checkpoint, model_args=model_args, device=device,
                    precision=precision, mode=mode, seed=seed, limit=limit, batch_size=batch_size, workers=workers,
                    save_predictions=save_predictions, save_samples=save_samples, allow_incomplete=allow_incomplete,
                    on_progress=on_progress,
                )
        except KeyboardInterrupt:
            console.print(f"interrupted: finished results are kept in {output}; run the same command again to resume "
                          "(the set in progress continues from its last saved image)", highlight=False, soft_wrap=True)
            raise typer.Exit(code=130) from None
        report_outcomes(console, report)
        if not report.world.is_main:
            return
        print_label_warnings(console, report, verbose)
        for suite in suites:
            try:
                print_table(console, [output], published=published, fmt="rich", metric="mIoU",
                            include_partial=include_partial, specs_dirs=specs, benchmark_name=suite)
            except BenchError as err:  # e.g. nothing to show when every set failed: the failure summary comes last
                console.print(f"[yellow]no table:[/yellow] {err.message}", highlight=False, soft_wrap=True)
        if demo:
            console.print(Panel(DEMO_NOTICE, style="bold yellow"))
        console.print(where_results_are(report.result_dir, output), highlight=False, soft_wrap=True)
        report.raise_for_failures(reasons=False)
