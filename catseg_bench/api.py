"""The library's entry point: evaluate a model, score saved predictions, read results, make Table 1.

The `bench` commands are thin wrappers around these functions; notebooks and scripts call them
directly::

    from catseg_bench import api

    report = api.evaluate("catseg-b", datasets="domain:medical", data_root="~/mess", output="runs")
    frame = api.load_results(["runs"])                 # tidy pandas DataFrame
    print(api.make_table(frame, published="seed", fmt="markdown"))

Errors are plain exceptions (`catseg_bench.errors.BenchError` and the model's errors) whose message
names the file, the option and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from catseg_bench.errors import BenchError
from model.common.files import user_path
from model.common.lazy import lazy_exports

if TYPE_CHECKING:
    import pandas as pd

    from model.common.world import World
    from catseg_bench.runner import SetOutcome
    from catseg_bench.segmenters import Segmenter
    from catseg_bench.specs import EvalSet
    from catseg_bench.tables import Table

DEFAULT_OUTPUT = Path("bench_out")
# Helpers for plugin authors, loaded on first use (they import torch): `api.slide_logits` is the
# model-agnostic sliding-window inference of `model.sliding` (mmseg's slide protocol).
__getattr__, __dir__ = lazy_exports(__name__, {"slide_logits": "model.sliding", "window_boxes": "model.sliding"})
ProgressCallback = Callable[[str, int, int], None]  # (eval set, images done, images in the set)


@dataclass
class RunReport:
    """What one `evaluate` / `score_predictions` call did, per evaluation set."""

    model_id: str
    untrained: bool
    output: Path  # the output root
    outcomes: list[SetOutcome]
    world: World
    result_dir: Path  # output/<model id>/, or output/<model id>@<settings digest>/ for another configuration

    @property
    def failed(self) -> list[SetOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def raise_for_failures(self, reasons: bool = True) -> None:
        """A BenchError naming the failed sets, each with its reason (``reasons=False``: the names only,
        for a caller that has already shown each failure, as `bench run` does)."""
        if self.failed:
            if reasons:
                names = "; ".join(f"{o.eval_set} ({o.message})" for o in self.failed)
            else:
                names = ", ".join(o.eval_set for o in self.failed) + " (reasons above)"
            raise BenchError(f"{len(self.failed)} of {len(self.outcomes)} evaluation sets failed: {names}")


def select(datasets: str = "all", specs_dirs: Sequence[Path | str] = (), benchmark: str = "mess") -> list[EvalSet]:
    """Evaluation sets for a selection: ``all``, ``suite:NAME``, ``domain:NAME`` or ``NAME[,NAME...]`` (datasets
    or eval sets)."""
    from catseg_bench.selection import select_eval_sets
    from catseg_bench.specs import find_suite, load_all

    specs, benchmarks = load_all([Path(p) for p in specs_dirs])
    return select_eval_sets(datasets, specs, find_suite(benchmark, benchmarks), benchmarks)


def default_datasets(data_root: Path | str | None = None, specs_dirs: Sequence[Path | str] = ()) -> str:
    """The selection `bench run` makes without ``--datasets``: ``all``, or on a synthetic data root
    (`bench datasets synth`) the evaluation sets its manifest lists, in the order of `load_specs` (the
    suites' tables: MESS, then the other suites), then those without a spec by name."""
    from catseg_bench.data import resolve_data_root
    from catseg_bench.specs import load_specs
    from catseg_bench.synth import read_synth_manifest

    manifest = read_synth_manifest(resolve_data_root(data_root))
    listed = set((manifest or {}).get("eval_sets", {}))
    if not listed:
        return "all"
    known = [es.name for spec in load_specs([Path(p) for p in specs_dirs]).values() for es in spec.eval_sets()]
    ordered = [name for name in known if name in listed]
    return ",".join(ordered + sorted(listed - set(ordered)))


def build_segmenter(
    model: str,
    *,
    checkpoint: str | None = None,
    model_args: Mapping[str, Any] | str | None = None,
    device: str = "auto",
    precision: str = "auto",
    mode: str = "sliding",
    seed: int = 0,
) -> Segmenter:
    """A registered segmenter (or ``module:Class``), built on `device` with the run options it takes.

    ``precision="auto"`` is the official evaluation's: tf32 on CUDA, fp32 elsewhere.
    """
    from catseg_bench import registry
    from model.common.device import resolve_device

    args = registry.parse_model_args(model_args) if isinstance(model_args, str) or model_args is None else model_args
    torch_device = resolve_device(device)
    return registry.build_segmenter(model, args, device=torch_device, precision=resolve_precision(precision, torch_device),
                                    checkpoint=checkpoint, mode=mode, seed=seed)


def resolve_precision(precision: str, device) -> str:
    """``auto`` -> the official precision on `device` (tf32 on CUDA, fp32 elsewhere); others as given."""
    if precision != "auto":
        return precision
    from model.inference import default_precision

    return default_precision(device)


def evaluate(
    model: str | Segmenter,
    datasets: str | Sequence[EvalSet] = "all",
    data_root: Path | str | None = None,
    output: Path | str = DEFAULT_OUTPUT,
    *,
    checkpoint: str | None = None,
    model_args: Mapping[str, Any] | str | None = None,
    device: str = "auto",
    precision: str = "auto",
    mode: str = "sliding",
    seed: int = 0,
    specs_dirs: Sequence[Path | str] = (),
    limit: int | None = None,
    batch_size: int | str = 1,
    workers: int = 2,
    save_predictions: bool = False,
    save_samples: int = 0,
    allow_incomplete: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """Evaluate `model` on the selected evaluation sets; results go to ``output/<model id>/`` (a second
    configuration of the same model, other settings, to ``output/<model id>@<settings digest>/``).

    `model` is a registered name (`bench models list`), ``module:Class``, or a segmenter instance
    (then `checkpoint` and `model_args` are not used). Finished sets whose result is current are
    skipped, interrupted ones resume, and one failing set does not stop the others: check
    ``report.failed`` (or call ``report.raise_for_failures()``). Under ``torchrun`` every process
    calls this; images are sharded and the result files equal a one-process run's.
    ``save_samples`` keeps that many images per set with label and prediction for `bench report`
    (`catseg_bench.samples`). A set with fewer images than expected fails unless
    ``allow_incomplete``: then its result is partial (kept out of Table 1's aggregates).
    """
    from catseg_bench.data import resolve_data_root
    from catseg_bench.lock import exclusive_output
    from catseg_bench.preflight import seconds_from_env
    from catseg_bench.runner import DEFAULT_PROGRESS_SECONDS, PROGRESS_SECONDS_ENV, BenchmarkRunner, RunOptions
    from catseg_bench.segmenters import is_untrained
    from model.common import world as distributed
    from model.common.device import resolve_device

    requested_device = resolve_device(device)
    batch_size = batch_size_option(batch_size)
    eval_sets = select(datasets, specs_dirs) if isinstance(datasets, str) else list(datasets)
    root = resolve_data_root(data_root)
    output = user_path(output)
    seconds_from_env(PROGRESS_SECONDS_ENV, DEFAULT_PROGRESS_SECONDS)  # a bad setting fails now, not mid-set
    torch_device = _bind_device(requested_device)
    world = distributed.init_world(torch_device)
    try:
        # Before any model is built: the output takes files, and no other run writes there.
        with exclusive_output(output, world.is_main):
            if isinstance(model, str):
                segmenter = build_segmenter(model, checkpoint=checkpoint, model_args=model_args,
                                            device=str(torch_device), precision=precision, mode=mode, seed=seed)
            elif checkpoint is not None or model_args:
                raise BenchError("evaluate(): checkpoint and model_args apply to a model name, not to a segmenter instance")
            else:
                segmenter = model
            options = RunOptions(data_root=root, output=output, batch_size=batch_size, workers=workers,
                                 limit=limit, save_predictions=save_predictions,
                                 save_samples=save_samples, allow_incomplete=allow_incomplete,
                                 data_root_given=_given_data_root(data_root))
            runner = BenchmarkRunner(segmenter, options, torch_device, world, on_progress)
            outcomes = runner.run(eval_sets)
    finally:
        distributed.shutdown(world)
    return RunReport(segmenter.model_id, is_untrained(segmenter), output, outcomes, world, runner.result_dir)


def _given_data_root(data_root: Path | str | None) -> str | None:
    """The data root as the caller gave it (else $CATSEG_BENCH_DATA's value), for the results' provenance."""
    import os

    from catseg_bench.data import DATA_ROOT_ENV

    return str(data_root) if data_root is not None else os.environ.get(DATA_ROOT_ENV)


def batch_size_option(value: int | str) -> int | str:
    """``--batch-size``: a whole number of at least 1, or ``auto`` (kept as the string)."""
    text = str(value).strip()
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise BenchError(f"--batch-size {value}: give a whole number of at least 1, or auto")
    return int(text)


def _bind_device(device):
    """Under torchrun each process takes its own GPU (LOCAL_RANK) unless one was named."""
    import torch

    from model.common import world as distributed

    if device.type != "cuda":
        return device
    torch.cuda.set_device(device.index if device.index is not None else distributed.local_rank())
    return torch.device("cuda", torch.cuda.current_device())


def score_predictions(
    pred_dir: Path | str,
    datasets: str,
    data_root: Path | str | None = None,
    output: Path | str = DEFAULT_OUTPUT,
    model_id: str | None = None,
    *,
    device: str = "cpu",
    specs_dirs: Sequence[Path | str] = (),
    workers: int = 2,
    allow_incomplete: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """MESS scores of saved prediction PNGs (named like the labels; see `catseg_bench.segmenters.predictions`).

    Runs through the same runner as `evaluate` (resume, sharding, atomic result files). Naming one
    subset of a composite dataset (``paxray4.lungs``) reads its PNGs from `pred_dir` itself.
    """
    from catseg_bench.segmenters.predictions import PredictionFolder

    eval_sets = select(datasets, specs_dirs)
    if len({e.spec.name for e in eval_sets}) > 1:
        raise BenchError(f"--dataset {datasets}: selects several datasets; score one dataset (or one eval set) at a time")
    flat = len(eval_sets) == 1 and eval_sets[0].subset is not None and datasets.strip() == eval_sets[0].name
    segmenter = PredictionFolder(Path(pred_dir), model_id=model_id, flat=flat)
    return evaluate(segmenter, eval_sets, data_root, output, device=device, workers=workers,
                    allow_incomplete=allow_incomplete, on_progress=on_progress)


def load_results(dirs: Sequence[Path | str], specs_dirs: Sequence[Path | str] = ()) -> pd.DataFrame:
    """Every result file under `dirs` (recursively) as a tidy DataFrame (`catseg_bench.frame.COLUMNS`):
    one row per model x eval set x metric, with domain, partial/untrained flags and provenance.

    A corrupt or tampered result file (bad JSON, a confusion matrix that does not match its recorded
    sha256) is set aside: left out, and listed as (path, reason) in ``frame.attrs["skipped"]``.
    """
    from catseg_bench.frame import results_frame
    from catseg_bench.results import load_results as read_all
    from catseg_bench.specs import load_specs

    skipped: list[tuple[str, str]] = []
    frame = results_frame(read_all(dirs, on_skip=lambda path, reason: skipped.append((str(path), reason))),
                          load_specs([Path(p) for p in specs_dirs]))
    frame.attrs["skipped"] = skipped
    return frame


def make_table(
    results: pd.DataFrame | Sequence[Path | str] | None = None,
    published: str | Path | None = "seed",
    fmt: str = "markdown",
    *,
    metric: str = "mIoU",
    include_partial: bool = False,
    compare: Mapping[str, str] | None = None,
    digits: int = 2,
    specs_dirs: Sequence[Path | str] = (),
    benchmark: str = "mess",
) -> str | Table:
    """The table of the suite `benchmark` (Table 1 for ``mess``) from `results` (a `load_results` frame, or
    result folders) beside a published table of that suite (``seed`` is the seed's table of the suite).

    ``fmt`` is markdown, latex or csv (a string), or ``table`` for the `Table` object itself. Results for
    datasets of no suite (a user's) are shown after the suite's domains; those of another suite are left
    to that suite's table, and a note says so.
    """
    from catseg_bench.aggregate import aggregate_results
    from catseg_bench.results import load_published
    from catseg_bench.specs import find_suite, load_all, load_specs, other_suites
    from catseg_bench.tables import RENDERERS, add_reading_notes, build_table

    if fmt != "table" and fmt not in RENDERERS:
        raise BenchError(f"--format {fmt!r}: use {', '.join(RENDERERS)} (or 'table' from Python)")
    dirs = [Path(p) for p in specs_dirs]
    specs = load_specs(dirs)
    suites = load_all(dirs)[1]
    bench = find_suite(benchmark, suites)
    if results is None:
        results = []
    elif isinstance(results, (str, Path)):
        results = [results]
    frame = results if not isinstance(results, Sequence) else load_results(results, specs_dirs)
    shown = list(dict.fromkeys(frame["dataset"]))
    elsewhere = other_suites(bench, suites)
    bench = bench.with_extra_datasets(specs[name] for name in shown if name in specs and name not in elsewhere)
    rows = aggregate_results(frame, bench, specs, metric, include_partial=include_partial)
    reference = None if published is None or str(published) == "none" else load_published(published, bench.name)
    if not rows and reference is None:
        raise BenchError(f"nothing to show for suite {bench.name}: give result folders with results of its "
                         "datasets, or --published seed|mess2023")
    table = build_table(rows, reference, bench, specs, metric=metric, compare=compare)
    add_reading_notes(table, bench, sorted(name for name in shown if name not in specs), frame.attrs.get("skipped", []),
                      {name: suite for name, suite in elsewhere.items() if name in shown})
    return table if fmt == "table" else RENDERERS[fmt](table, digits)
