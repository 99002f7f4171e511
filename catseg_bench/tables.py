"""Table 1 of the MESS benchmark: build it from aggregated rows, print it in several formats.

Layout (as the seed's Table 1): one row per model, datasets grouped under their domains in the
benchmark's order, each domain followed by its mean, then the Mean over all datasets. Published
rows come in their source's order; each of our models follows the published row it is compared
with, then a Δ row (ours − published). Missing values print as "–"; an incomplete domain or Mean
is never filled from fewer datasets. A row on untrained weights, synthetic data or labels other than
the spec's is labelled so and never gets a Δ row; a value whose labels raised a sanity warning is
marked † and the warning listed in the notes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from catseg_bench.aggregate import Aggregate, ModelRow, aggregate, aggregate_results, columns, delta
from catseg_bench.bootstrap import Interval, row_statistics, table_intervals
from catseg_bench.data.labelstats import summarised
from catseg_bench.errors import BenchError
from catseg_bench.results import PublishedTable, load_results
from catseg_bench.specs import Benchmark, DatasetSpec, load_benchmark, load_specs
from model.common.files import atomic_write_bytes, user_path

MISSING = "–"
PUBLISHED, OURS, DELTA = "published", "ours", "delta"
INTERVAL = "interval"  # the 95 % bootstrap interval of the row above it: values are (low, high) pairs
WARNING_MARK = "†"  # beside a value whose labels raised a sanity warning (listed in the notes)


@dataclass(frozen=True)
class Column:
    key: str  # dataset name, domain name or "Mean"
    header: str  # display name
    domain: str | None  # display name of the domain it belongs to (None for Mean)
    is_aggregate: bool


@dataclass(frozen=True)
class TableRow:
    label: str
    kind: str  # PUBLISHED, OURS, DELTA or INTERVAL
    values: dict[str, float | None] | dict[str, tuple[float, float] | None]
    marks: dict[str, str] = field(default_factory=dict)  # column key -> mark shown after its value

    def shown(self, key: str, digits: int) -> str:
        """The cell's text: the value (see :func:`_cell`) and its mark."""
        return _cell(self.values[key], self.kind, digits) + self.marks.get(key, "")


