"""Assemble the report page from result folders: Table 1 with intervals, the domain chart, one section
per evaluation set (scores with intervals, per-class table, confusion heat map, gallery), paired
comparisons of two runs, and provenance.

Everything is read through the project's loaders and aggregators (:mod:`catseg_bench.results`,
:mod:`catseg_bench.aggregate`, :mod:`catseg_bench.tables`); this module only lays it out.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from catseg_bench.aggregate import ModelRow, aggregate_results
from catseg_bench.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    PairedDifference,
    paired_intervals,
    paired_set_difference,
    result_stats,
    set_interval,
)
from catseg_bench.errors import BenchError
from catseg_bench.frame import labels_vs_spec
from catseg_bench.per_image import PerImageStats, margins
from catseg_bench.report.figures import HEATMAP_MAX_CLASSES, class_colours, colour_label, confusion_heatmap, png
from catseg_bench.report.page import HtmlTable, esc, img, interval, number, page, text_cell
from catseg_bench.results import Result, default_published, load_published, load_results
from catseg_bench.samples import Sample, load_samples
from catseg_bench.specs import Benchmark, DatasetSpec, load_benchmark, load_specs
from catseg_bench.tables import (
    DELTA,
    INTERVAL,
    OURS,
    Table,
    add_interval_rows,
    build_table,
    domain_chart_png,
    measured_columns,
    table_intervals_of,
)

SUMMARY = ("mIoU", "CoI-mIoU", "fwIoU", "mACC", "pACC")
# Table 1 shows only the measured datasets (and their domains' means) when fewer than this share of the
# benchmark's datasets has a result; `full_table` (--full-table) asks for the whole layout.
COMPACT_BELOW = 0.5


@dataclass
class Run:
    """One model's results folder (one row of Table 1)."""

    row: ModelRow
    results: dict[str, Result]  # by eval set
    stats: dict[str, PerImageStats] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.row.label

    def matches(self, name: str) -> bool:
        folder = self.row.folder
        return name in (self.row.label, self.row.model_id) or (
            folder is not None and Path(name).resolve() == folder.resolve()
        )


def _runs(results: Sequence[Result], rows: Sequence[ModelRow]) -> list[Run]:
    runs = []
    for row in rows:
        mine = {r.eval_set: r for r in results if (r.model_id, r.path.parent) == (row.model_id, row.folder)}
        run = Run(row, mine)
        for name, result in mine.items():
            stats, why = result_stats(result)
            if stats is None:
                run.notes.append(why)
            else:
                run.stats[name] = stats
        runs.append(run)
    return runs


def _pick(runs: Sequence[Run], name: str) -> Run:
    found = [run for run in runs if run.matches(name)]
    if len(found) != 1:
        known = ", ".join(run.label for run in runs)
        what = "matches several runs" if found else "is not one of the runs"
        raise BenchError(f"--compare {name}: {what}; give a row label, a model id or a results folder ({known})")
    return found[0]


def _set_order(runs: Sequence[Run], benchmark: Benchmark, specs: Mapping[str, DatasetSpec]) -> list[str]:
    present = {name for run in runs for name in run.results}
    ordered = [e.name for d in benchmark.members if d in specs for e in specs[d].eval_sets() if e.name in present]
    return ordered + sorted(present - set(ordered))


# --- Table 1 and the domain chart ------------------------------------------------------------------


def _table1_layout(table: Table, full: bool) -> tuple[Table, list[str]]:
    """The table as the report shows it (compact when few datasets were measured, see COMPACT_BELOW)
    and a note saying so."""
    datasets = [c for c in table.columns if not c.is_aggregate]
    shown = measured_columns(table)
    measured = [c for c in shown if not c.is_aggregate]
    if full or len(measured) >= COMPACT_BELOW * len(datasets):
        return table, []
    note = (f"Table 1 shows the {len(measured)} measured of its {len(datasets)} datasets; "
            "`bench report --full-table` shows the whole layout.")
    return dataclasses.replace(table, columns=shown), [note]


