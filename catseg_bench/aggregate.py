"""Aggregate per-dataset scores the way the MESS table does.

- A composite dataset (PAXRay-4) scores the arithmetic mean of its subsets' scores.
- A domain scores the unweighted mean of its datasets.
- Mean is the unweighted mean over all the benchmark's datasets (22 for MESS), not over domains.
- Datasets shown beside the benchmark (``Benchmark.extra_domains``: a user's datasets) get their own
  domain means and never enter the benchmark's Mean, nor make a row incomplete.

A missing dataset (or subset, or an undefined score) leaves its domain and the Mean *incomplete*:
they are ``None`` and the row says what is missing. There is never a silent mean over fewer datasets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from catseg_bench.errors import BenchError
from catseg_bench.metrics import BINARY_METRICS, SUMMARY_METRICS
from catseg_bench.results import Result
from catseg_bench.specs import Benchmark, DatasetSpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Aggregate:
    """One model's row of the table: per-dataset scores, domain means and the Mean."""

    datasets: dict[str, float | None]
    domains: dict[str, float | None]
    mean: float | None
    missing: tuple[str, ...] = ()  # datasets, or eval sets of a composite, without a score

    @property
    def complete(self) -> bool:
        return not self.missing

    def value(self, column: str) -> float | None:
        """A dataset's, a domain's or (``"Mean"``) the overall score."""
        if column == "Mean":
            return self.mean
        if column in self.datasets:
            return self.datasets[column]
        return self.domains[column]


def complete_mean(values: Sequence[float | None]) -> float | None:
    """The mean of `values`; None when there are none or any is None (MESS averages only complete groups).

    The one rule for a composite dataset's score (PAXRay-4: the mean of its subsets), a domain's and
    the Mean column.
    """
    if not values or any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def subset_mean(spec: DatasetSpec, scores: Mapping[str, float | None]) -> float | None:
    """A composite dataset's score (PAXRay-4): the mean of its subsets' scores, None when one is missing."""
    return complete_mean([scores.get(eval_set.name) for eval_set in spec.eval_sets()])


def aggregate(
    scores: Mapping[str, float | None],
    benchmark: Benchmark,
    specs: Mapping[str, DatasetSpec],
) -> Aggregate:
    """Aggregate ``scores`` keyed by dataset name, or by eval set name for a composite's subsets.

    A composite dataset takes its own key when present (published tables give PAXRay-4 directly),
    otherwise the mean of all its eval sets.
    """
    datasets: dict[str, float | None] = {}
    missing: list[str] = []
    members = set(benchmark.members)
    for name in benchmark.shown_datasets:
        spec = specs[name]
        if scores.get(name) is not None or not spec.is_composite:
            datasets[name] = scores.get(name)
            if datasets[name] is None and name in members:
                missing.append(name)
            continue
        datasets[name] = subset_mean(spec, scores)
        if name in members:
            missing.extend(e.name for e in spec.eval_sets() if scores.get(e.name) is None)
    domains = {domain.name: complete_mean([datasets[d] for d in domain.datasets]) for domain in benchmark.shown_domains}
    return Aggregate(datasets, domains, complete_mean([datasets[name] for name in benchmark.members]), tuple(missing))


def columns(benchmark: Benchmark) -> list[str]:
    """Table 1's value columns in order: each domain's datasets then the domain (the benchmark's,
    then any extra ones; not the only domain of a one-group suite, see `Benchmark.averaged_domains`),
    finally ``Mean``."""
    out: list[str] = []
    for domain in benchmark.shown_domains:
        out.extend(domain.datasets)
        if domain in benchmark.averaged_domains:
            out.append(domain.name)
    out.append("Mean")
    return out


def delta(ours: Aggregate, reference: Aggregate, benchmark: Benchmark) -> dict[str, float | None]:
    """Column-wise ``ours - reference``; ``None`` where either side has no value."""
    values: dict[str, float | None] = {}
    for column in columns(benchmark):
        a, b = ours.value(column), reference.value(column)
        values[column] = None if a is None or b is None else a - b
    return values


@dataclass(frozen=True)
class ModelRow:
    """Our results for one model (one results folder), aggregated, with what a reader must know."""

    label: str
    model_id: str
    aggregate: Aggregate
    notes: tuple[str, ...] = ()
    untrained: bool = False  # some of its results used untrained weights: never compared with published rows
    folder: Path | None = None  # the results folder the row was read from
    synthetic: bool = False  # some of its results were computed on a synthetic suite
    labels_differ: tuple[str, ...] = ()  # counted eval sets whose labels differ from the spec's fingerprint
    warnings: tuple[tuple[str, str], ...] = ()  # (column key, label warning) of its counted results
    settings: dict[str, Any] = field(default_factory=dict)  # the inference settings all its results share

    @property
    def comparable(self) -> bool:
        """Whether a Δ against a published row means anything: trained weights, on the spec's real labels."""
        return not (self.untrained or self.synthetic or self.labels_differ)


