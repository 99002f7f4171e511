"""Result files: one JSON per (model, evaluation set), with its confusion matrix beside it.

Layout: ``<out_dir>/<eval set>.json`` and ``<out_dir>/<eval set>.confusion.npy``, where ``out_dir``
is the model's result folder (the runner uses ``OUT/<model>/``). For a composite dataset the eval
set is named ``<dataset>.<subset>`` (``paxray4.lungs.json``).

Schema (``schema = "catseg-bench/result"``, ``schema_version = 1``); values are percentages, null
where MESS gives NaN:

``eval_set``, ``dataset``, ``subset`` (null for a plain dataset), ``spec_hash``
    What was scored; the spec hash changes when the classes, labels or layout change.
``model``: ``{"id", "checkpoint_sha256", "untrained"}`` and ``settings`` (inference settings, any JSON object)
    Who was scored and how. Together with ``spec_hash`` these decide whether a result is stale
    (:meth:`Result.stale_reasons`). ``untrained`` is true for a model evaluated with random
    weights on request (``--checkpoint none``): tables label such a row "(untrained)" and never
    compare it with published numbers (absent in older files: false).
``metrics``
    ``mIoU``, ``CoI-mIoU``, ``fwIoU``, ``mACC``, ``pACC``, ``CoI-mACC`` (+ ``Specificity``,
    ``Sensitivity`` for two classes), as :func:`catseg_bench.metrics.compute_scores`.
``per_class_iou``, ``per_class_acc``
    ``{class name: value or null}`` in class-index order.
``num_classes``, ``images_scored``, ``images_total``, ``partial``
    A partial result (an interrupted run) never enters Table 1's aggregates.
``confusion_matrix``: ``{"file", "sha256"}``
    The (K+1)×(K+1) ``[pred, gt]`` matrix (.npy) the metrics were computed from.
``data``: ``{"root", "root_absolute", "synthetic", "label_fingerprint"}``
    What the result was computed on: the data root as the run was given it (and the folder it named),
    whether it is a synthetic
    suite (``bench datasets synth``: never a MESS number), and the fingerprint of the labels actually
    scored (the digest `bench datasets fingerprint` prints, computed during the run). Tables mark a
    result on synthetic data, or on labels whose fingerprint differs from the spec's record, and never
    compare it with published numbers. Absent in older files: "unknown provenance".
``label_warnings``
    The label sanity warnings of the scored labels (`catseg_bench.data.labelstats.label_warnings`)
    and the segmenter's warnings about how this set's number was made (its ``set_warnings``, e.g.
    CAT-Seg's 256-class limit), shown beside the number by the tables (absent in older files: none
    recorded).
``versions``: ``{"python", "torch", "numpy", "catseg_bench", "git_commit"}``
``timing``: ``{"seconds", "images_per_second", "peak_memory_bytes", "device"}`` (``device`` is absent
    from files written before it was recorded)
``created``: UTC time, ISO 8601.

Beside them, ``<eval set>.per_image.npz`` (:mod:`catseg_bench.per_image`) holds the per-image counts
whose sums are the matrix's margins; results written before it existed have none.

All files are written atomically (temporary file in the same folder + ``os.replace``), the matrix
first, so a JSON file on disk always describes a complete matrix. A result that is replaced is kept
as ``<file>.stale-<time>`` (never read by the tables), so no finished result is ever destroyed.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

import catseg_bench
from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix, as_numpy, compute_scores
from catseg_bench.per_image import PerImageStats, per_image_path
from catseg_bench.specs import EvalSet
from model.common.files import atomic_write_bytes, user_path

SCHEMA = "catseg-bench/result"
SCHEMA_VERSION = 1
RESULT_SUFFIX = ".json"
CONFUSION_SUFFIX = ".confusion.npy"


@dataclass(frozen=True)
class Timing:
    """Wall time of an evaluation and, when the runner measured it, peak accelerator memory."""

    seconds: float
    peak_memory_bytes: int | None = None
    device: str | None = None


@dataclass(frozen=True)
class DataProvenance:
    """What a result was computed on (see the module docstring's ``data``)."""

    root: str  # as given (--data-root, or $CATSEG_BENCH_DATA)
    synthetic: bool
    label_fingerprint: str | None
    root_absolute: str | None = None  # the folder it named, when the result was written

    def as_record(self) -> dict[str, Any]:
        return {"root": self.root, "root_absolute": self.root_absolute, "synthetic": bool(self.synthetic),
                "label_fingerprint": self.label_fingerprint}


@dataclass(frozen=True)
class Result:
    """One result file, as read back."""

    path: Path
    eval_set: str
    dataset: str
    subset: str | None
    spec_hash: str
    model_id: str
    checkpoint_sha256: str | None
    settings: dict[str, Any]
    metrics: dict[str, float | None]
    per_class_iou: dict[str, float | None]
    per_class_acc: dict[str, float | None]
    num_classes: int
    images_scored: int
    images_total: int | None
    partial: bool
    confusion_file: str
    confusion_sha256: str
    versions: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    untrained: bool = False
    data: DataProvenance | None = None  # None: written before provenance was recorded
    label_warnings: tuple[str, ...] = ()

    @property
    def synthetic(self) -> bool:
        """Computed on a synthetic suite (False when the provenance is unknown)."""
        return self.data is not None and self.data.synthetic

    @property
    def settings_digest(self) -> str:
        return settings_digest(self.settings)

    def metric(self, name: str) -> float | None:
        if name not in self.metrics:
            known = ", ".join(self.metrics)
            raise BenchError(f"{self.path}: no metric '{name}' in this result; it has: {known}")
        return self.metrics[name]

    def confusion_bytes(self) -> bytes:
        """The confusion matrix file, checked against the sha256 the JSON recorded."""
        path = self.path.parent / self.confusion_file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BenchError(f"{path}: confusion matrix of {self.path.name} is missing; re-run this evaluation") from None
        if hashlib.sha256(data).hexdigest() != self.confusion_sha256:
            raise BenchError(
                f"{path}: does not match the sha256 recorded in {self.path.name} (changed after it was written); "
                "re-run this evaluation"
            )
        return data

    def confusion(self) -> np.ndarray:
        """The confusion matrix, checked against the sha256 the JSON recorded."""
        return np.load(io.BytesIO(self.confusion_bytes()), allow_pickle=False)

    def stale_reasons(
        self,
        *,
        spec_hash: str,
        model_id: str,
        checkpoint_sha256: str | None,
        settings: Mapping[str, Any],
    ) -> list[str]:
        """Why this result does not answer the planned evaluation (empty when it does)."""
        reasons = []
        if self.spec_hash != spec_hash:
            reasons.append(f"dataset spec changed ({self.spec_hash} -> {spec_hash})")
        if self.model_id != model_id:
            reasons.append(f"model differs ({self.model_id} -> {model_id})")
        if self.checkpoint_sha256 != checkpoint_sha256:
            reasons.append(f"checkpoint differs ({self.checkpoint_sha256} -> {checkpoint_sha256})")
        if canonical_settings(self.settings) != canonical_settings(settings):
            reasons.append("inference settings differ")
        if self.partial:
            reasons.append(f"partial ({self.images_scored} of {self.images_total} images)")
        return reasons


def canonical_settings(settings: Mapping[str, Any]) -> str:
    """Settings as a canonical JSON string, for comparing two runs' settings."""
    return json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def settings_digest(settings: Mapping[str, Any]) -> str:
    """A short digest of the settings that make a configuration (all but ``limit``, which only says how
    many images were scored): runs of one model with different digests are different rows."""
    kept = {key: value for key, value in settings.items() if key != "limit"}
    return hashlib.sha256(canonical_settings(kept).encode("utf-8")).hexdigest()[:10]


def result_path(out_dir: Path | str, eval_set: str) -> Path:
    return Path(out_dir) / f"{eval_set}{RESULT_SUFFIX}"


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    repo = Path(catseg_bench.__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def versions() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "catseg_bench": catseg_bench.__version__,
        "git_commit": _git_commit(),
    }


def write_result(
    out_dir: Path | str,
    *,
    eval_set: EvalSet,
    model_id: str,
    checkpoint_sha256: str | None,
    settings: Mapping[str, Any],
    confusion: ConfusionMatrix | np.ndarray | torch.Tensor,
    images_scored: int,
    untrained: bool = False,
    partial: bool = False,
    timing: Timing | None = None,
    images_total: int | None = None,
    per_image: PerImageStats | None = None,
    data: DataProvenance | None = None,
    label_warnings: Sequence[str] = (),
) -> Path:
    """Score `confusion` and write ``<out_dir>/<eval set>.json`` plus its matrix; returns the JSON path.

    ``images_total`` defaults to the spec's image count. ``per_image`` (written first) must add up to
    the matrix's margins. ``data`` (what the result was computed on) and ``label_warnings`` are
    recorded as given; without ``data`` the result reads back as of unknown provenance.
    """
    matrix = confusion.numpy() if isinstance(confusion, ConfusionMatrix) else as_numpy(confusion)
    if per_image is not None and not per_image.matches(matrix):
        raise ValueError(f"{eval_set.name}: the per-image counts do not add up to the confusion matrix")
    scores = compute_scores(matrix, eval_set.class_names, eval_set.classes_of_interest)
    out_dir = Path(out_dir)
    json_path = result_path(out_dir, eval_set.name)
    npy_name = f"{eval_set.name}{CONFUSION_SUFFIX}"

    buffer = io.BytesIO()
    np.save(buffer, matrix, allow_pickle=False)
    npy_bytes = buffer.getvalue()

    seconds = timing.seconds if timing else None
    document = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "eval_set": eval_set.name,
        "dataset": eval_set.spec.name,
        "subset": eval_set.subset,
        "spec_hash": eval_set.spec_hash,
        "model": {"id": model_id, "checkpoint_sha256": checkpoint_sha256, "untrained": bool(untrained)},
        "settings": dict(settings),
        "metrics": scores.metrics,
        "per_class_iou": scores.per_class_iou,
        "per_class_acc": scores.per_class_acc,
        "num_classes": eval_set.num_classes,
        "images_scored": int(images_scored),
        "images_total": int(images_total if images_total is not None else eval_set.spec.num_images),
        "partial": bool(partial),
        "confusion_matrix": {"file": npy_name, "sha256": hashlib.sha256(npy_bytes).hexdigest()},
        **({} if data is None else {"data": data.as_record()}),
        "label_warnings": list(label_warnings),
        "versions": versions(),
        "timing": {
            "seconds": seconds,
            "images_per_second": images_scored / seconds if seconds else None,
            "peak_memory_bytes": timing.peak_memory_bytes if timing else None,
            "device": timing.device if timing else None,
        },
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    stats_path = per_image_path(out_dir, eval_set.name)
    kept = _keep_previous([json_path, out_dir / npy_name, stats_path])
    try:
        if per_image is not None:
            per_image.save(stats_path)
        else:
            stats_path.unlink(missing_ok=True)  # kept aside above: never describe another run's images
        atomic_write_bytes(out_dir / npy_name, npy_bytes)
        atomic_write_bytes(json_path, text.encode("utf-8"))
    except BaseException:
        for path in kept:
            path.unlink(missing_ok=True)
        raise
    return json_path


def _keep_previous(paths: list[Path]) -> list[Path]:
    """Give an earlier result's files a second name, ``<file>.stale-<time>``, before they are replaced.

    A new result never destroys an old one: the old files stay readable under names that no table
    reads (hard links where the file system allows, else copies). Returns the names made.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
    kept = []
    for path in paths:
        if path.exists():
            aside = path.with_name(f"{path.name}.stale-{stamp}")
            try:
                os.link(path, aside)
            except OSError:
                shutil.copy2(path, aside)
            kept.append(aside)
    return kept


def _is_result_document(document: Any) -> bool:
    return isinstance(document, dict) and document.get("schema") == SCHEMA


def _parse(path: Path, document: dict[str, Any]) -> Result:
    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BenchError(
            f"{path}: result schema_version {version!r} is not the supported {SCHEMA_VERSION}; "
            "re-run the evaluation with this version of catseg-bench"
        )
    try:
        return Result(
            path=path,
            eval_set=document["eval_set"],
            dataset=document["dataset"],
            subset=document["subset"],
            spec_hash=document["spec_hash"],
            model_id=document["model"]["id"],
            checkpoint_sha256=document["model"]["checkpoint_sha256"],
            settings=document["settings"],
            metrics=document["metrics"],
            per_class_iou=document["per_class_iou"],
            per_class_acc=document["per_class_acc"],
            num_classes=document["num_classes"],
            images_scored=document["images_scored"],
            images_total=document["images_total"],
            partial=document["partial"],
            confusion_file=document["confusion_matrix"]["file"],
            confusion_sha256=document["confusion_matrix"]["sha256"],
            versions=document.get("versions", {}),
            timing=document.get("timing", {}),
            created=document.get("created", ""),
            untrained=bool(document["model"].get("untrained", False)),
            data=_data_provenance(document.get("data")),
            label_warnings=tuple(str(w) for w in document.get("label_warnings") or ()),
        )
    except (KeyError, TypeError) as err:
        raise BenchError(f"{path}: result file lacks field {err}; re-run the evaluation that wrote it") from None


def _data_provenance(record: Any) -> DataProvenance | None:
    if not isinstance(record, dict):
        return None
    return DataProvenance(str(record["root"]), bool(record["synthetic"]), record.get("label_fingerprint"),
                          record.get("root_absolute"))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BenchError(f"{path}: not valid JSON ({err}); delete it and re-run that evaluation") from None


def _checked(result: Result) -> Result:
    """`result`, once its confusion matrix is found to be the one its JSON recorded."""
    result.confusion_bytes()
    return result


def read_result(path: Path | str) -> Result:
    """A result file, checked: valid JSON of the result schema whose confusion matrix matches its sha256."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"{path}: result file does not exist")
    document = _load_json(path)
    if not _is_result_document(document):
        raise BenchError(f"{path}: not a catseg-bench result file (no \"schema\": \"{SCHEMA}\")")
    return _checked(_parse(path, document))


def load_results(
    dirs: Iterable[Path | str], on_skip: Callable[[Path, str], None] | None = None
) -> list[Result]:
    """Every result file under `dirs` (searched recursively), checked as :func:`read_result` does, sorted by path.

    JSON files that are not result files (no ``schema`` key) are left out. A corrupt result file (bad
    JSON, missing fields, a confusion matrix missing or not matching its recorded sha256) is an
    error, unless `on_skip` is given: then it is passed to `on_skip` with the reason, and set aside
    (left out) while the others are read. One eval set twice for the same model in the same folder
    is an error.
    """
    results: list[Result] = []
    paths: set[Path] = set()
    for directory in dirs:
        directory = user_path(directory)
        if not directory.is_dir():
            raise BenchError(f"{directory}: results folder does not exist")
        for path in sorted(directory.rglob(f"*{RESULT_SUFFIX}")):
            if path.name.startswith(".") or path.resolve() in paths:
                continue
            paths.add(path.resolve())
            try:
                document = _load_json(path)
                if _is_result_document(document):
                    results.append(_checked(_parse(path, document)))
            except BenchError as err:
                if on_skip is None:
                    raise
                on_skip(path, err.message)
    seen: dict[tuple[Path, str, str], Path] = {}
    for result in results:
        key = (result.path.parent, result.model_id, result.eval_set)
        if key in seen:
            raise BenchError(
                f"{result.path}: scores {result.eval_set} for {result.model_id} again (also {seen[key]}); remove one"
            )
        seen[key] = result.path
    return sorted(results, key=lambda r: str(r.path))


# --- published numbers (results/published/*.json, see the README there) ---------------------------


DEFAULT_SUITE = "mess"  # the suite of a published file without a "suite" field


@dataclass(frozen=True)
class PublishedRow:
    model: str
    scores: dict[str, float | None]
    reported: dict[str, float]
    weights: str | None = None
    note: str | None = None
    aliases: tuple[str, ...] = ()  # registered model names that are this row (README there)
    source: str | None = None  # where this row's numbers are printed, when the table gathers several sources
    settings: dict[str, Any] = field(default_factory=dict)  # run settings a result needs to be this row

    @property
    def label(self) -> str:
        return f"{self.model} [{self.weights} weights]" if self.weights else self.model


@dataclass(frozen=True)
class PublishedTable:
    name: str
    title: str
    source: str
    metric: str
    notes: str
    rows: tuple[PublishedRow, ...]
    path: Path
    suite: str = DEFAULT_SUITE  # the suite (benchmark) whose datasets `scores` are keyed by


def published_dir() -> Path:
    """`results/published/` of the source checkout this package runs from, or in an installed wheel
    the copy it ships as ``catseg_bench/published/`` (see pyproject.toml)."""
    package = Path(catseg_bench.__file__).resolve().parent
    checkout = package.parent / "results" / "published"
    return checkout if checkout.is_dir() else package / "published"


def _published_documents() -> list[tuple[Path, dict]]:
    folder = published_dir()
    return [(path, _load_json(path)) for path in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def published_names(suite: str | None = None) -> list[str]:
    """Names of the published tables shipped (`--published NAME`), of one suite or of all."""
    return sorted(str(doc.get("name")) for _, doc in _published_documents()
                  if suite is None or doc.get("suite", DEFAULT_SUITE) == suite)


def default_published(suite: str) -> str:
    """What `--published` means when not given: the seed's table of `suite`, or none when it has none."""
    return "seed" if "seed" in published_names(suite) else "none"


def _aliases(row: dict, path: Path) -> tuple[str, ...]:
    aliases = row.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise BenchError(f"{path}: row '{row.get('model')}': aliases must be a list of model names, e.g. [\"grounded-sam-b\"]")
    return tuple(aliases)


def _settings(row: dict, path: Path) -> dict[str, Any]:
    settings = row.get("settings", {})
    if not isinstance(settings, dict) or not all(isinstance(v, (str, int, float, bool)) for v in settings.values()):
        raise BenchError(f"{path}: row '{row.get('model')}': settings must map setting names to values, "
                         'e.g. {"mode": "whole"}')
    return dict(settings)


def load_published(name_or_path: str | Path, suite: str | None = None) -> PublishedTable:
    """A published table by `name` (``seed``, ``mess2023``) or by path to a JSON file of that format.

    Files declare the suite their scores belong to (``"suite"``, MESS when absent); a name is looked up
    among the tables of `suite` (MESS when None), so ``seed`` is the seed's Table 1 for MESS and its
    in-domain rows for ``in_domain``. A file of another suite than a given `suite` is refused.
    """
    path = user_path(name_or_path)
    if path.suffix != ".json":
        wanted = suite or DEFAULT_SUITE
        candidates = [p for p, doc in _published_documents()
                      if doc.get("name") == str(name_or_path) and doc.get("suite", DEFAULT_SUITE) == wanted]
        if not candidates:
            known = ", ".join(published_names(wanted)) or "none"
            raise BenchError(f"no published table named '{name_or_path}' for suite {wanted} in {published_dir()}; "
                             f"known for {wanted}: {known}")
        path = candidates[0]
    if not path.is_file():
        raise BenchError(f"{path}: published table does not exist")
    document = _load_json(path)
    try:
        rows = tuple(
            PublishedRow(
                model=row["model"],
                scores=dict(row["scores"]),
                reported=dict(row.get("reported", {})),
                weights=row.get("weights"),
                note=row.get("note"),
                aliases=_aliases(row, path),
                source=row.get("source"),
                settings=_settings(row, path),
            )
            for row in document["rows"]
        )
        table = PublishedTable(
            name=document["name"],
            title=document["title"],
            source=document["source"],
            metric=document["metric"],
            notes=document.get("notes", ""),
            rows=rows,
            path=path,
            suite=str(document.get("suite", DEFAULT_SUITE)),
        )
    except (KeyError, TypeError) as err:
        raise BenchError(f"{path}: published table lacks field {err}; see results/published/README.md") from None
    if suite is not None and table.suite != suite:
        raise BenchError(f"{path}: published table for suite {table.suite}, not {suite}; use --suite {table.suite}")
    return table
