"""The whole benchmark in one process: build the model once, then evaluate every selected set.

Per evaluation set: embed its class names once, decode images in DataLoader workers, run batched
inference, stream the confusion matrix on the model's device and keep each image's counts
(:mod:`catseg_bench.per_image`), persist per-image progress, keep the qualitative samples
(:mod:`catseg_bench.samples`), and write the result file atomically. A set whose result is already on disk for the same spec, model,
checkpoint and settings is skipped; a stale one is set aside (renamed, never deleted) and redone;
an interrupted one continues where it stopped. One failing set is reported and the others go on.

A set with fewer images than its spec (or synthetic manifest) expects fails, unless the run allows
incomplete sets: then its result is partial. Every result records what it was computed on (the data
root, whether it is a synthetic suite, the fingerprint of the labels scored, digested in the loader
workers as the labels stream by) and the label sanity warnings of the scored labels; binary labels
holding only background and ignore (0/255 masks) fail their set.

Results go to ``OUTPUT/<model id>/``; a run of the same model with other settings (a sweep) goes to
``OUTPUT/<model id>@<settings digest>/`` (:func:`result_folder`), so each configuration keeps its results.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from catseg_bench.data import expected_image_count, open_eval_set
from catseg_bench.data.decode import encode_label_png
from catseg_bench.data.labelstats import (
    binary_ignore_pattern, label_digest, label_histogram, label_warnings, set_fingerprint,
)
from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix, as_numpy, predictions_as_labels
from catseg_bench.partial import PartialState, clear_partial, load_partial, names_digest, partial_path, save_partial
from catseg_bench.per_image import PerImageRecorder, PerImageStats, image_confusion, margins
from catseg_bench.preflight import os_error_line, seconds_from_env
from catseg_bench.random_baseline import label_pixels_per_image
from catseg_bench.results import (
    RESULT_SUFFIX, DataProvenance, Result, Timing, canonical_settings, read_result, result_path, settings_digest,
    write_result,
)
from catseg_bench.samples import choose_samples, save_sample
from catseg_bench.segmenters import Segmenter, is_analytic, is_prediction_reader, is_untrained, set_warnings
from catseg_bench.specs import EvalSet
from catseg_bench.synth import read_synth_manifest
from catseg_bench.worker_exit import DieWithParent
from model.common import world as distributed
from model.common.files import atomic_write_bytes, atomic_write_json

# How often an eval set's partial confusion matrix is persisted (seconds; 0 = after every batch).
PROGRESS_SECONDS_ENV = "CATSEG_BENCH_PROGRESS_SECONDS"
DEFAULT_PROGRESS_SECONDS = 1.0


@dataclass(frozen=True)
class RunOptions:
    data_root: Path
    output: Path  # results go to output/<model id>/
    batch_size: int | str = 1  # images per forward, or "auto" (the segmenter's `auto_batch_size`, else 1)
    workers: int = 2
    limit: int | None = None  # first N images of each set (sorted order); results are partial
    save_predictions: bool = False
    save_samples: int = 0  # images per set kept for the report's gallery (see catseg_bench.samples)
    allow_incomplete: bool = False  # score a set with fewer images than expected, as a partial result
    data_root_given: str | None = None  # data_root as the user gave it (recorded; default: data_root)


@dataclass
class SetOutcome:
    eval_set: str
    status: str  # done | skipped | resumed | failed
    message: str = ""
    miou: float | None = None
    seconds: float | None = None
    images: int = 0
    peak_memory_bytes: int | None = None
    stale_reasons: list[str] = field(default_factory=list)
    failed_elsewhere: bool = False  # torchrun: another process failed this set and reports why

    @property
    def images_per_second(self) -> float | None:
        return self.images / self.seconds if self.seconds else None


class _FailedElsewhere(BenchError):
    """Under torchrun: the set failed in another process, which reports the reason."""


class _PreparedItems(Dataset):
    """Decodes and prepares images in DataLoader workers; a prediction reader's items carry the
    label and the read prediction instead, and their images are never decoded.

    A decoding error becomes a value, so that the main process reports it as one clean line.
    """

    def __init__(self, dataset: Dataset, indices: list[int], segmenter: Segmenter):
        self.dataset = dataset
        self.indices = indices
        self.segmenter = segmenter
        self.reads_predictions = is_prediction_reader(segmenter)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.indices[i]
        try:
            if self.reads_predictions:
                name = self.dataset.names[index]
                label = self.dataset.read_label(index)
                return {"name": name, "label": label, "label_digest": label_digest(name, label),
                        "prediction": self.segmenter.read_prediction(name),
                        "where": self.segmenter.prediction_location(name),
                        "label_file": self.dataset.label_location(index)}
            item = self.dataset[index]
        except BenchError as err:
            return {"error": err.message}
        image = item["image"]
        return {**item, "image": self.segmenter.prepare_image(image), "size": tuple(image.shape[:2]),
                "label_file": self.dataset.label_location(index),
                "label_digest": label_digest(item["name"], item["label"])}


def _collate(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items


def largest_image_size(dataset, indices: list[int]) -> tuple[int, int]:
    """(height, width) of the largest image among `indices`, from the image headers alone."""
    import io

    from PIL import Image

    largest = (0, 0)
    for index in indices:
        source = dataset.image_source(index)
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            width, height = image.size
        if height * width > largest[0] * largest[1]:
            largest = (height, width)
    return largest


def check_predictions(preds, batch: list[dict[str, Any]], model_id: str, eval_set: EvalSet) -> None:
    """What `predict` returned for `batch`: one integer class-index map per image, at its label's
    (height, width), with values among the set's prompt indices (its class indices unless the spec
    gives ``prompt_names``), on any device. Anything else is a
    BenchError naming the model, the set and what was expected, so that a segmenter's bad output
    fails only its set."""
    where = f"{model_id} on {eval_set.name}"
    count = len(eval_set.prompts)
    expected = "expected one integer class-index map (torch.Tensor or numpy array) per image"
    if not isinstance(preds, (list, tuple)) or len(preds) != len(batch):
        got = f"{len(preds)} predictions" if isinstance(preds, (list, tuple)) else f"a {type(preds).__name__}"
        raise BenchError(f"{where}: predict returned {got} for {len(batch)} images; {expected}")
    for item, pred in zip(batch, preds):
        image = f"{eval_set.name}/{item['name']}"
        if not isinstance(pred, (torch.Tensor, np.ndarray)):
            raise BenchError(f"{where}: the prediction for {image} is a {type(pred).__name__}; {expected}")
        integral = (not (pred.is_floating_point() or pred.is_complex()) if isinstance(pred, torch.Tensor)
                    else pred.dtype.kind in "iub")
        if not integral:
            raise BenchError(f"{where}: the prediction for {image} has dtype {pred.dtype}; {expected} "
                             f"(class indices in [0, {count - 1}], e.g. the argmax over the class scores)")
        label_shape = tuple(item["label"].shape)
        if tuple(pred.shape) != label_shape:
            raise BenchError(f"{where}: the prediction for {image} has shape {tuple(pred.shape)}; expected the "
                             f"label's {label_shape} (height, width)")
        if pred.size if isinstance(pred, np.ndarray) else pred.numel():
            low, high = int(pred.min()), int(pred.max())
            if low < 0 or high >= count:
                raise BenchError(f"{where}: the prediction for {image} has values in [{low}, {high}]; expected class "
                                 f"indices in [0, {count - 1}]")


def run_key(eval_set: EvalSet, model_id: str, checkpoint_sha256: str | None, settings: dict[str, Any]) -> str:
    return "|".join([eval_set.name, eval_set.spec_hash, model_id, str(checkpoint_sha256), canonical_settings(settings)])


SETTINGS_CLAIM = ".bench-settings.json"  # in a result folder: the configuration whose results it holds


def result_folder(output: Path | str, model_id: str, settings: dict[str, Any]) -> Path:
    """Where a model's results with these settings go: ``OUTPUT/<model id>/`` unless that folder holds
    another configuration (settings other than ``limit``), then ``OUTPUT/<model id>@<settings digest>/``.

    A folder's configuration is the one its claim file names (written when a run starts), or, in a
    folder from before claims, its results' settings. So a sweep of settings keeps every result, while
    a rerun with the same settings finds (and resumes or replaces) its own results.
    """
    digest = settings_digest(settings)
    plain = Path(output) / model_id
    owner = _folder_configuration(plain)
    return plain if owner in (None, digest) else Path(output) / f"{model_id}@{digest}"


def _folder_configuration(folder: Path) -> str | None:
    """The settings digest a result folder belongs to; None for an absent or empty folder."""
    for path in [folder / SETTINGS_CLAIM, *sorted(folder.glob(f"*{RESULT_SUFFIX}"))]:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(document, dict):
            continue
        if path.name == SETTINGS_CLAIM and isinstance(document.get("settings_digest"), str):
            return document["settings_digest"]
        if isinstance(document.get("settings"), dict) and "eval_set" in document:
            return settings_digest(document["settings"])
    return None


def result_settings(segmenter_settings: dict[str, Any], limit: int | None) -> dict[str, Any]:
    return {**segmenter_settings, "limit": limit}


def _peak_memory_bytes(device: torch.device) -> int:
    """Peak accelerator memory on a GPU; the process's peak resident memory on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _existing(
    json_path: Path, eval_set: EvalSet, model_id: str, sha: str | None, settings: dict
) -> tuple[Result | None, list[str]]:
    """The result already at `json_path` (None when absent or unreadable) and why it is stale ([] when current)."""
    if not json_path.exists():
        return None, []
    try:
        existing = read_result(json_path)
    except BenchError as err:
        return None, [f"unreadable ({err.message})"]
    reasons = existing.stale_reasons(spec_hash=eval_set.spec_hash, model_id=model_id, checkpoint_sha256=sha, settings=settings)
    # A --limit run is partial by design: with the same limit (part of the settings) it is current.
    if existing.partial and settings.get("limit") is not None and len(reasons) == 1:
        return existing, []
    return existing, reasons


