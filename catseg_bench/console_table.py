"""Table 1 printed on a console: what `bench table` and `bench run` show.

Apart from :mod:`catseg_bench.tables` (building and rendering) so that the tables module never
imports the API that builds on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from catseg_bench.api import make_table
from catseg_bench.errors import BenchError
from catseg_bench.tables import RENDERERS, Table, add_table_intervals, plot_domains, render_rich


def print_table(
    console,
    result_dirs: Sequence[Path | str],
    *,
    published: str | Path | None = None,
    fmt: str = "rich",
    metric: str = "mIoU",
    include_partial: bool = False,
    compare: Mapping[str, str] | None = None,
    digits: int = 2,
    plot: Path | str | None = None,
    specs_dirs: Sequence[Path] = (),
    benchmark_name: str = "mess",
    ci: int | None = None,
) -> Table:
    """Read result folders, build the table of the suite `benchmark_name` (Table 1 for MESS;
    :func:`catseg_bench.api.make_table`) and print it on a rich `console` (what `bench table` and `bench
    run` do). ``published`` is ``seed``, ``mess2023``, ``none`` or a JSON path (None: the seed's table
    of the suite, if it has one); ``fmt`` is rich or one of :data:`RENDERERS`; text formats are written
    verbatim (no markup, no wrapping). ``ci`` (a number of resamples) adds a bootstrap interval row
    under each of our rows."""
    from catseg_bench.results import default_published

    if fmt != "rich" and fmt not in RENDERERS:
        raise BenchError(f"--format {fmt!r}: use rich, {', '.join(RENDERERS)}")
    if published is None:
        published = default_published(benchmark_name)
    table = make_table(list(result_dirs), published, "table", metric=metric, include_partial=include_partial,
                       compare=compare, specs_dirs=specs_dirs, benchmark=benchmark_name)
    if ci:
        add_table_intervals(table, result_dirs, ci, metric=metric, include_partial=include_partial,
                            specs_dirs=specs_dirs, benchmark_name=benchmark_name)
    if fmt == "rich":
        console.print(render_rich(table, digits, width=console.width))
    else:
        console.file.write(RENDERERS[fmt](table, digits))
        console.file.flush()
    if plot is not None:
        plot_domains(table, plot)
    return table
