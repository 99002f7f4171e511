"""Table 1 of the MESS benchmark: build it from aggregated rows, print it in several formats.

Layout (as the seed's Table 1): one row per model, datasets grouped under their domains in the
benchmark's order, each domain followed by its mean, then the Mean over all datasets. Published
rows come in their source's order; each of our models follows the published row it is compared
with, then a Δ row (ours − published). Missing values print as "–"; an incomplete domain or Mean
is never filled from fewer datasets.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from catseg_bench.aggregate import Aggregate, ModelRow, aggregate, columns, delta
from catseg_bench.errors import BenchError
from catseg_bench.results import PublishedTable
from catseg_bench.specs import Benchmark, DatasetSpec
from model.common.files import atomic_write_bytes

MISSING = "–"
PUBLISHED, OURS, DELTA = "published", "ours", "delta"


@dataclass(frozen=True)
class Column:
    key: str  # dataset name, domain name or "Mean"
    header: str  # display name
    domain: str | None  # display name of the domain it belongs to (None for Mean)
    is_aggregate: bool


@dataclass(frozen=True)
class TableRow:
    label: str
    kind: str  # PUBLISHED, OURS or DELTA
    values: dict[str, float | None]


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[TableRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def domains(self) -> list[str]:
        seen: list[str] = []
        for column in self.columns:
            if column.domain is not None and column.domain not in seen:
                seen.append(column.domain)
        return seen


def table_columns(benchmark: Benchmark, specs: Mapping[str, DatasetSpec]) -> list[Column]:
    out = []
    for domain in benchmark.shown_domains:
        out.extend(Column(name, specs[name].display_name, domain.display_name, False) for name in domain.datasets)
        out.append(Column(domain.name, domain.display_name, domain.display_name, True))
    out.append(Column("Mean", "Mean", None, True))
    assert [c.key for c in out] == columns(benchmark)
    return out


def match_key(name: str) -> str:
    """Model names compared loosely: "catseg-b" matches "CAT-Seg-B", "random" matches "Random (LB)"."""
    name = re.sub(r"\(.*?\)|\[.*?\]", "", name.lower())
    return re.sub(r"[^a-z0-9]", "", name)


def _values(aggregate_row: Aggregate, benchmark: Benchmark) -> dict[str, float | None]:
    return {column: aggregate_row.value(column) for column in columns(benchmark)}


def build_table(
    ours: Sequence[ModelRow],
    published: PublishedTable | None,
    benchmark: Benchmark,
    specs: Mapping[str, DatasetSpec],
    *,
    metric: str = "mIoU",
    compare: Mapping[str, str] | None = None,
) -> Table:
    """Published rows (recomputed from their per-dataset numbers), our rows and Δ rows.

    ``compare`` maps one of our labels or model ids to a published model name; without an entry,
    a model is compared with the published row of the same loose name (see :func:`match_key`).
    """
    table = Table(f"{benchmark.display_name} — {metric} (%)", table_columns(benchmark, specs))
    compare = dict(compare or {})
    if published is not None and published.metric != metric:
        table.notes.append(f"Published rows ({published.name}) report {published.metric}, not {metric}: not shown.")
        published = None
    if published is not None:
        known = {row.model for row in published.rows}
        for wanted in compare.values():
            if wanted not in known:
                raise BenchError(f"--compare: no row '{wanted}' in {published.path.name}; rows are: {', '.join(sorted(known))}")

    def partner(row: ModelRow) -> str | None:
        if published is None or row.untrained:
            return None
        for key in (row.label, row.model_id):
            if key in compare:
                return compare[key]
        return next((p.model for p in published.rows if match_key(p.model) == match_key(row.model_id)), None)

    placed: set[int] = set()
    if published is not None:
        table.notes.append(f"Published: {published.title}. Source: {published.source}.")
        for prow in published.rows:
            reference = aggregate(prow.scores, benchmark, specs)
            table.rows.append(TableRow(prow.label, PUBLISHED, _values(reference, benchmark)))
            if prow.note:
                table.notes.append(f"{prow.label}: {prow.note}")
            for index, row in enumerate(ours):
                if index not in placed and partner(row) == prow.model:
                    placed.add(index)
                    table.rows.append(TableRow(row.label, OURS, _values(row.aggregate, benchmark)))
                    table.rows.append(TableRow(f"Δ vs {prow.label}", DELTA, delta(row.aggregate, reference, benchmark)))
    for index, row in enumerate(ours):
        if index not in placed:
            table.rows.append(TableRow(row.label, OURS, _values(row.aggregate, benchmark)))
    for row in ours:
        table.notes.extend(f"{row.label}: {note}" for note in row.notes)
    return table


def add_reading_notes(table: Table, benchmark: Benchmark, datasets_without_spec: Sequence[str],
                      skipped: Sequence[tuple[str, str]]) -> None:
    """Say under the table what it shows beside the benchmark and what it could not show: datasets
    outside the benchmark (their own domain groups), results without a spec, result files set aside."""
    if benchmark.extra_domains:
        table.notes.append(
            f"Datasets outside {benchmark.display_name} ({', '.join(d.display_name for d in benchmark.extra_domains)}) "
            "are shown after its domains; they are not part of its Mean."
        )
    if datasets_without_spec:
        table.notes.append(
            f"Results for datasets without a spec are not shown: {', '.join(datasets_without_spec)}; "
            "pass their folder with --specs."
        )
    table.notes.extend(f"skipped {path}: {reason}" for path, reason in skipped)


def print_table(
    console,
    result_dirs: Sequence[Path | str],
    *,
    published: str | Path = "seed",
    fmt: str = "rich",
    metric: str = "mIoU",
    include_partial: bool = False,
    compare: Mapping[str, str] | None = None,
    digits: int = 2,
    plot: Path | str | None = None,
    specs_dirs: Sequence[Path] = (),
    benchmark_name: str = "mess",
) -> Table:
    """Read result folders, build Table 1 (`catseg_bench.api.make_table`) and print it on a rich
    `console` (what `bench table` and `bench run` do). ``published`` is ``seed``, ``mess2023``,
    ``none`` or a JSON path; ``fmt`` is rich or one of :data:`RENDERERS`; text formats are written
    verbatim (no markup, no wrapping)."""
    from catseg_bench.api import make_table

    if fmt != "rich" and fmt not in RENDERERS:
        raise BenchError(f"--format {fmt!r}: use rich, {', '.join(RENDERERS)}")
    table = make_table(list(result_dirs), published, "table", metric=metric, include_partial=include_partial,
                       compare=compare, specs_dirs=specs_dirs, benchmark=benchmark_name)
    if fmt == "rich":
        console.print(render_rich(table, digits, width=console.width))
    else:
        console.file.write(RENDERERS[fmt](table, digits))
        console.file.flush()
    if plot is not None:
        plot_domains(table, plot)
    return table


# --- rendering ----------------------------------------------------------------------------------


def _cell(value: float | None, kind: str, digits: int) -> str:
    if value is None:
        return MISSING
    return f"{value:+.{digits}f}" if kind == DELTA else f"{value:.{digits}f}"


def render_markdown(table: Table, digits: int = 2) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    headers = ["Model"] + [f"**{c.header}**" if c.is_aggregate else c.header for c in table.columns]
    out = [f"**{table.title}**", "", line(headers), "|:---|" + "---:|" * len(table.columns)]
    for row in table.rows:
        label = f"*{row.label}*" if row.kind == DELTA else row.label
        out.append(line([label] + [_cell(row.values[c.key], row.kind, digits) for c in table.columns]))
    if table.notes:
        out.append("")
        out.extend(f"- {note}" for note in table.notes)
    return "\n".join(out) + "\n"


_LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                   "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "Δ": r"$\Delta$",
                   "–": "--"}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def render_latex(table: Table, digits: int = 2) -> str:
    """A booktabs tabular: domain names spanning their datasets and their mean ("avg.")."""
    groups: list[tuple[str, int]] = []
    for column in table.columns:
        name = column.domain or ""
        if groups and groups[-1][0] == name:
            groups[-1] = (name, groups[-1][1] + 1)
        else:
            groups.append((name, 1))
    spec = "l" + "".join(f"|{'r' * width}" for _, width in groups)
    top, rules, start = ["Model"], [], 2
    for name, width in groups:
        top.append(rf"\multicolumn{{{width}}}{{c}}{{{_tex(name)}}}" if name else "")
        if name:
            rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    second = [""] + [
        ("avg." if c.domain else "Mean") if c.is_aggregate else _tex(c.header) for c in table.columns
    ]
    out = [
        f"% {_tex(table.title)}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(top) + r" \\",
        " ".join(rules),
        " & ".join(second) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        cells = [_tex(_cell(row.values[c.key], row.kind, digits)) for c in table.columns]
        label = rf"\textit{{{_tex(row.label)}}}" if row.kind == DELTA else _tex(row.label)
        out.append(" & ".join([label] + cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out.extend(f"% {_tex(note)}" for note in table.notes)
    return "\n".join(out) + "\n"


def render_csv(table: Table, digits: int = 2) -> str:
    """One row per model (no Δ rows): model, the datasets by display name, the domains, Mean."""
    datasets = [c for c in table.columns if not c.is_aggregate]
    domains = [c for c in table.columns if c.is_aggregate and c.key != "Mean"]
    mean = [c for c in table.columns if c.key == "Mean"]
    ordered = datasets + domains + mean
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model"] + [c.header for c in datasets] + [c.key for c in domains] + ["Mean"])
    for row in table.rows:
        if row.kind == DELTA:
            continue
        values = [row.values[c.key] for c in ordered]
        writer.writerow([row.label] + ["" if v is None else f"{v:.{digits}f}" for v in values])
    return buffer.getvalue()


RENDERERS = {"markdown": render_markdown, "latex": render_latex, "csv": render_csv}  # text formats, by name

_NARROW_HEADER = 11  # a value column never gets narrower than its numbers, nor wider than this, in a narrow terminal


def render_rich(table: Table, digits: int = 2, width: int | None = None):
    """Rich renderables: one block per domain (datasets + avg.), then a summary block, then notes.

    Numbers are never shortened: when a block is wider than `width`, its value columns get fixed
    widths (the widest number, or the header's longest word up to 11 characters) and the headers
    and model names wrap instead.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    labels = [row.label for row in table.rows]

    def block(title: str, cols: list[Column]) -> RichTable:
        headers = [c.header if not c.is_aggregate or c.key == "Mean" or title == "Summary" else "avg." for c in cols]
        cells = [[_cell(row.values[c.key], row.kind, digits) for row in table.rows] for c in cols]
        numbers = [max(map(len, column_cells), default=1) for column_cells in cells]
        natural = max(map(len, labels), default=5) + sum(max(n, len(h)) for n, h in zip(numbers, headers)) + 2 * len(cols)
        narrow = width is not None and natural > width
        grid = RichTable(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        grid.add_column("Model", overflow="fold", min_width=min(12, max(map(len, labels), default=5)))
        for column, header, number in zip(cols, headers, numbers):
            fixed = max(number, min(_NARROW_HEADER, max(map(len, header.split())))) if narrow else None
            grid.add_column(header, justify="right", overflow="fold", width=fixed, min_width=number,
                            style="bold" if column.is_aggregate else None)
        for index, row in enumerate(table.rows):
            texts = []
            for column, column_cells in zip(cols, cells):
                value = row.values[column.key]
                style = ""
                if row.kind == DELTA and value is not None:
                    style = "green" if value > 0 else "red" if value < 0 else ""
                texts.append(Text(column_cells[index], style=style))
            label_style = {PUBLISHED: "dim", OURS: "bold cyan", DELTA: "italic"}[row.kind]
            grid.add_row(Text(row.label, style=label_style), *texts)
        return grid

    blocks = []
    for domain in table.domains:
        blocks.append(block(domain, [c for c in table.columns if c.domain == domain]))
    blocks.append(block("Summary", [c for c in table.columns if c.is_aggregate]))
    blocks.extend(Text(f"• {note}", style="dim") for note in table.notes)
    return Group(Text(table.title, style="bold"), *blocks)


def plot_domains(table: Table, path: Path | str) -> Path:
    """A grouped bar chart of the domain means and the Mean: our rows and the rows they compare
    with, or every row when there are no results of ours. Incomplete values have no bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise BenchError(f"--plot {path}: give a file name ending in .png")
    rows = [r for r in table.rows if r.kind != DELTA]
    if any(r.kind == OURS for r in rows):
        compared = {r.label.removeprefix("Δ vs ") for r in table.rows if r.kind == DELTA}
        rows = [r for r in rows if r.kind == OURS or r.label in compared]
    summary = [c for c in table.columns if c.is_aggregate]
    width = 0.8 / max(1, len(rows))
    figure, axes = plt.subplots(figsize=(min(16.0, max(8.0, 2 + 0.3 * len(summary) * len(rows))), 5))
    colours = plt.get_cmap("tab20").colors
    for i, row in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(summary))]
        heights = [row.values[c.key] for c in summary]
        bars = [(x, h) for x, h in zip(xs, heights) if h is not None]
        axes.bar([x for x, _ in bars], [h for _, h in bars], width=width, label=row.label, color=colours[i % 20],
                 hatch="//" if row.kind == PUBLISHED and any(r.kind == OURS for r in rows) else None)
    axes.set_xticks(range(len(summary)), [c.header for c in summary], rotation=15)
    axes.set_ylabel(table.title.split(" — ")[-1])
    axes.set_title(table.title)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path