def _table1_html(table: Table) -> str:
    """Table 1; the page scrolls it sideways with the row labels kept in view."""
    top = '<tr><th rowspan="2" class="label">Model</th>' + "".join(
        f'<th colspan="{width}">{esc(name)}</th>' for name, width in table.domain_spans()) + "</tr>"
    second = "<tr>" + "".join(
        f"<th>{esc(('avg.' if c.domain else 'Mean') if c.is_aggregate else c.header)}</th>" for c in table.columns
    ) + "</tr>"
    body = []
    for row in table.rows:
        cells = []
        for column in table.columns:
            value = row.values[column.key]
            if row.kind == INTERVAL:
                cells.append(interval(value))
            else:
                cell = number(value, signed=row.kind == DELTA)
                if row.kind == DELTA and value:
                    cell = cell.replace('class="num"', f'class="num {"pos" if value > 0 else "neg"}"', 1)
                if column.key in row.marks:
                    cell = cell.removesuffix("</td>") + f'<span class="mark">{esc(row.marks[column.key])}</span></td>'
                cells.append(cell)
        body.append(f'<tr class="{row.kind}"><td class="label">{esc(row.label)}</td>{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table class="table1"><thead>{top}{second}</thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _chart(table: Table, intervals) -> str:
    spans = {label: {k: None if ci is None else (ci.low, ci.high) for k, ci in columns.items()}
             for label, columns in intervals.items()}
    try:
        return f'<div class="figure">{img(domain_chart_png(table, spans), "domain means")}</div>'
    except BenchError as err:
        return f"<p class=\"muted\">No domain chart: {esc(str(err))}</p>"


# --- paired comparison -------------------------------------------------------------------------------


def _paired_row(label: str, a: float | None, b: float | None, paired: PairedDifference | None) -> list[str]:
    if paired is None:
        return [text_cell(label), number(a), number(b), number(None), interval(None), number(None)]
    diff = paired.difference
    return [text_cell(label), number(a), number(b), number(diff.estimate, signed=True),
            interval((diff.low, diff.high)), number(100.0 * paired.a_better, digits=1)]


def _compare_html(a: Run, b: Run, benchmark, specs, table: Table, resamples: int, include_partial: bool) -> str:
    def counted(run: Run) -> dict[str, PerImageStats]:  # what Table 1 counts
        return {name: stats for name, stats in run.stats.items() if include_partial or not run.results[name].partial}

    paired = paired_intervals(counted(a), counted(b), benchmark, specs, resamples, DEFAULT_SEED)
    values = {row.label: row.values for row in table.rows if row.kind == OURS}
    grid = HtmlTable(["Column", a.label, b.label, "A − B", "95 % CI of A − B", "A > B in % of resamples"],
                     sortable=True)
    for column in table.columns:
        if values[a.label][column.key] is None and values[b.label][column.key] is None:
            continue
        grid.add(_paired_row(column.header, values[a.label][column.key], values[b.label][column.key],
                             paired[column.key]))
    return (f"<h2 id=\"compare\">Paired comparison: A = {esc(a.label)}, B = {esc(b.label)}</h2>"
            "<p class=\"muted small\">Both runs scored on the same bootstrap resamples of the same images; "
            "a column is empty where either run lacks per-image counts for one of its sets.</p>" + grid.render())


# --- one evaluation set --------------------------------------------------------------------------------


def _class_names(result: Result) -> list[str]:
    return list(result.per_class_iou)


def _frequencies(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return 100.0 * counts / total if total > 0 else np.zeros_like(counts, dtype=np.float64)


def _legend(names: Sequence[str], colours: np.ndarray, sample: Sample, predictions: Sequence[np.ndarray]) -> str:
    in_gt = set(np.unique(sample.label).tolist())
    in_pred = set().union(*(np.unique(p).tolist() for p in predictions))
    items = []
    for index in sorted((in_gt | in_pred) & set(range(len(names)))):
        r, g, b = (int(v) for v in colours[index])
        marks = ", ".join(m for m, present in (("GT", index in in_gt), ("pred", index in in_pred)) if present)
        items.append(f'<span><span class="swatch" style="background:rgb({r},{g},{b})"></span>'
                     f"{esc(names[index])} <span class=\"muted\">({marks})</span></span>")
    if any(v not in range(len(names)) for v in in_gt):
        items.append('<span><span class="swatch" style="background:rgb(40,40,40)"></span>ignore</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _gallery(set_name: str, names: Sequence[str], runs: Sequence[Run]) -> str:
    """image | ground truth | one prediction per run, for the images the runs saved."""
    per_run = {run.label: {s.name: s for s in load_samples(run.results[set_name])} for run in runs}
    shown = sorted(set().union(*(set(samples) for samples in per_run.values())))
    if not shown:
        return '<p class="muted small">No samples saved (run with <code>--save-samples N</code>).</p>'
    colours = class_colours(len(names))
    cards = []
    for image_name in shown:
        first = next(per_run[run.label][image_name] for run in runs if image_name in per_run[run.label])
        figures = [("image", first.image), ("ground truth", colour_label(first.label, colours))]
        predictions = []
        for run in runs:
            sample = per_run[run.label].get(image_name)
            if sample is not None:
                predictions.append(sample.prediction)
                figures.append((f"prediction: {run.label}", colour_label(sample.prediction, colours)))
        parts = "".join(f"<figure>{img(png(array), f'{caption} of {image_name}')}<figcaption>{esc(caption)}"
                        "</figcaption></figure>" for caption, array in figures)
        cards.append(f'<div class="sample"><div class="small">{esc(image_name)}</div>'
                     f'<div class="triptych">{parts}</div>{_legend(names, colours, first, predictions)}</div>')
    return f'<div class="gallery">{"".join(cards)}</div>'


def _set_section(index: int, set_name: str, runs: Sequence[Run], specs, compare, resamples: int) -> str:
    present = [run for run in runs if set_name in run.results]
    first = present[0].results[set_name]
    spec = specs.get(first.dataset)
    title = f"{set_name} — {spec.display_name} ({spec.domain})" if spec else set_name
    names = _class_names(first)
    out = [f'<section class="set" id="set-{index}" data-eval-set="{esc(set_name)}"><h3>{esc(title)}</h3>',
           f'<p class="muted small">{len(names)} classes; spec {esc(first.spec_hash)}.</p>']

    summary = HtmlTable(["Run", *SUMMARY[:1], "95 % CI", *SUMMARY[1:], "images", "note"])
    for run in present:
        result = run.results[set_name]
        stats = run.stats.get(set_name)
        defined = stats is not None and result.metrics.get("mIoU") is not None
        ci = set_interval(stats, resamples, DEFAULT_SEED) if defined else None
        note = "partial" if result.partial else ("" if stats is not None else "no per-image counts: no interval")
        note = "; ".join(n for n in (note, _data_note(result, spec), *result.label_warnings) if n)
        summary.add([text_cell(run.label), number(result.metrics.get("mIoU")),
                     interval(None if ci is None else (ci.low, ci.high)),
                     *(number(result.metrics.get(m)) for m in SUMMARY[1:]),
                     number(result.images_scored, digits=0), text_cell(note)], "ours")
    if compare is not None and all(set_name in run.stats and run.results[set_name].metrics.get("mIoU") is not None
                                   for run in compare):
        a, b = compare
        paired = paired_set_difference(a.stats[set_name], b.stats[set_name], set_name, resamples, DEFAULT_SEED)
        diff = paired.difference
        summary.add([text_cell("A − B (paired)"), number(diff.estimate, signed=True),
                     interval((diff.low, diff.high)), *(text_cell("") for _ in SUMMARY[1:]), text_cell(""),
                     text_cell(f"A > B in {100 * paired.a_better:.1f} % of resamples")], "delta")
    out.append(summary.render())

    gt_share = _frequencies(margins(first.confusion())[2])
    headers = ["class", "GT pixels %"]
    for run in present:
        headers += [f"IoU {run.label}", f"Acc {run.label}", f"pred pixels % {run.label}"]
    per_class = HtmlTable(headers, sortable=True, css_class="per-class")
    shares = {run.label: _frequencies(margins(run.results[set_name].confusion())[1]) for run in present}
    for c, name in enumerate(names):
        cells = [text_cell(name), number(float(gt_share[c]), digits=3)]
        for run in present:
            result = run.results[set_name]
            cells += [number(result.per_class_iou.get(name)), number(result.per_class_acc.get(name)),
                      number(float(shares[run.label][c]), digits=3)]
        per_class.add(cells)
    out.append(f'<details open><summary>Per-class IoU and accuracy (click a header to sort)</summary>'
               f'<div class="scroll">{per_class.render()}</div></details>')

    if len(names) <= HEATMAP_MAX_CLASSES:
        maps = "".join(img(confusion_heatmap(run.results[set_name].confusion(), names, f"{set_name}: {run.label}"),
                           f"confusion matrix of {run.label} on {set_name}") for run in present)
        out.append(f'<div class="figure">{maps}</div>')
    out.append(_gallery(set_name, names, present))
    out.append("</section>")
    return "".join(out)


# --- provenance --------------------------------------------------------------------------------------


def _distinct(values) -> str:
    seen = []
    for value in values:
        text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) if seen else "–"


def _data_note(result: Result, spec: DatasetSpec | None) -> str:
    """What a reader must know about the data a result was computed on ("" for the spec's real labels)."""
    if result.data is None:
        return "unknown provenance"
    if result.data.synthetic:
        return "synthetic data: not a MESS number"
    return "labels differ from the spec's fingerprint" if labels_vs_spec(result, spec) == "differs" else ""


def _fingerprint_text(result: Result, spec: DatasetSpec | None) -> str:
    if result.data is None:
        return "unknown provenance"
    fingerprint = result.data.label_fingerprint
    return f"{fingerprint[:16]}… ({labels_vs_spec(result, spec)})" if fingerprint else "–"


def _provenance(runs: Sequence[Run], specs: Mapping[str, DatasetSpec]) -> str:
    out = ['<h2 id="provenance">Provenance</h2>']
    for run in runs:
        results = list(run.results.values())
        seconds = [r.timing.get("seconds") for r in results if r.timing.get("seconds")]
        images = sum(r.images_scored for r in results)
        overview = HtmlTable(["field", "value"])
        facts = [
            ("model", run.row.model_id),
            ("results folder", str(run.row.folder)),
            ("checkpoint sha256", _distinct(r.checkpoint_sha256 for r in results)),
            ("settings", _distinct(r.settings for r in results)),
            ("data root", _distinct("unknown provenance" if r.data is None else r.data.root for r in results)),
            ("synthetic data", _distinct("unknown provenance" if r.data is None else
                                         ("yes: not benchmark numbers" if r.data.synthetic else "no") for r in results)),
            ("precision", _distinct(r.settings.get("precision", "–") for r in results)),
            ("device", _distinct(r.timing.get("device") or "not recorded" for r in results)),
            ("versions", _distinct(r.versions for r in results)),
            ("created", _distinct(r.created for r in results)),
            ("total seconds", f"{sum(seconds):.1f}" if seconds else "–"),
            ("images", str(images)),
            ("images/s", f"{images / sum(seconds):.2f}" if seconds else "–"),
        ]
        for name, value in facts:
            overview.add([text_cell(name), text_cell(value)])
        per_set = HtmlTable(["eval set", "spec hash", "current spec", "label fingerprint (vs spec)", "label warnings",
                             "images", "seconds", "images/s", "peak memory MiB", "device"], sortable=True)
        for name, result in run.results.items():
            spec = specs.get(result.dataset)
            current = "yes" if spec is not None and spec.spec_hash == result.spec_hash else "no: re-run"
            peak = result.timing.get("peak_memory_bytes")
            per_set.add([text_cell(name), text_cell(result.spec_hash), text_cell(current),
                         text_cell(_fingerprint_text(result, spec)),
                         text_cell("; ".join(result.label_warnings) or "–"),
                         number(result.images_scored, digits=0), number(result.timing.get("seconds"), digits=1),
                         number(result.timing.get("images_per_second")),
                         number(None if peak is None else peak / 2**20, digits=0),
                         text_cell(result.timing.get("device") or "–")])
        out.append(f"<h3>{esc(run.label)}</h3>{overview.render()}<div class=\"scroll\">{per_set.render()}</div>")
    return "".join(out)


# --- the page ----------------------------------------------------------------------------------------


def build_report(
    result_dirs: Sequence[Path | str],
    *,
    compare: tuple[str, str] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    published: str | Path | None = None,
    specs_dirs: Sequence[Path] = (),
    benchmark_name: str = "mess",
    include_partial: bool = False,
    full_table: bool = False,
) -> str:
    """The report page (HTML text) of the results under `result_dirs`. ``include_partial`` lets partial
    (``--limit``) results into Table 1 and its intervals, as `bench table --include-partial` does;
    ``full_table`` shows every dataset column of Table 1 even when few were measured. ``benchmark_name`` is
    the suite whose table the page shows; ``published`` None is the seed's table of that suite, if any."""
    if resamples < 10:
        raise BenchError(f"--bootstrap {resamples}: use at least 10 resamples (1000 is the default)")
    specs = load_specs(specs_dirs)
    benchmark = load_benchmark(benchmark_name, specs_dirs)
    results = load_results(result_dirs)
    if not results:
        raise BenchError(f"no result files under {', '.join(str(d) for d in result_dirs)}; run `bench run` first")
    rows = aggregate_results(results, benchmark, specs, include_partial=include_partial)
    everything = aggregate_results(results, benchmark, specs, include_partial=True)
    runs = _runs(results, everything)
    if published is None:
        published = default_published(benchmark.name)
    reference = None if str(published) == "none" else load_published(published, benchmark.name)
    table = build_table(rows, reference, benchmark, specs)
    intervals, notes = table_intervals_of(rows, results, benchmark, specs, resamples, include_partial=include_partial)
    add_interval_rows(table, intervals)
    pair = None if compare is None else (_pick(runs, compare[0]), _pick(runs, compare[1]))
    shown, layout = _table1_layout(table, full_table)

    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    sets = _set_order(runs, benchmark, specs)
    nav = " ".join(f'<a href="#set-{i}">{esc(name)}</a>' for i, name in enumerate(sets))
    compare_link = '<a href="#compare">Comparison</a>' if pair else ""
    body = [
        f"<h1>{esc(benchmark.display_name)} report</h1>",
        f'<p class="muted">{len(runs)} run(s): {esc(", ".join(run.label for run in runs))}. Generated {esc(stamp)}. '
        f"Intervals: 95 % percentile bootstrap over images, {resamples} resamples, seed {DEFAULT_SEED}.</p>",
        f'<nav class="small"><a href="#table1">Table 1</a>'
        f'{compare_link}<a href="#provenance">Provenance</a> {nav}</nav>',
        f'<h2 id="table1">{esc(table.title)}</h2>',
        _table1_html(shown),
        _chart(table, intervals),
        "<ul class=\"small muted\">" + "".join(f"<li>{esc(n)}</li>" for n in [*layout, *table.notes, *notes]) + "</ul>",
    ]
    if pair is not None:
        body.append(_compare_html(pair[0], pair[1], benchmark, specs, table, resamples, include_partial))
    body.append('<h2 id="sets">Evaluation sets</h2>')
    body.extend(_set_section(i, name, runs, specs, pair, resamples) for i, name in enumerate(sets))
    body.append(_provenance(runs, specs))
    return page(f"{benchmark.display_name} report", "".join(body))
