"""`bench datasets`: list, show, check, fingerprint, synth and export the evaluation datasets."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from catseg_bench.errors import BenchError
from catseg_bench.selection import select_eval_sets
from catseg_bench.specs import DatasetSpec, EvalSet, load_all, load_specs
from catseg_bench.synth import DEFAULT_IMAGES_PER_SET, write_suite

SpecsOption = Annotated[
    Optional[list[Path]],
    typer.Option("--specs", help="Folder of your own dataset specs (*.toml), loaded beside the built-in ones; repeatable."),
]
DataRootOption = Annotated[
    Optional[Path],
    typer.Option("--data-root", help="Folder holding the prepared datasets (default: $CATSEG_BENCH_DATA)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

_WIDE_LIST = 120  # `datasets list` shows the licence column from this window width on

# Findings shown per evaluation set and kind before "... and N more" (all are in --json).
_SHOWN_PER_KIND = 20


def _console() -> Console:
    """Rich output; when not a terminal (pipes, files, tests) and $COLUMNS does not say how wide, wide
    enough that paths are not wrapped."""
    return Console() if sys.stdout.isatty() or os.environ.get("COLUMNS") else Console(width=240)


def _eval_sets(names: list[str] | None, specs: dict[str, DatasetSpec], specs_dirs: list[Path] | None) -> list[EvalSet]:
    """NAMES as evaluation sets: none or "all" = every spec (yours too); else dataset, eval-set, suite:NAME or
    domain:NAME."""
    if not names or names == ["all"]:
        return [es for spec in specs.values() for es in spec.eval_sets()]
    _, suites = load_all(specs_dirs or ())
    return select_eval_sets(",".join(names), specs, suites["mess"], suites)


def spec_summary(spec: DatasetSpec) -> dict[str, Any]:
    """The `datasets list --json` record of one spec."""
    record: dict[str, Any] = {
        "name": spec.name,
        "display_name": spec.display_name,
        "domain": spec.domain,
        "split": spec.split,
        "num_classes": spec.num_classes,
        "num_images": spec.num_images,
        "class_names": None if spec.is_composite else list(spec.class_names),
    }
    if spec.prompt_names is not None:
        record["prompt_names"] = list(spec.prompt_names)
        record["prediction_labels"] = list(spec.prediction_labels)
    if spec.is_composite:
        record["subsets"] = [
            {"name": es.subset, "eval_set": es.name, "class_names": list(es.class_names)} for es in spec.eval_sets()
        ]
    record.update(
        license=spec.license,
        link=spec.link,
        eval_sets=[es.name for es in spec.eval_sets()],
        spec_hash=spec.spec_hash,
        path=str(spec.path),
    )
    return record


def spec_details(spec: DatasetSpec) -> dict[str, Any]:
    """Every field of a spec, for `datasets show --json`."""
    return {
        **spec_summary(spec),
        "ignore_index": spec.ignore_index,
        "background_index": spec.background_index,
        "classes_of_interest": None if spec.classes_of_interest is None else list(spec.classes_of_interest),
        "label_dtype": spec.label_dtype,
        "mess_name": spec.mess_name,
        "paper": spec.paper,
        "citation": spec.citation,
        "description": spec.description,
        "notes": spec.notes,
        "data": {
            "image_dir": spec.data.image_dir,
            "label_dir": spec.data.label_dir,
            "image_ext": spec.data.image_ext,
            "label_ext": spec.data.label_ext,
            "images_without_labels": spec.data.images_without_labels,
        },
        "prepare": spec.prepare,
        "recorded_labels": {
            es.name: {
                "label_fingerprint": es.recorded_labels.fingerprint,
                "class_pixel_counts": None if es.recorded_labels.class_pixel_counts is None
                else list(es.recorded_labels.class_pixel_counts),
                "ignore_pixel_count": es.recorded_labels.ignore_pixel_count,
            }
            for es in spec.eval_sets() if es.recorded_labels.recorded
        },
        "subsets": [
            {
                "name": s.name,
                "eval_set": es.name,
                "label_dir": s.label_dir,
                "class_names": list(s.class_names),
                "classes_of_interest": None if s.classes_of_interest is None else list(s.classes_of_interest),
                "mess_name": s.mess_name,
            }
            for s, es in zip(spec.subsets, spec.eval_sets())  # a composite has one eval set per subset
        ],
    }


def list_datasets(specs_dirs: SpecsOption = None, as_json: JsonOption = False) -> None:
    """Every dataset spec: MESS datasets in Table-1 order, then yours."""
    specs = load_specs(specs_dirs or ())
    if as_json:
        typer.echo(json.dumps([spec_summary(s) for s in specs.values()], indent=2, ensure_ascii=False))
        return
    console = _console()
    # The licences need a wide window; a narrow one (80 characters) lists them with `show` instead.
    licences = console.width >= _WIDE_LIST
    table = Table(title=f"{len(specs)} datasets", caption=None if licences else
                  "Licences: `bench datasets show NAME`, --json, or a window of 120 characters or more.")
    for column in ("name", "display name", "domain", "split", "classes", "images", "license")[:7 if licences else 6]:
        table.add_column(column, justify="right" if column in ("classes", "images") else "left", no_wrap=column == "name")
    for spec in specs.values():
        classes = f"{len(spec.subsets)}x{spec.num_classes}" if spec.is_composite else str(spec.num_classes)
        cells = [Text(spec.name), Text(spec.display_name), Text(spec.domain), Text(spec.split), classes,
                 str(spec.num_images), Text(spec.license)]
        table.add_row(*cells[:7 if licences else 6])
    console.print(table)


def _prompt_table(es: EvalSet) -> Table:
    """The prompts the model is asked for and the label class each one is scored as."""
    table = Table(title=f"{es.name}: {len(es.prompts)} prompts, each scored as a label class (prediction_labels)")
    for column in ("index", "prompt", "scored as"):
        table.add_column(column, justify="right" if column == "index" else "left")
    for index, (name, label) in enumerate(zip(es.prompts, es.prediction_labels)):
        table.add_row(str(index), Text(name), Text(f"{label} {es.class_names[label]}"))
    return table


def _class_table(es: EvalSet, spec: DatasetSpec) -> Table:
    prompts = "the prompts" if es.prompt_names is None else f"scored from the {len(es.prompts)} prompts below"
    table = Table(title=f"{es.name}: {es.num_classes} classes ({prompts}), ignore {es.ignore_index}")
    table.add_column("index", justify="right")
    table.add_column("class name")
    table.add_column("role")
    for index, name in enumerate(es.class_names):
        role = "background" if index == spec.background_index else ""
        role += ("; " if role else "") + ("of interest" if index in es.classes_of_interest else "not of interest")
        table.add_row(str(index), Text(name), role)
    return table


def show_dataset(
    name: Annotated[str, typer.Argument(help="Dataset name (or eval-set name such as paxray4.lungs).")],
    specs_dirs: SpecsOption = None,
    as_json: JsonOption = False,
) -> None:
    """All fields of one dataset spec."""
    spec = _eval_sets([name], load_specs(specs_dirs or ()), specs_dirs)[0].spec
    details = spec_details(spec)
    if as_json:
        typer.echo(json.dumps(details, indent=2, ensure_ascii=False))
        return
    console = _console()
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    for key in ("name", "display_name", "domain", "split", "num_images", "num_classes", "ignore_index",
                "background_index", "label_dtype", "mess_name", "license", "link", "paper", "citation",
                "description", "notes", "spec_hash", "path"):
        if details[key] is not None:
            fields.add_row(key, Text(str(details[key])))
    for key, value in details["data"].items():
        if value is not None:
            fields.add_row(f"data.{key}", Text(str(value)))
    for key, value in details["prepare"].items():
        fields.add_row(f"prepare.{key}", Text(value if isinstance(value, str) else json.dumps(value)))
    for subset in details["subsets"]:
        fields.add_row(f"subset {subset['name']}", Text(f"label_dir {subset['label_dir']}"))
    console.print(fields)
    for es in spec.eval_sets():
        console.print(_class_table(es, spec))
        if es.prompt_names is not None:
            console.print(_prompt_table(es))


def _display_path(file: str, root: Path) -> str:
    try:
        return Path(file).relative_to(root).as_posix()
    except ValueError:
        return file


def check_datasets(
    names: Annotated[Optional[list[str]], typer.Argument(help="Datasets, eval sets, suite:NAME or domain:NAME to check (default: all).")] = None,
    data_root: DataRootOption = None,
    specs_dirs: SpecsOption = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes decoding files (default: one per core, up to 8).")] = None,
    decode_images: Annotated[bool, typer.Option(
        "--decode-images/--headers-only",
        help="Decode every image (default; finds truncated files), or read image headers only (fast).",
    )] = True,
    as_json: JsonOption = False,
) -> None:
    """Check prepared data: folders, pairing, counts, decodable files, label values, image/label sizes, labels
    against the spec's fingerprint and the preparation's digests; warn about odd class histograms. Exit 1 on any problem."""
    from catseg_bench.data import expected_image_count, resolve_data_root
    from catseg_bench.data.check import inspect_eval_set
    from catseg_bench.data.hf_reader import export_dir, read_export_marker

    root = resolve_data_root(data_root)
    eval_sets = _eval_sets(names, load_specs(specs_dirs or ()), specs_dirs)
    report = []
    with _check_progress(enabled=not as_json) as progress:
        for es in eval_sets:
            task = progress.add_task(f"  {es.name}", total=None)
            check = inspect_eval_set(es, root, workers=workers, decode_images=decode_images,
                                     progress=lambda done, total, t=task: progress.update(t, completed=done, total=total))
            progress.remove_task(task)
            try:
                source = "export" if read_export_marker(export_dir(root, es)) else "folder"
                expected = expected_image_count(es, root)[0]
            except BenchError:
                source, expected = "export", None
            report.append((es, source, expected, check))
    problems = sum(len(c.findings) for *_, c in report)
    if as_json:
        typer.echo(json.dumps({
            "data_root": str(root),
            "eval_sets": [
                {"name": es.name, "source": source, "expected_images": expected, "problems": len(check.findings),
                 "warnings": check.warnings, **_histogram(check)}
                for es, source, expected, check in report
            ],
            "findings": [vars(f) for *_, check in report for f in check.findings],
        }, indent=2))
    else:
        _print_check(root, report, problems)
    if problems:
        raise typer.Exit(code=1)


def _check_progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=True, disable=not enabled)


def _histogram(check) -> dict[str, Any]:
    """The label statistics of a checked set, for --json (null when a label could not be read)."""
    if check.stats is None:
        return {"class_pixel_counts": None, "ignore_pixel_count": None, "label_fingerprint": None}
    return check.stats.as_record()


def _print_check(root: Path, report: list, problems: int) -> None:
    console = _console()
    summary = Table(title=f"datasets under {root}")
    for column in ("eval set", "source", "expected images", "problems", "warnings"):
        summary.add_column(column, justify="left" if column in ("eval set", "source") else "right",
                           no_wrap=column == "eval set")
    for es, source, expected, check in report:
        status = Text(str(len(check.findings)), style="red" if check.findings else "green")
        warned = Text(str(len(check.warnings)), style="yellow" if check.warnings else "")
        summary.add_row(Text(es.name), source, "?" if expected is None else str(expected), status, warned)
    console.print(summary)
    for es, _, _, check in report:
        if check.stats is not None:
            console.print(Text(f"{es.name}: {histogram_line(es, check.stats.class_pixel_counts, check.stats.ignore_pixel_count)}"))
    for *_, check in report:
        for warning in check.warnings:
            console.print(Text(f"warning: {warning}", style="yellow"))
    if problems:
        table = Table(title="problems")
        table.add_column("eval set", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("file", no_wrap=True, overflow="fold")
        table.add_column("problem", overflow="fold")
        for es, _, _, check in report:
            shown: dict[str, int] = {}
            for finding in check.findings:
                shown[finding.kind] = shown.get(finding.kind, 0) + 1
                if shown[finding.kind] <= _SHOWN_PER_KIND:
                    table.add_row(Text(es.name), finding.kind, Text(_display_path(finding.file, root)), Text(finding.message))
            for kind, count in shown.items():
                if count > _SHOWN_PER_KIND:
                    table.add_row(Text(es.name), kind, "", f"... and {count - _SHOWN_PER_KIND} more (see --json)")
        console.print(table)
        console.print(f"[red]{problems} problem(s)[/red] in {sum(1 for *_, c in report if c.findings)} of {len(report)} evaluation set(s)")
    else:
        warnings = sum(len(c.warnings) for *_, c in report)
        tail = f", {warnings} warning(s) above" if warnings else ""
        console.print(f"[green]all {len(report)} evaluation set(s) OK[/green]{tail}")


def histogram_line(es: EvalSet, class_pixel_counts: list[int], ignore_pixel_count: int) -> str:
    """One line of a set's class histogram: pixels (and share) per class, then ignore."""
    total = max(1, sum(class_pixel_counts) + ignore_pixel_count)
    parts = [f"{name} {count:,} ({100 * count / total:.1f}%)" for name, count in zip(es.class_names, class_pixel_counts)]
    parts.append(f"ignore {ignore_pixel_count:,} ({100 * ignore_pixel_count / total:.1f}%)")
    return "; ".join(parts)