@dataclass
class Table:
    title: str
    columns: list[Column]
    rows: list[TableRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def domain_spans(self) -> list[tuple[str, int]]:
        """(domain display name, number of its columns) in column order; "" for the Mean."""
        groups: list[tuple[str, int]] = []
        for column in self.columns:
            name = column.domain or ""
            if groups and groups[-1][0] == name:
                groups[-1] = (name, groups[-1][1] + 1)
            else:
                groups.append((name, 1))
        return groups

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
        if domain in benchmark.averaged_domains:
            out.append(Column(domain.name, domain.display_name, domain.display_name, True))
    out.append(Column("Mean", "Mean", None, True))
    assert [c.key for c in out] == columns(benchmark)
    return out


def measured_columns(table: Table) -> list[Column]:
    """The columns of the datasets one of our rows has a value for, their domains' means and the Mean
    (every column when no row is ours): the compact layout of a table when few sets were run."""
    ours = [row for row in table.rows if row.kind == OURS]
    if not ours:
        return list(table.columns)
    measured = {c.key for c in table.columns if not c.is_aggregate and any(r.values[c.key] is not None for r in ours)}
    domains = {c.domain for c in table.columns if c.key in measured}
    return [c for c in table.columns if c.key in measured or c.key == "Mean" or (c.is_aggregate and c.domain in domains)]


def match_key(name: str) -> str:
    """Model names compared loosely: "catseg-b" matches "CAT-Seg-B", "random" matches "Random (LB)"."""
    name = re.sub(r"\(.*?\)|\[.*?\]", "", name.lower())
    return re.sub(r"[^a-z0-9]", "", name)


def _values(aggregate_row: Aggregate, benchmark: Benchmark) -> dict[str, float | None]:
    return {column: aggregate_row.value(column) for column in columns(benchmark)}


def _shares_setting(settings: Mapping[str, Any], name: str, value: Any) -> bool:
    """Whether a result's settings hold `name` = `value`. A published `false` also matches a result
    that leaves the setting out: segmenters record an off-by-default switch (CAT-Seg's `all_classes`)
    only when it is on, so the CVPR rows say `"all_classes": false` and an all-classes run meets none."""
    if name in settings:
        return settings[name] == value
    return value is False


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
    a model is compared with the first published row of the same loose name (see :func:`match_key`)
    or one of whose ``aliases`` it is, among the rows whose ``settings`` (if any) its results share:
    ``catseg-l`` run with ``--mode whole`` is the in-domain "w/ training reso." row, not CAT-Seg-L.
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
        if published is None or not row.comparable:
            return None
        for key in (row.label, row.model_id):
            if key in compare:
                return compare[key]
        wanted = match_key(row.model_id)
        return next((p.model for p in published.rows if wanted in {match_key(n) for n in (p.model, *p.aliases)}
                     and all(_shares_setting(row.settings, name, value) for name, value in p.settings.items())),
                    None)

    placed: set[int] = set()
    if published is not None:
        table.notes.append(f"Published: {published.title}. Source: {published.source}.")
        for prow in published.rows:
            reference = aggregate(prow.scores, benchmark, specs)
            table.rows.append(TableRow(prow.label, PUBLISHED, _values(reference, benchmark)))
            if prow.source:
                table.notes.append(f"{prow.label}: from {prow.source}")
            if prow.note:
                table.notes.append(f"{prow.label}: {prow.note}")
            for index, row in enumerate(ours):
                if index not in placed and partner(row) == prow.model:
                    placed.add(index)
                    table.rows.append(_our_row(row, benchmark))
                    table.rows.append(TableRow(f"Δ vs {prow.label}", DELTA, delta(row.aggregate, reference, benchmark)))
    for index, row in enumerate(ours):
        if index not in placed:
            table.rows.append(_our_row(row, benchmark))
    for row in ours:
        table.notes.extend(f"{row.label}: {note}" for note in row.notes)
    for row in ours:
        by_column: dict[str, list[str]] = {}
        for key, warning in row.warnings:
            by_column.setdefault(key, []).append(warning)
        for warnings in by_column.values():
            table.notes.extend(f"{WARNING_MARK} {row.label}: {line}"
                               for line in summarised(warnings, "the result's label_warnings list them"))
    return table


def _our_row(row: ModelRow, benchmark: Benchmark) -> TableRow:
    """One of our rows, a value whose labels raised a warning marked."""
    return TableRow(row.label, OURS, _values(row.aggregate, benchmark), {key: WARNING_MARK for key, _ in row.warnings})


def add_reading_notes(table: Table, benchmark: Benchmark, datasets_without_spec: Sequence[str],
                      skipped: Sequence[tuple[str, str]], in_other_suites: Mapping[str, str] | None = None) -> None:
    """Say under the table what it shows beside the benchmark and what it could not show: datasets
    outside the benchmark (their own domain groups), results of another suite's datasets (dataset ->
    suite), results without a spec, result files set aside."""
    if benchmark.extra_domains:
        table.notes.append(
            f"Datasets outside {benchmark.display_name} ({', '.join(d.display_name for d in benchmark.extra_domains)}) "
            "are shown after its domains; they are not part of its Mean."
        )
    by_suite: dict[str, list[str]] = {}
    for dataset, suite in (in_other_suites or {}).items():
        by_suite.setdefault(suite, []).append(dataset)
    for suite, datasets in sorted(by_suite.items()):
        table.notes.append(f"Results for datasets of the {suite} suite ({', '.join(datasets)}) are in its own table: "
                           f"bench table --suite {suite}.")
    if datasets_without_spec:
        table.notes.append(
            f"Results for datasets without a spec are not shown: {', '.join(datasets_without_spec)}; "
            "pass their folder with --specs."
        )
    table.notes.extend(f"skipped {path}: {reason}" for path, reason in skipped)


# --- rendering ----------------------------------------------------------------------------------


def _cell(value, kind: str, digits: int) -> str:
    if value is None:
        return MISSING
    if kind == INTERVAL:
        return f"{value[0]:.{digits}f}–{value[1]:.{digits}f}"
    return f"{value:+.{digits}f}" if kind == DELTA else f"{value:.{digits}f}"


def render_markdown(table: Table, digits: int = 2) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    headers = ["Model"] + [f"**{c.header}**" if c.is_aggregate else c.header for c in table.columns]
    out = [f"**{table.title}**", "", line(headers), "|:---|" + "---:|" * len(table.columns)]
    for row in table.rows:
        label = f"*{row.label}*" if row.kind == DELTA else row.label
        out.append(line([label] + [row.shown(c.key, digits) for c in table.columns]))
    if table.notes:
        out.append("")
        out.extend(f"- {note}" for note in table.notes)
    return "\n".join(out) + "\n"


_LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                   "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "Δ": r"$\Delta$",
                   "–": "--", WARNING_MARK: r"$^\dagger$"}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def render_latex(table: Table, digits: int = 2) -> str:
    """A booktabs tabular: domain names spanning their datasets and their mean ("avg.")."""
    groups = table.domain_spans()
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
        cells = [_tex(row.shown(c.key, digits)) for c in table.columns]
        label = rf"\textit{{{_tex(row.label)}}}" if row.kind == DELTA else _tex(row.label)
        out.append(" & ".join([label] + cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out.extend(f"% {_tex(note)}" for note in table.notes)
    return "\n".join(out) + "\n"


def render_csv(table: Table, digits: int = 2) -> str:
    """One row per model (no Δ or interval rows): model, the datasets by display name, the domains, Mean."""
    datasets = [c for c in table.columns if not c.is_aggregate]
    domains = [c for c in table.columns if c.is_aggregate and c.key != "Mean"]
    mean = [c for c in table.columns if c.key == "Mean"]
    ordered = datasets + domains + mean
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model"] + [c.header for c in datasets] + [c.key for c in domains] + ["Mean"])
    for row in table.rows:
        if row.kind in (DELTA, INTERVAL):
            continue
        values = [row.values[c.key] for c in ordered]
        writer.writerow([row.label] + ["" if v is None else f"{v:.{digits}f}" for v in values])
    return buffer.getvalue()


# The dataset names of the MESS toolkit's results.csv (`dataset_names` in mess/evaluation/mess_evaluation.py of
# github.com/blumenstiel/MESS, commit cc701b5), keyed by our spec names; other datasets keep their display name.
MESS_CSV_NAMES = {
    "bdd100k": "BDD100K", "dark_zurich": "Dark Zurich", "mhp_v1": "MHP v1", "foodseg103": "FoodSeg103",
    "atlantis": "ATLANTIS", "dram": "DRAM", "isaid": "iSAID", "isprs_potsdam": "ISPRS Potsdam",
    "worldfloods": "WorldFloods", "floodnet": "FloodNet", "uavid": "UAVid", "kvasir_instrument": "Kvasir-Instrument",
    "chase_db1": "CHASE DB1", "cryonuseg": "CryoNuSeg", "paxray4": "PAXRay-4", "corrosion_cs": "Corrosion CS",
    "deepcrack": "DeepCrack", "pst900": "PST900", "zerowaste_f": "ZeroWaste-f", "suim": "SUIM", "cub_200": "CUB-200",
    "cwfid": "CWFID",
}
MESS_CSV_MISSING = "-"


def render_mess_csv(table: Table, digits: int = 2) -> str:
    """The layout of the MESS toolkit's ``results.csv`` (what the leaderboard takes): header
    ``Dataset,Model,Domain,<metric>``, per model one line per dataset in table order, then
    ``Mean,<model>,Mean,<value>``; values rounded to `digits`, a missing value is ``-``.

    Our rows (every non-Δ row when there are none). Unlike the toolkit, which averages whatever it
    finds, an incomplete Mean stays ``-``. Domain names are the benchmark's full names.
    """
    metric = table.title.split(" — ")[-1].removesuffix(" (%)")
    domain_key = {c.domain: c.key for c in table.columns if c.is_aggregate and c.domain is not None}
    rows = [r for r in table.rows if r.kind == OURS] or [r for r in table.rows if r.kind == PUBLISHED]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["Dataset", "Model", "Domain", metric])

    def number(value: float | None) -> str:
        return MESS_CSV_MISSING if value is None else str(round(value, digits))

    for row in rows:
        for column in table.columns:
            if not column.is_aggregate:
                name = MESS_CSV_NAMES.get(column.key, column.header)
                domain = domain_key.get(column.domain, column.domain)  # a one-group suite's domain has no mean column
                writer.writerow([name, row.label, domain, number(row.values[column.key])])
        writer.writerow(["Mean", row.label, "Mean", number(row.values["Mean"])])
    return buffer.getvalue()


def render_json(table: Table, digits: int = 2) -> str:
    """The table as JSON: title, columns (key, header, domain, is_aggregate), rows (label, kind, values
    keyed by column, and ``marks`` keyed by column where a value has one), notes. Values are not
    rounded. An interval row (kind ``interval``) has [low, high] values and names the row it belongs
    to in ``of``."""
    rows = []
    for row in table.rows:
        entry = {"label": row.label, "kind": row.kind,
                 "values": {k: list(v) if isinstance(v, tuple) else v for k, v in row.values.items()}}
        if row.marks:
            entry["marks"] = dict(row.marks)
        if row.kind == INTERVAL:
            entry["of"] = rows[-1]["label"]
        rows.append(entry)
    document = {
        "title": table.title,
        "columns": [{"key": c.key, "header": c.header, "domain": c.domain, "is_aggregate": c.is_aggregate}
                    for c in table.columns],
        "rows": rows,
        "notes": table.notes,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"markdown": render_markdown, "latex": render_latex, "csv": render_csv, "mess-csv": render_mess_csv,
             "json": render_json}  # text formats, by name


def add_interval_rows(table: Table, intervals: Mapping[str, Mapping[str, Interval | None]]) -> None:
    """Put a "95 % CI" row under each of our rows that `intervals` (row label -> column -> interval) has;
    its values are (low, high) pairs."""
    rows: list[TableRow] = []
    for row in table.rows:
        rows.append(row)
        if row.kind == OURS and row.label in intervals:
            values = {key: None if ci is None else (ci.low, ci.high) for key, ci in intervals[row.label].items()}
            rows.append(TableRow("95 % CI", INTERVAL, values))
    table.rows[:] = rows


def table_intervals_of(
    rows: Sequence[ModelRow],
    results: Sequence,
    benchmark: Benchmark,
    specs: Mapping[str, DatasetSpec],
    resamples: int,
    *,
    include_partial: bool = False,
    seed: int = 0,
) -> tuple[dict[str, dict[str, Interval | None]], list[str]]:
    """Bootstrap intervals of every column of each of our rows, and notes on sets without per-image counts."""
    intervals, notes = {}, []
    for row in rows:
        stats, missing = row_statistics(results, row, benchmark, include_partial=include_partial)
        intervals[row.label] = table_intervals(stats, benchmark, specs, resamples, seed)
        notes.extend(missing)
    return intervals, notes


def add_table_intervals(
    table: Table,
    result_dirs: Sequence[Path | str],
    resamples: int,
    *,
    metric: str = "mIoU",
    include_partial: bool = False,
    specs_dirs: Sequence[Path] = (),
    benchmark_name: str = "mess",
) -> None:
    """Add the bootstrap interval rows of the results under `result_dirs` to `table` (built from them),
    with a note on the method and on every set that has no per-image counts."""
    if metric != "mIoU":
        raise BenchError(f"--ci: intervals are computed for mIoU only, not {metric}; drop --ci or use --metric mIoU")
    specs = load_specs(specs_dirs)
    benchmark = load_benchmark(benchmark_name, specs_dirs)
    results = load_results(result_dirs)
    rows = aggregate_results(results, benchmark, specs, metric, include_partial=include_partial)
    intervals, notes = table_intervals_of(rows, results, benchmark, specs, resamples, include_partial=include_partial)
    add_interval_rows(table, intervals)
    table.notes.append(f"95 % CI: percentile bootstrap over images, {resamples} resamples, seed 0.")
    table.notes.extend(notes)


_NARROW_HEADER = 11  # a value column never gets narrower than its numbers, nor wider than this, in a narrow terminal
_NARROW_LABEL = (12, 20)  # the Model column's width in a narrow terminal: one table from 12 on, split ones at 20


def _rich_width(label: int, columns: Sequence[int]) -> int:
    """Characters a rich table of `render_rich` takes: its box edges, and per column the width plus
    its padding and separator."""
    return label + sum(width + 3 for width in columns) + 2


def render_rich(table: Table, digits: int = 2, width: int | None = None):
    """Rich renderables: one block per domain (datasets + avg.), then a summary block, then notes.

    Numbers are never shortened and the Model column is never dropped: when a block is wider than
    `width`, its value columns get fixed widths (the widest number, or the header's longest word up
    to 11 characters), headers and model names wrap, and a block still too wide is split into
    consecutive tables, each with the Model column.
    """
    from rich import box
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    labels = [row.label for row in table.rows]
    longest_label = max(map(len, labels), default=5)

    def grid(title: str, cols: list[Column], headers: list[str], cells: list[list[str]],
             numbers: list[int], fixed: list[int] | None, label_width: int | None) -> RichTable:
        out = RichTable(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        out.add_column("Model", overflow="fold", min_width=min(12, longest_label), width=label_width)
        for index, (column, header, number) in enumerate(zip(cols, headers, numbers)):
            out.add_column(header, justify="right", overflow="fold", width=None if fixed is None else fixed[index],
                           min_width=number, style="bold" if column.is_aggregate else None)
        for index, row in enumerate(table.rows):
            texts = []
            for column, column_cells in zip(cols, cells):
                value = row.values[column.key]
                style = ""
                if row.kind == DELTA and value is not None:
                    style = "green" if value > 0 else "red" if value < 0 else ""
                texts.append(Text(column_cells[index], style=style))
            label_style = {PUBLISHED: "dim", OURS: "bold cyan", DELTA: "italic", INTERVAL: "dim italic"}[row.kind]
            out.add_row(Text(row.label, style=label_style), *texts)
        return out

    def block(title: str, cols: list[Column]) -> list[RichTable]:
        headers = [c.header if not c.is_aggregate or c.key == "Mean" or title == "Summary" else "avg." for c in cols]
        cells = [[row.shown(c.key, digits) for row in table.rows] for c in cols]
        numbers = [max(map(len, column_cells), default=1) for column_cells in cells]
        natural = _rich_width(longest_label, [max(n, len(h)) for n, h in zip(numbers, headers)])
        if width is None or natural <= width:
            return [grid(title, cols, headers, cells, numbers, None, None)]
        fixed = [max(n, min(_NARROW_HEADER, max(map(len, h.split())))) for n, h in zip(numbers, headers)]
        label = min(longest_label, max(_NARROW_LABEL[0], width - _rich_width(0, fixed)))
        if _rich_width(label, fixed) > width:
            label = min(longest_label, _NARROW_LABEL[1])
        parts: list[list[int]] = [[]]
        for index in range(len(cols)):
            if parts[-1] and _rich_width(label, [fixed[i] for i in parts[-1] + [index]]) > width:
                parts.append([])
            parts[-1].append(index)
        return [grid(title if n == 0 else f"{title} (continued)", [cols[i] for i in part], [headers[i] for i in part],
                     [cells[i] for i in part], [numbers[i] for i in part], [fixed[i] for i in part], label)
                for n, part in enumerate(parts)]

    blocks = []
    for domain in table.domains:
        blocks.extend(block(domain, [c for c in table.columns if c.domain == domain]))
    blocks.extend(block("Summary", [c for c in table.columns if c.is_aggregate]))
    blocks.extend(Text(f"• {note}", style="dim") for note in table.notes)
    return Group(Text(table.title, style="bold"), *blocks)


def plot_domains(table: Table, path: Path | str) -> Path:
    """Write :func:`domain_chart_png` to a PNG file (`bench table --plot`)."""
    path = user_path(path)
    if path.suffix.lower() != ".png":
        raise BenchError(f"--plot {path}: give a file name ending in .png")
    atomic_write_bytes(path, domain_chart_png(table))
    return path


def _chart_columns(table: Table, rows: list[TableRow]) -> tuple[list[Column], list[str]]:
    """The domain means and the Mean to draw: those every one of our rows has (any row's, when none
    is ours). A domain that is not drawn as a mean is drawn by its datasets that one of our rows (any
    row, when none is ours) has: never an empty slot or a mean over fewer datasets. Also names those
    domains (not a one-group suite's only domain, which has no mean column and is drawn by dataset)."""
    ours = [row for row in rows if row.kind == OURS]

    def drawn(column: Column) -> bool:
        if ours and column.is_aggregate:
            return all(row.values[column.key] is not None for row in ours)
        return any(row.values[column.key] is not None for row in ours or rows)

    chosen: list[Column] = []
    by_dataset: list[str] = []
    for domain in table.domains:
        members = [c for c in table.columns if c.domain == domain]
        mean = next((c for c in members if c.is_aggregate), None)  # None: a one-group suite's only domain
        if mean is not None and drawn(mean):
            chosen.append(mean)
            continue
        datasets = [c for c in members if not c.is_aggregate and drawn(c)]
        if datasets and mean is not None:
            by_dataset.append(domain)
        chosen.extend(datasets)
    chosen.extend(c for c in table.columns if c.key == "Mean" and drawn(c))
    return chosen, by_dataset


def domain_chart_png(table: Table, intervals: Mapping[str, Mapping[str, tuple[float, float] | None]] | None = None) -> bytes:
    """A grouped bar chart (PNG bytes) of the domain means and the Mean: our rows and the rows they
    compare with, or every row when there are no results of ours. Incomplete values have no bar; a
    domain that is incomplete for one of our rows shows its datasets' bars instead, and the caption says so.
    ``intervals`` (row label -> column -> (low, high)) adds error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in table.rows if r.kind in (PUBLISHED, OURS)]
    if any(r.kind == OURS for r in rows):
        compared = {r.label.removeprefix("Δ vs ") for r in table.rows if r.kind == DELTA}
        rows = [r for r in rows if r.kind == OURS or r.label in compared]
    summary, by_dataset = _chart_columns(table, rows)
    if not summary:
        raise BenchError("nothing to plot: no row has a score for any dataset of the table")
    intervals = intervals or {}
    width = 0.8 / max(1, len(rows))
    figure, axes = plt.subplots(figsize=(min(16.0, max(8.0, 2 + 0.3 * len(summary) * len(rows))), 5))
    colours = plt.get_cmap("tab20").colors
    for i, row in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(summary))]
        bars = [(x, row.values[c.key], (intervals.get(row.label) or {}).get(c.key))
                for x, c in zip(xs, summary) if row.values[c.key] is not None]
        axes.bar([x for x, _, _ in bars], [h for _, h, _ in bars], width=width, label=row.label, color=colours[i % 20],
                 hatch="//" if row.kind == PUBLISHED and any(r.kind == OURS for r in rows) else None)
        # The interval from its low to its high end, drawn where it lies: a percentile bootstrap interval
        # need not contain the estimate (a Mean over few images), so it is no +/- error around the bar.
        spans = [(x, ci) for x, _, ci in bars if ci is not None]
        if spans:
            axes.vlines([x for x, _ in spans], [ci[0] for _, ci in spans], [ci[1] for _, ci in spans], colors="black",
                        linewidth=1)
            for end in (0, 1):
                axes.hlines([ci[end] for _, ci in spans], [x - width / 4 for x, _ in spans],
                            [x + width / 4 for x, _ in spans], colors="black", linewidth=1)
    axes.set_xticks(range(len(summary)), [c.header for c in summary], rotation=15)
    axes.set_ylabel(table.title.split(" — ")[-1])
    axes.set_title(table.title)
    if by_dataset:
        axes.set_xlabel(f"Incomplete, shown by dataset: {', '.join(by_dataset)}", fontsize="small")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()