class BenchmarkRunner:
    """Evaluates one segmenter on a list of evaluation sets."""

    def __init__(
        self,
        segmenter: Segmenter,
        options: RunOptions,
        device: torch.device,
        world: distributed.World = distributed.World(),
        on_progress: Callable[[str, int, int], None] | None = None,
    ):
        self.segmenter = segmenter
        self.options = options
        self.device = device
        self.world = world
        self.on_progress = on_progress or (lambda name, done, total: None)
        self.model_id = segmenter.model_id
        self.checkpoint_sha256 = segmenter.checkpoint_sha256
        self.untrained = is_untrained(segmenter)
        self.settings = result_settings(segmenter.settings(), options.limit)
        # Saved predictions are named by --model-id and their settings name each folder read: one result folder.
        self.sweeps = not is_prediction_reader(segmenter)
        self.result_dir = (result_folder(options.output, self.model_id, self.settings) if self.sweeps
                           else Path(options.output) / self.model_id)
        self.synthetic = read_synth_manifest(Path(options.data_root)) is not None
        self.progress_seconds = seconds_from_env(PROGRESS_SECONDS_ENV, DEFAULT_PROGRESS_SECONDS)

    def run(self, eval_sets: list[EvalSet]) -> list[SetOutcome]:
        self._claim_folder()
        return [self.run_one(eval_set) for eval_set in eval_sets]

    def _claim_folder(self) -> None:
        """Name this configuration in its result folder, so that a run with other settings goes elsewhere."""
        if self.sweeps and self.world.is_main and not (self.result_dir / SETTINGS_CLAIM).exists():
            atomic_write_json(self.result_dir / SETTINGS_CLAIM, {
                "model_id": self.model_id, "settings_digest": settings_digest(self.settings), "settings": self.settings,
            })

    def run_one(self, eval_set: EvalSet) -> SetOutcome:
        json_path = result_path(self.result_dir, eval_set.name)
        existing, stale = _existing(json_path, eval_set, self.model_id, self.checkpoint_sha256, self.settings)
        if existing is not None and not stale:
            return SetOutcome(eval_set.name, "skipped", "result is current", existing.metrics.get("mIoU"),
                              existing.timing.get("seconds"), existing.images_scored,
                              existing.timing.get("peak_memory_bytes"))
        try:
            outcome = self._evaluate(eval_set, json_path)
        except _FailedElsewhere as err:
            return SetOutcome(eval_set.name, "failed", err.message, failed_elsewhere=True)
        except BenchError as err:
            return SetOutcome(eval_set.name, "failed", err.message)
        except OSError as err:
            return SetOutcome(eval_set.name, "failed", os_error_line(err, self.result_dir))
        except (RuntimeError, ValueError) as err:
            return SetOutcome(eval_set.name, "failed", f"{type(err).__name__}: {err}")
        outcome.stale_reasons = stale
        return outcome

    def _complete(self, eval_set: EvalSet, available: int) -> int:
        """How many images the set should hold; a BenchError when it holds fewer, unless incomplete
        sets are allowed."""
        expected, origin = expected_image_count(eval_set, self.options.data_root)
        if available < expected and not self.options.allow_incomplete:
            raise BenchError(
                f"{eval_set.name}: {expected - available} of {expected} images are missing under "
                f"{self.options.data_root} ({available} found; {origin}); re-prepare it (`bench prepare "
                f"{eval_set.spec.name}`; `bench datasets check {eval_set.name}` lists what is wrong) or pass "
                "--allow-incomplete to score what is there as a partial result"
            )
        return expected

    def _evaluate(self, eval_set: EvalSet, json_path: Path) -> SetOutcome:
        dataset = open_eval_set(eval_set, self.options.data_root)
        expected = self._complete(eval_set, len(dataset))
        total = len(dataset) if self.options.limit is None else min(len(dataset), self.options.limit)
        if total == 0:
            raise BenchError(f"{eval_set.name}: no images found under {self.options.data_root}; run `bench prepare {eval_set.spec.name}`")
        incomplete = len(dataset) < expected
        partial = incomplete or (self.options.limit is not None and total < len(dataset))
        available = expected if incomplete else len(dataset)
        if is_analytic(self.segmenter):
            return self._evaluate_analytic(eval_set, dataset, total, available, json_path, partial)

        indices = self.world.shard(total)
        shard_names = [dataset.names[i] for i in indices]
        key = run_key(eval_set, self.model_id, self.checkpoint_sha256, self.settings)
        state_path = partial_path(self.result_dir, eval_set.name, self.world.rank, self.world.size)
        state = load_partial(state_path, key, names_digest(shard_names))
        if state is not None and (state.per_image is None or state.label_digests is None):
            state = None  # saved before per-image counts and label digests were kept: start from the first image
        start = state.done if state else 0
        confusion = ConfusionMatrix(eval_set.num_classes, eval_set.ignore_index, self.device)
        if state:
            confusion.matrix += torch.from_numpy(state.confusion).to(self.device)
        elapsed_before = state.seconds if state else 0.0
        recorder = PerImageRecorder(eval_set.num_classes, state.per_image if state else None)
        digests = list(state.label_digests) if state else []
        chosen = choose_samples(dataset.names[:total], self.options.save_samples)
        sampled = {name: i for i, name in enumerate(dataset.names[:total]) if name in chosen}

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._begin(eval_set, dataset.names[:total])
        if not is_prediction_reader(self.segmenter):
            self.segmenter.set_classes(eval_set.prompts)
        loader = DataLoader(
            _PreparedItems(dataset, indices[start:], self.segmenter),
            batch_size=self._batch_size(dataset, indices[start:]),
            num_workers=self.options.workers,
            collate_fn=_collate,
            pin_memory=False,
            worker_init_fn=DieWithParent(),
        )
        prediction_dir = self.result_dir / "predictions" / eval_set.name
        started = time.perf_counter()
        last_save = started
        done = start
        self.on_progress(eval_set.name, done * self.world.size, total)
        failure: Exception | None = None
        try:
            for batch in loader:
                for item in batch:
                    if "error" in item:
                        raise BenchError(item["error"])
                if "prediction" in batch[0]:
                    preds = [item["prediction"] for item in batch]
                else:
                    preds = self.segmenter.predict([item["image"] for item in batch], [item["size"] for item in batch])
                    check_predictions(preds, batch, self.model_id, eval_set)
                for item, pred in zip(batch, preds):
                    where = item.get("where", f"{eval_set.name}/{item['name']}")
                    scored = predictions_as_labels(pred, eval_set.prediction_labels, image=where)
                    single = image_confusion(scored, item["label"], eval_set.num_classes, eval_set.ignore_index,
                                             self.device, image=where, label=item["label_file"])
                    confusion.merge(single)
                    recorder.add(item["name"], single.numpy())
                    digests.append(item["label_digest"])
                    if item["name"] in sampled:
                        self._save_sample(eval_set, dataset, sampled[item["name"]], item["label"], scored)
                    if self.options.save_predictions:
                        atomic_write_bytes(prediction_dir / f"{item['name']}.png", encode_label_png(as_numpy(pred)))
                done += len(batch)
                now = time.perf_counter()
                if now - last_save >= self.progress_seconds and done < len(indices):
                    save_partial(state_path, PartialState(key, names_digest(shard_names), done, confusion.numpy(),
                                                          elapsed_before + now - started, recorder.stats(),
                                                          tuple(digests)))
                    last_save = now
                self.on_progress(eval_set.name, min(done * self.world.size, total), total)
        except (BenchError, RuntimeError, ValueError, OSError) as err:
            failure = err
        # Under torchrun every process must learn that one failed, or the others would wait for it forever.
        if distributed.any_across(self.world, failure is not None, self.device):
            raise failure or _FailedElsewhere(f"{eval_set.name}: failed in another process (its message is above)")

        seconds = distributed.max_across(self.world, elapsed_before + time.perf_counter() - started, self.device)
        distributed.sum_across(self.world, confusion.matrix)
        per_image = self._gather(recorder.stats(), indices, dataset.names[:total])
        fingerprint = set_fingerprint(dict(zip(dataset.names[:total], self._gather_digests(digests, indices, total))))
        peak = _peak_memory_bytes(self.device)
        miou = self._write(eval_set, json_path, confusion, total, available, partial,
                           Timing(seconds=seconds, peak_memory_bytes=peak, device=str(self.device)), per_image,
                           fingerprint)
        clear_partial(state_path)
        return SetOutcome(eval_set.name, "resumed" if start else "done", "", miou, seconds, total, peak)

    def _batch_size(self, dataset, indices: list[int]) -> int:
        """--batch-size, or for "auto" what the segmenter's optional ``auto_batch_size(image_size)``
        allows for the largest original image of this shard (1 for a segmenter without one)."""
        if self.options.batch_size != "auto":
            return int(self.options.batch_size)
        choose = getattr(self.segmenter, "auto_batch_size", None)
        if choose is None or not indices:
            return 1
        return max(1, int(choose(largest_image_size(dataset, indices))))

    def _begin(self, eval_set: EvalSet, names: list[str]) -> None:
        """The optional ``begin_eval_set(eval_set, names)`` hook, before a set's first image."""
        begin = getattr(self.segmenter, "begin_eval_set", None)
        if begin is not None:
            begin(eval_set, names)

    def _gather(self, shard: PerImageStats, indices: list[int], names: list[str]) -> PerImageStats:
        """Every rank's per-image counts, in sample order, on every rank (one process: `shard` itself)."""
        full = torch.zeros((len(names), 3, shard.num_classes), dtype=torch.int64, device=self.device)
        full[indices] = torch.from_numpy(shard.counts).to(self.device)
        distributed.sum_across(self.world, full)
        return PerImageStats(tuple(names), full.cpu().numpy())

    def _gather_digests(self, shard: list[str], indices: list[int], total: int) -> list[str]:
        """Every rank's label digests (hex sha256), in sample order (one process: `shard` itself)."""
        if self.world.size == 1:
            return shard
        full = torch.zeros((total, 32), dtype=torch.int64, device=self.device)
        if shard:
            full[indices] = torch.tensor([list(bytes.fromhex(d)) for d in shard], dtype=torch.int64, device=self.device)
        distributed.sum_across(self.world, full)
        return [bytes(row).hex() for row in full.cpu().numpy().astype(np.uint8)]

    def _save_sample(self, eval_set: EvalSet, dataset, index: int, label: np.ndarray, pred) -> None:
        save_sample(self.result_dir, eval_set.name, dataset.names[index], image=dataset.read_image(index),
                    label=label, prediction=as_numpy(pred),
                    provenance={"spec_hash": eval_set.spec_hash, "model_id": self.model_id,
                                "checkpoint_sha256": self.checkpoint_sha256, "settings": self.settings})

    def _evaluate_analytic(self, eval_set, dataset, total, available, json_path, partial) -> SetOutcome:
        """A segmenter whose confusion matrix follows from the labels' pixel counts (Random).

        Per-image counts are the expected matrices of the single images; they are kept when they add
        up to the set's matrix (Random's expectation is linear in the counts), else the result has none.
        """
        if eval_set.prediction_labels is not None:
            raise BenchError(
                f"{eval_set.name}: {self.model_id} computes its confusion matrix over the label classes, but this set "
                f"scores {len(eval_set.prompts)} prompts through prediction_labels ({eval_set.spec.path}); "
                "an analytic baseline is not defined for it"
            )
        started = time.perf_counter()
        self._begin(eval_set, dataset.names[:total])
        digests: dict[str, str] = {}
        per_label = label_pixels_per_image(
            dataset, eval_set.num_classes, eval_set.ignore_index, total,
            each_label=lambda i, label: digests.__setitem__(dataset.names[i], label_digest(dataset.names[i], label)),
        )
        confusion = self.segmenter.expected_confusion(per_label.sum(axis=0))
        per_image = PerImageStats(tuple(dataset.names[:total]),
                                  np.stack([margins(self.segmenter.expected_confusion(row)) for row in per_label]))
        seconds = time.perf_counter() - started
        miou = self._write(eval_set, json_path, confusion, total, available, partial,
                           Timing(seconds=seconds, device="cpu"), per_image if per_image.matches(confusion) else None,
                           set_fingerprint(digests))
        self.on_progress(eval_set.name, total, total)
        return SetOutcome(eval_set.name, "done", "", miou, seconds, total)

    def _write(self, eval_set, json_path, confusion, total, available, partial, timing, per_image,
               fingerprint) -> float | None:
        """Write the result with its provenance and label warnings (main rank; `write_result` keeps a
        stale one aside); every rank gets its mIoU. Binary labels holding only background and ignore
        fail the set instead (a --limit run, which saw only some labels, records it as a warning)."""
        matrix = confusion.numpy() if isinstance(confusion, ConfusionMatrix) else confusion
        histogram = label_histogram(eval_set, matrix)
        pattern = binary_ignore_pattern(eval_set, *histogram)
        if pattern is not None and self.options.limit is None:
            raise BenchError(pattern)
        # the model's own caveat first: `bench run` shows one warning line per set
        warnings = set_warnings(self.segmenter) + ([pattern] if pattern else []) + label_warnings(eval_set, *histogram)
        if self.world.is_main:
            write_result(
                self.result_dir,
                eval_set=eval_set,
                model_id=self.model_id,
                checkpoint_sha256=self.checkpoint_sha256,
                untrained=self.untrained,
                settings=self.settings,
                confusion=confusion,
                images_scored=total,
                images_total=available,
                partial=partial,
                timing=timing,
                per_image=per_image,
                data=DataProvenance(self.options.data_root_given or str(self.options.data_root), self.synthetic,
                                    fingerprint, str(Path(self.options.data_root).resolve())),
                label_warnings=warnings,
            )
        distributed.barrier(self.world)
        return read_result(json_path).metrics.get("mIoU")