def _flagged(label: str, flags: Sequence[bool], what: str) -> tuple[str, bool]:
    """``catseg-b (untrained)`` when every result is so (``partly untrained`` when some are)."""
    if flags and all(flags):
        return f"{label} ({what})", True
    if any(flags):
        return f"{label} (partly {what})", True
    return label, False


def _value(value: float) -> float | None:
    return None if value != value else float(value)  # NaN (MESS's undefined score) -> None


def aggregate_results(
    results: pd.DataFrame | Sequence[Result],
    benchmark: Benchmark,
    specs: Mapping[str, DatasetSpec],
    metric: str = "mIoU",
    *,
    include_partial: bool = False,
) -> list[ModelRow]:
    """One row per (model id, results folder) of the tidy results frame (`catseg_bench.frame`; a
    list of `Result` is turned into one); results outside the benchmark are left out.

    A partial result (interrupted, ``--limit`` or ``--allow-incomplete`` run) is not counted unless
    ``include_partial``: its dataset stays missing. A result scored under an older spec, or a folder
    mixing checkpoints/settings, is counted and flagged in notes; untrained weights, synthetic data and
    labels other than the spec's are labelled (and such rows are never compared with published rows),
    and the recorded label warnings of the counted results are kept per column.
    """
    from catseg_bench.frame import results_frame

    if metric not in SUMMARY_METRICS + BINARY_METRICS:
        raise BenchError(f"--metric {metric!r} is not a result metric; use one of {', '.join(SUMMARY_METRICS + BINARY_METRICS)}")
    frame = results if not isinstance(results, Sequence) else results_frame(results, specs)
    rows = []
    for (model_id, folder), group in frame.groupby(["model", "folder"], sort=False):
        scores: dict[str, float | None] = {}
        notes: list[str] = []
        differ: list[str] = []
        warnings: list[tuple[str, str]] = []
        for eval_set, rows_of_set in group.groupby("eval_set", sort=False):
            first = rows_of_set.iloc[0]
            if first["dataset"] not in benchmark.shown_datasets:
                continue
            if first["partial"]:
                counted = "counted" if include_partial else "not counted"
                notes.append(f"{eval_set}: partial ({first['images_scored']} of {first['images_total']} images), {counted}")
                if not include_partial:
                    continue
            if first["labels_vs_spec"] == "differs":
                differ.append(eval_set)
            warnings.extend((first["dataset"], warning) for warning in first["label_warnings"])
            values = rows_of_set.loc[rows_of_set["metric"] == metric, "value"]
            scores[eval_set] = _value(values.iloc[0]) if len(values) else None
            if scores[eval_set] is None:
                notes.append(f"{eval_set}: {metric} is undefined")
            if first["spec_hash"] != specs[first["dataset"]].spec_hash:
                notes.append(f"{eval_set}: scored under an older spec ({first['spec_hash']}); re-run it")
        per_set = group.drop_duplicates("eval_set")
        configurations = set(zip(per_set["checkpoint_sha256"], per_set["settings"]))
        if len(configurations) > 1:
            notes.append(f"mixes {len(configurations)} checkpoint/settings combinations")
        aggregate_row = aggregate(scores, benchmark, specs)
        if aggregate_row.missing:
            notes.insert(0, f"incomplete, no score for: {', '.join(aggregate_row.missing)}")
        label, untrained = _flagged(group["run_label"].iloc[0], list(per_set["untrained"]), "untrained")
        synthetic = [flag is not None and bool(flag) for flag in per_set["synthetic"]]
        label, on_synthetic = _flagged(label, synthetic, "synthetic data")
        if differ:
            label = f"{label} (labels differ from spec)"
            notes.insert(0, f"labels differ from the spec's label_fingerprint for {', '.join(differ)} (not the data "
                            "the spec describes; `bench datasets check` names the changes): not comparable with "
                            "published numbers")
        if on_synthetic:
            notes.insert(0, "computed on a synthetic suite (`bench datasets synth`): not benchmark numbers, not comparable "
                            "with published numbers")
        if untrained:
            notes.insert(0, "untrained (random) weights: not comparable with published numbers")
        rows.append(ModelRow(label, model_id, aggregate_row, tuple(notes), untrained, Path(folder), on_synthetic,
                             tuple(differ), tuple(warnings), _shared_settings(per_set["settings"])))
    return rows


def _shared_settings(canonical: Sequence[str]) -> dict[str, Any]:
    """The settings (name: value) that every one of the canonical settings strings has."""
    parsed = [json.loads(text) for text in canonical]
    if not parsed:
        return {}
    return {name: value for name, value in parsed[0].items() if all(name in p and p[name] == value for p in parsed[1:])}
