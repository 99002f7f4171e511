"""Results as a tidy pandas DataFrame: one row per model x eval set x metric.

This is the API's table type (`catseg_bench.api.load_results`), and Table 1 is aggregated from it
(`catseg_bench.aggregate.aggregate_results`), so a notebook and `bench table` see the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from catseg_bench.results import Result, canonical_settings

if TYPE_CHECKING:
    import pandas as pd

    from catseg_bench.specs import DatasetSpec

COLUMNS = (
    "model",  # model id
    "folder",  # the results folder the file is in: one model's results in two folders are two rows
    "run_label",  # the row label Table 1 gives the folder: the model id, with what tells its folders apart
    "settings_digest",  # the configuration (settings but --limit): a sweep's runs differ here
    "eval_set",
    "dataset",
    "subset",
    "domain",  # the dataset's domain (None for a dataset without a loaded spec)
    "metric",
    "value",  # percent; NaN where MESS gives NaN
    "partial",  # an interrupted or --limit run: kept out of Table 1 unless asked
    "untrained",  # evaluated with untrained weights on request
    "images_scored",
    "images_total",
    "checkpoint_sha256",
    "settings",  # canonical JSON of the inference settings
    "spec_hash",
    "data_root",  # what the result was computed on (None: unknown provenance, an older result file)
    "synthetic",  # computed on a synthetic suite (None: unknown provenance)
    "label_fingerprint",  # of the labels scored (None: unknown provenance)
    "labels_vs_spec",  # matches | differs | not recorded (no fingerprint in the spec) | partial | synthetic | unknown
    "label_warnings",  # tuple of the label sanity warnings recorded for the scored labels
    "seconds",
    "images_per_second",
    "created",
    "path",  # the result JSON file
)


def results_frame(results: Sequence[Result], specs: Mapping[str, DatasetSpec] | None = None) -> pd.DataFrame:
    """The tidy frame of `results` (see :data:`COLUMNS`); metric rows in each result's own order."""
    import pandas as pd

    specs = specs or {}
    labels = run_labels(results)
    records = []
    for result in results:
        spec = specs.get(result.dataset)
        common = {
            "model": result.model_id,
            "folder": str(result.path.parent),
            "run_label": labels[(result.model_id, result.path.parent)],
            "settings_digest": result.settings_digest,
            "eval_set": result.eval_set,
            "dataset": result.dataset,
            "subset": result.subset,
            "domain": spec.domain if spec is not None else None,
            "partial": result.partial,
            "untrained": result.untrained,
            "images_scored": result.images_scored,
            "images_total": result.images_total,
            "checkpoint_sha256": result.checkpoint_sha256,
            "settings": canonical_settings(result.settings),
            "spec_hash": result.spec_hash,
            "data_root": None if result.data is None else result.data.root,
            "synthetic": None if result.data is None else result.data.synthetic,
            "label_fingerprint": None if result.data is None else result.data.label_fingerprint,
            "labels_vs_spec": labels_vs_spec(result, spec),
            "label_warnings": result.label_warnings,
            "seconds": result.timing.get("seconds"),
            "images_per_second": result.timing.get("images_per_second"),
            "created": result.created,
            "path": str(result.path),
        }
        for metric, value in result.metrics.items():
            records.append({**common, "metric": metric, "value": value})
    frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    frame["value"] = frame["value"].astype("float64")
    return frame


def labels_vs_spec(result: Result, spec: DatasetSpec | None) -> str:
    """Whether the labels a result scored are the ones its spec records: ``matches``, ``differs``, ``not
    recorded`` (no fingerprint in the spec), ``partial`` (not the whole split), ``synthetic`` (a synthetic
    suite, marked as such) or ``unknown`` (an older result file)."""
    if result.data is None or result.data.label_fingerprint is None:
        return "unknown"
    if result.data.synthetic:
        return "synthetic"
    if result.partial:
        return "partial"
    eval_set = next((e for e in spec.eval_sets() if e.name == result.eval_set), None) if spec is not None else None
    recorded = None if eval_set is None else eval_set.recorded_labels.fingerprint
    if recorded is None:
        return "not recorded"
    return "matches" if recorded == result.data.label_fingerprint else "differs"


def run_labels(results: Sequence[Result]) -> dict[tuple[str, Path], str]:
    """Row labels of the (model id, results folder) pairs: the model id when it has one folder; else the
    model id with the settings that tell its folders apart (``catseg-b [window=384]``), or with the folder
    (``catseg-b (runs/catseg-b)``) when the settings are the same."""
    settings: dict[tuple[str, Path], dict[str, Any]] = {}
    for result in results:
        settings.setdefault((result.model_id, result.path.parent), result.settings)
    by_model: dict[str, list[tuple[str, Path]]] = {}
    for key in settings:
        by_model.setdefault(key[0], []).append(key)
    labels = {}
    for model_id, keys in by_model.items():
        if len(keys) == 1:
            labels[keys[0]] = model_id
            continue
        differing = _differing_settings([settings[key] for key in keys])
        for key in keys:
            shown = ", ".join(f"{name}={_setting_text(settings[key].get(name))}" for name in differing)
            labels[key] = f"{model_id} [{shown}]" if shown else f"{model_id} ({key[1].parent.name}/{key[1].name})"
        taken = [labels[key] for key in keys]
        for key in keys:  # the same settings in two folders: the folder tells them apart
            if taken.count(labels[key]) > 1:
                labels[key] = f"{labels[key]} ({key[1].parent.name}/{key[1].name})"
    return labels


def _differing_settings(configurations: list[dict[str, Any]]) -> list[str]:
    names = sorted({name for settings in configurations for name in settings} - {"limit"})
    return [name for name in names
            if len({canonical_settings({"v": settings.get(name)}) for settings in configurations}) > 1]


def _setting_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