def fingerprint_dataset(
    name: Annotated[str, typer.Argument(help="Dataset (all its eval sets) or eval-set name.")],
    data_root: DataRootOption = None,
    specs_dirs: SpecsOption = None,
    workers: Annotated[Optional[int], typer.Option(help="Processes decoding labels (default: one per core, up to 8).")] = None,
    as_json: JsonOption = False,
) -> None:
    """The label fingerprint and per-class pixel counts of prepared data, as spec lines to record."""
    from catseg_bench.data import resolve_data_root
    from catseg_bench.data.check import BAD_LABEL, inspect_eval_set

    root = resolve_data_root(data_root)
    records = {}
    with _check_progress(enabled=True) as progress:
        for es in _eval_sets([name], load_specs(specs_dirs or ()), specs_dirs):
            task = progress.add_task(f"  {es.name}", total=None)
            check = inspect_eval_set(es, root, workers=workers,
                                     progress=lambda done, total, t=task: progress.update(t, completed=done, total=total))
            progress.remove_task(task)
            if check.stats is None:
                unreadable = [f for f in check.findings if f.kind == BAD_LABEL] or check.findings
                detail = f"{unreadable[0].file}: {unreadable[0].message}" if unreadable else "no labels found"
                raise BenchError(f"{es.name}: cannot fingerprint its labels ({detail}); run `bench datasets check {es.name}`")
            records[es] = check.stats.as_record()
    if as_json:
        typer.echo(json.dumps({es.name: record for es, record in records.items()}, indent=2))
        return
    for es, record in records.items():
        where = f"[[subsets]] name = \"{es.subset}\"" if es.subset else es.spec.path.name
        typer.echo(f"# {es.name}: record in {where}")
        typer.echo(f"label_fingerprint = \"{record['label_fingerprint']}\"")
        typer.echo(f"class_pixel_counts = [{', '.join(str(c) for c in record['class_pixel_counts'])}]")
        typer.echo(f"ignore_pixel_count = {record['ignore_pixel_count']}")


