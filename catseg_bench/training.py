"""What `bench train` adds to `model.training`: training sets from specs, periodic evaluation through
the benchmark runner, and the CPU demo on synthetic scenes.

`model.training` knows images, labels and class names only; this module turns a training spec
(`dataset_specs/training/*.toml`, e.g. COCO-Stuff-171) and a data root into those, and turns the
runner into the loop's `evaluate` callback.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from catseg_bench.data import open_eval_set
from catseg_bench.demo import DEMO_MODEL
from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix, compute_scores
from catseg_bench.random_baseline import uniform_prediction_confusion
from catseg_bench.runner import BenchmarkRunner, RunOptions
from catseg_bench.segmenters.catseg import CatSegSegmenter
from catseg_bench.specs import DatasetSpec, EvalSet, SpecError, load_specs, training_specs_dir
from model.catseg import CATSeg, encode_classes
from model.common import world as distributed
from model.common.files import atomic_write_json, user_path
from model.factory import create_model
from model.inference import predict_labels
from model.training.loop import TrainingSet, TrainSettings, read_log, train
from model.training.synthetic import SyntheticScenes

def load_training_spec(value: str) -> DatasetSpec:
    """A training spec by name (a file in `training_specs_dir()`) or by path to a spec's TOML file.

    The file is loaded with the folder it sits in, as `--specs DIR` loads extra specs.
    """
    path = user_path(value)
    if value.endswith(".toml"):
        if not path.is_file():
            raise BenchError(f"--dataset {value}: no such spec file")
        folder, name = path.parent, path.stem
    else:
        folder, name = training_specs_dir(), value
    specs = load_specs([folder])
    if name not in specs:
        known = ", ".join(sorted(p.stem for p in training_specs_dir().glob("*.toml")))
        raise BenchError(f"--dataset {value}: no training spec of that name (known: {known}); or pass a spec .toml file")
    spec = specs[name]
    if spec.is_composite:
        raise SpecError(f"{spec.path}: a composite spec (with [[subsets]]) cannot be a training set")
    return spec


def open_training_set(spec: DatasetSpec, data_root: Path) -> TrainingSet:
    """The spec's image/label pairs under `data_root` (MESS-style layout or a Hugging Face export)."""
    dataset = open_eval_set(spec.eval_sets()[0], data_root)
    if len(dataset) == 0:
        raise BenchError(f"{spec.name}: no image/label pairs under {data_root}; run `bench prepare` for it or fix --data-root")
    return TrainingSet(dataset, spec.class_names, spec.ignore_index, spec.display_name)


# ----------------------------------------------------------------------------- evaluation
class TrainingSegmenter(CatSegSegmenter):
    """The runner's CAT-Seg segmenter over the network being trained, so periodic evaluation runs
    exactly `bench run`'s inference; no checkpoint file, and the step is part of the settings."""

    def __init__(self, net: CATSeg, model_name: str, step: int, mode: str, precision: str):
        # CatSegSegmenter.__init__ would build a network; this one reuses the trained one.
        self.net = net
        self.model_id = model_name
        self.checkpoint_sha256 = None
        self.init_seed = None
        self.untrained = False
        self.compiled = False
        self.all_classes = net.aggregator.class_limit is None  # the official limit unless lifted
        self.step, self.mode, self.precision = step, mode, precision
        self.class_embeds: torch.Tensor | None = None

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "training_step": self.step}


@dataclass(frozen=True)
class EvalOptions:
    eval_sets: tuple[EvalSet, ...]
    data_root: Path
    limit: int | None = 50  # first N images of each set: a quick signal, not a benchmark number
    mode: str = "sliding"
    precision: str = "fp32"
    workers: int = 2


def periodic_evaluator(model_name: str, options: EvalOptions, output_dir: Path, log: Callable[[str], None]):
    """The loop's `evaluate` callback: the runner on `options.eval_sets`, results under OUTPUT/eval/step_N/."""

    def evaluate(net: CATSeg, step: int, world: distributed.World) -> dict[str, float]:
        segmenter = TrainingSegmenter(net, model_name, step, options.mode, options.precision)
        run_options = RunOptions(data_root=options.data_root, output=Path(output_dir) / "eval" / f"step_{step:07d}",
                                 workers=options.workers, limit=options.limit)
        runner = BenchmarkRunner(segmenter, run_options, net.device, world)
        metrics = {}
        for outcome in runner.run(list(options.eval_sets)):
            if outcome.miou is None:
                if world.is_main:
                    log(f"evaluation of {outcome.eval_set} at step {step} {outcome.status}: {outcome.message}")
                continue
            metrics[f"{outcome.eval_set}/mIoU"] = outcome.miou
        return metrics

    return evaluate


# ---------------------------------------------------------------------------------- demo
DEMO_TRAIN_SCENES = 256
DEMO_HELDOUT_SCENES = 8
DEMO_HELDOUT_SEED_OFFSET = 10_000  # held-out scenes come from another stream than the training ones


@dataclass(frozen=True)
class DemoScores:
    miou: float
    random_miou: float
    per_class_iou: dict[str, float | None]


def score_heldout(net: CATSeg, scenes, mode: str = "sliding") -> DemoScores:
    """mIoU of `net` on synthetic scenes (MESS scoring) and the Random lower bound of the same labels."""
    names = list(scenes.class_names)
    confusion = ConfusionMatrix(len(names), 255)
    label_counts = ConfusionMatrix(len(names), 255)
    text = encode_classes(net, names)
    for index in range(len(scenes)):
        label = scenes.read_label(index)
        pred = predict_labels(net, [scenes.read_image(index)], text, mode=mode)[0]
        confusion.update(pred, label, image=f"held-out scene {index}")
        label_counts.update(np.zeros(label.shape, dtype=np.uint8), label, image=f"held-out scene {index}")
    scores = compute_scores(confusion.numpy(), names)
    random = compute_scores(uniform_prediction_confusion(label_counts.numpy().sum(axis=0)), names)
    return DemoScores(scores.metrics["mIoU"], random.metrics["mIoU"], scores.per_class_iou)


@dataclass(frozen=True)
class DemoReport:
    model: str
    first_loss: float
    last_loss: float
    before: DemoScores
    after: DemoScores
    steps: int
    seconds: float

    @property
    def passed(self) -> bool:
        """The demo's claim: the loss went down and the trained model beats the Random lower bound."""
        return self.last_loss < self.first_loss and self.after.miou > self.after.random_miou


def run_demo(output_dir: Path, settings: TrainSettings, resume: bool, log: Callable[[str], None],
             model_name: str = DEMO_MODEL) -> DemoReport:
    """Train a tiny variant (catseg-tiny by default) on synthetic scenes, then score it (and the
    untrained model) on held-out ones."""
    scenes = SyntheticScenes(DEMO_TRAIN_SCENES, settings.seed)
    heldout = SyntheticScenes(DEMO_HELDOUT_SCENES, settings.seed + DEMO_HELDOUT_SEED_OFFSET)
    training_set = TrainingSet(scenes, scenes.class_names, 255, "synthetic scenes")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    before = score_heldout(create_model(model_name), heldout)
    result = train(model_name, training_set, output_dir, settings, resume=resume, log=log)
    after = score_heldout(create_model(model_name, checkpoint=result.final_weights), heldout)
    rows = read_log(output_dir)
    report = DemoReport(model_name, rows[0]["loss"], rows[-1]["loss"], before, after, result.step, time.perf_counter() - started)
    summary = {**dataclasses.asdict(report), "passed": report.passed, "class_names": list(scenes.class_names)}
    atomic_write_json(Path(output_dir) / "demo.json", summary)
    return report
