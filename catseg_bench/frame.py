"""Results as a tidy pandas DataFrame: one row per model x eval set x metric.

This is the API's table type (`catseg_bench.api.load_results`), and Table 1 is aggregated from it
(`catseg_bench.aggregate.aggregate_results`), so a notebook and `bench table` see the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

from catseg_bench.results import Result, canonical_settings

if TYPE_CHECKING:
    import pandas as pd

    from catseg_bench.specs import DatasetSpec

COLUMNS = (
    "model",  # model id (the results folder's name)
    "folder",  # the results folder the file is in: one model's results in two folders are two rows
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
    "seconds",
    "images_per_second",
    "created",
    "path",  # the result JSON file
)


def results_frame(results: Sequence[Result], specs: Mapping[str, DatasetSpec] | None = None) -> pd.DataFrame:
    """The tidy frame of `results` (see :data:`COLUMNS`); metric rows in each result's own order."""
    import pandas as pd

    specs = specs or {}
    records = []
    for result in results:
        spec = specs.get(result.dataset)
        common = {
            "model": result.model_id,
            "folder": str(result.path.parent),
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