def synth_datasets(
    names: Annotated[list[str], typer.Argument(help="Datasets to synthesise, suite:NAME, domain:NAME, or 'all'.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write (new, empty, or an earlier synthetic suite).")],
    images: Annotated[int, typer.Option("--images", help="Labelled images per evaluation set.")] = DEFAULT_IMAGES_PER_SET,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same files.")] = 0,
    specs_dirs: SpecsOption = None,
) -> None:
    """Write small synthetic images and labels in each spec's exact layout (a data root for tests and the demo)."""
    specs = load_specs(specs_dirs or ())
    chosen = list(dict.fromkeys(es.spec.name for es in _eval_sets(names, specs, specs_dirs)))
    written = write_suite(out, [specs[name] for name in chosen], images_per_set=images, seed=seed)
    typer.echo(f"wrote {sum(written.values())} image/label pairs for {len(written)} evaluation set(s) under {out}")


def export_datasets(
    name: Annotated[str, typer.Argument(help="Dataset (all its eval sets) or eval-set name.")],
    to: Annotated[Path, typer.Option("--to", help="Folder receiving <eval set name>/ Hugging Face copies.")],
    data_root: DataRootOption = None,
    specs_dirs: SpecsOption = None,
) -> None:
    """Copy an evaluation set into a Hugging Face `datasets` folder (lossless; readable as a data root)."""
    from catseg_bench.data import export_eval_set, resolve_data_root

    root = resolve_data_root(data_root)
    for es in _eval_sets([name], load_specs(specs_dirs or ()), specs_dirs):
        target = export_eval_set(es, root, to)
        typer.echo(f"exported {es.name} to {target}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List, inspect, check, fingerprint, synthesise and export evaluation datasets.", no_args_is_help=True)
    group.command("list")(list_datasets)
    group.command("show")(show_dataset)
    group.command("check")(check_datasets)
    group.command("fingerprint")(fingerprint_dataset)
    group.command("synth")(synth_datasets)
    group.command("export")(export_datasets)
    app.add_typer(group, name="datasets")
