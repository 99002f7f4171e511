"""`bench report`: a self-contained HTML page with Table 1, intervals, per-set details and galleries."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import typer

from catseg_bench.errors import BenchError


def report(
    result_dirs: List[Path] = typer.Argument(..., help="Result folders (searched recursively for result JSON files)."),
    out: Path = typer.Option(Path("report.html"), "--out", help="The HTML file to write."),
    compare: Optional[Tuple[str, str]] = typer.Option(
        None, "--compare", help="Two runs to put side by side with paired intervals: --compare A B "
        "(each a row label, a model id or a results folder)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap resamples for the 95 % intervals."),
    published: Optional[str] = typer.Option(
        None, "--published", help="Published rows: seed (the default where the suite has a seed table), mess2023, none, "
        "or a JSON path."
    ),
    specs_dirs: List[Path] = typer.Option([], "--specs", help="Extra folder of dataset specs."),
    benchmark_name: str = typer.Option(
        "mess", "--suite", "--benchmark", help="Suite whose table to show: mess, in_domain, or a benchmark file's name in --specs."
    ),
    include_partial: bool = typer.Option(False, "--include-partial", help="Let --limit (partial) results into Table 1."),
    full_table: bool = typer.Option(
        False, "--full-table", help="Show every dataset column of Table 1 (by default only the measured ones when "
        "fewer than half of them were run)."
    ),
) -> None:
    """Write one HTML file (every image and plot inline, no network) about the runs in RESULT_DIRS.

    Examples:

      bench report bench_out/ --out report.html

      bench report bench_out/ --compare catseg-b catseg-l --bootstrap 2000
    """
    from catseg_bench.report import build_report
    from model.common.files import atomic_write_bytes

    if out.suffix.lower() not in (".html", ".htm"):
        raise BenchError(f"--out {out}: give a file name ending in .html")
    text = build_report(result_dirs, compare=compare, resamples=bootstrap,
                        published=published, specs_dirs=specs_dirs, benchmark_name=benchmark_name,
                        include_partial=include_partial, full_table=full_table)
    atomic_write_bytes(out, text.encode("utf-8"))
    typer.echo(f"wrote {out} ({len(text) / 2**20:.1f} MiB)")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
