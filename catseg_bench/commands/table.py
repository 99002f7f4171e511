"""`bench table`: Table 1 of MESS (or another suite's table) from result folders, beside the published numbers."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from catseg_bench.errors import BenchError


class TableFormat(str, Enum):
    rich = "rich"
    markdown = "markdown"
    latex = "latex"
    csv = "csv"
    mess_csv = "mess-csv"
    json = "json"


def _parse_compare(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours or not theirs:
            raise BenchError(f"--compare {pair!r}: write OURS=PUBLISHED, e.g. --compare catseg-b=CAT-Seg-B")
        out[ours] = theirs
    return out


def table(
    result_dirs: List[Path] = typer.Argument(None, help="Result folders (searched recursively for result JSON files)."),
    published: Optional[str] = typer.Option(
        None, "--published", help="Published rows to show: seed (the CAT-Seg paper's table of the suite: "
        "supplementary Table 1 for mess, the in-domain rows for in_domain; the default where the suite has one), "
        "mess2023 (leaderboard, CAT-Seg v1 weights), none, or a path to a JSON file in the results/published format."
    ),
    fmt: TableFormat = typer.Option(TableFormat.rich, "--format", help="Output format."),
    metric: str = typer.Option("mIoU", "--metric", help="Metric to tabulate (mIoU, CoI-mIoU, fwIoU, mACC, pACC, CoI-mACC)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the per-domain comparison into this PNG file."),
    compare: List[str] = typer.Option(
        [], "--compare", help="OURS=PUBLISHED: compare our model (label or id) with this published row "
        "(default: the row of the same name, e.g. catseg-b ~ CAT-Seg-B)."
    ),
    digits: int = typer.Option(2, "--digits", min=0, max=6, help="Decimals to print."),
    specs_dirs: List[Path] = typer.Option([], "--specs", help="Extra folder of dataset specs."),
    benchmark_name: str = typer.Option(
        "mess", "--suite", "--benchmark", help="Suite whose table to print: mess (Table 1), in_domain (A-847 ... "
        "PAS-20b, the seed's Tables 3 and 4), or the name of a benchmark file in --specs."
    ),
    ci: bool = typer.Option(False, "--ci", help="Add 95 % bootstrap intervals (over images) under each of our rows."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Resamples for --ci."),
    include_partial: bool = typer.Option(False, "--include-partial", help="Let --limit (partial) results into the table."),
) -> None:
    """Print Table 1: per-dataset scores grouped by domain, domain means and the Mean over all datasets.

    A dataset without a (complete) result leaves its domain and the Mean empty, never averaged over fewer.
    --suite in_domain prints the in-domain table (six datasets in the papers' order, and their Mean).

    Examples:

      bench table results/ --published seed

      bench table results/ --suite in_domain --published seed

      bench table results/ --format csv > table1.csv

      bench table results/ --format mess-csv > results.csv   # the MESS toolkit's layout, for the leaderboard

      bench table results/ --ci

      bench table --published mess2023 --format markdown --plot domains.png
    """
    from rich.console import Console

    from catseg_bench.console_table import print_table

    print_table(
        Console(soft_wrap=False),
        result_dirs or [],
        published=published,
        fmt=fmt.value,
        metric=metric,
        compare=_parse_compare(compare),
        digits=digits,
        plot=plot,
        specs_dirs=specs_dirs,
        benchmark_name=benchmark_name,
        ci=bootstrap if ci else None,
        include_partial=include_partial,
    )
    if plot is not None:
        typer.echo(f"wrote {plot}", err=True)


def register(app: typer.Typer) -> None:
    app.command("table")(table)
