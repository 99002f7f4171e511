"""`train`: the official CAT-Seg recipe on one process or several (`torchrun`), restartable.

One step: a global batch of augmented crops (see `model.training.data`), CLIP normalisation,
class embeddings of every training class recomputed with gradients (the text tower's q/v train),
logits with 2x2 class pooling, sigmoid BCE against one-hot targets at the crop size, backward,
full-model gradient clipping to norm 0.01, AdamW step, cosine learning-rate step. With several
processes the model is wrapped in DistributedDataParallel (NCCL on GPUs, gloo on the CPU), every
rank takes its slice of the global batch, and gradients are averaged, which equals the mean loss
over the global batch. TF32 matmuls are on for CUDA (the official `set_float32_matmul_precision
("high")`); `precision="bf16"` adds bf16 autocast around the forward pass.

The run folder holds `run.json` (what was trained, how), `log.csv` (step, loss, lr, ...; rank 0),
`eval.csv` (periodic evaluation, if any), `checkpoints/step_*.pt` (see `model.training.state`) and,
at the end, `model_final.safetensors` (the weights alone, for `bench run --checkpoint`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from model.catseg import CATSeg
from model.checkpoint import save_safetensors
from model.common.device import PRECISIONS, DeviceError, resolve_device
from model.common.files import atomic_write
from model.common.world import World, barrier, init_world, local_rank, sum_across
from model.factory import create_model
from model.training.augment import AugmentConfig
from model.training.clip_init import load_clip_weights
from model.training.data import AugmentedStream, SampleSource, StreamSampler
from model.training.loss import segmentation_loss
from model.training.optim import OptimConfig, build_optimizer, build_scheduler, clip_gradients, trainable_parameters
from model.training.state import (
    CheckpointMismatch,
    capture_rng,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_partial_writes,
    restore_rng,
    save_checkpoint,
)

LOG_COLUMNS = ("step", "loss", "lr", "clip_lr", "grad_norm", "seconds_per_step", "elapsed_seconds")
FINAL_WEIGHTS = "model_final.safetensors"


@dataclass(frozen=True)
class TrainSettings:
    iters: int = 80000  # SOLVER.MAX_ITER; also the length of the cosine schedule
    batch_size: int = 4  # SOLVER.IMS_PER_BATCH: the global batch, split over the processes
    precision: str = "fp32"  # "bf16": autocast around the forward pass (not in the official run)
    seed: int = 0  # fixes the initialisation of new modules, the data order and the augmentation
    checkpoint_period: int = 5000  # detectron2's CHECKPOINT_PERIOD default; the last step is always saved
    keep_checkpoints: int = 2  # newest checkpoints kept on disk (0 keeps all)
    log_period: int = 20  # detectron2 logs every 20 iterations
    eval_period: int = 5000  # TEST.EVAL_PERIOD; 0 turns periodic evaluation off
    num_workers: int = 4  # data-loader processes per rank (0: load in the training process)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def identity(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        return {
            "iters": self.iters,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "optim": dataclasses.asdict(self.optim),
            "augment": dataclasses.asdict(self.augment),
        }


@dataclass(frozen=True)
class TrainingSet:
    """What to train on: images with train-ID labels, and the class names the IDs index."""

    source: SampleSource
    class_names: tuple[str, ...]
    ignore_index: int = 255
    name: str = "training set"


@dataclass
class TrainResult:
    output_dir: Path
    start_step: int
    step: int
    final_weights: Path
    log_path: Path


class TrainingError(Exception):
    """A run that cannot start or continue; the message names the file or option and the fix."""


# Called on every rank with the model in eval mode; returns {metric name: value} to log.
Evaluate = Callable[[CATSeg, int, World], dict[str, float]]
Log = Callable[[str], None]


def init_distributed(device: str | None = None) -> tuple[World, torch.device]:
    """Pick the device (under torchrun each process takes the GPU of its local rank) and join the group."""
    try:
        wanted = resolve_device(device or "auto")
    except DeviceError as err:
        raise TrainingError(str(err)) from None
    chosen = wanted
    if wanted.type == "cuda":
        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
        chosen = torch.device("cuda", local_rank() if launched or wanted.index is None else wanted.index)
        torch.cuda.set_device(chosen)
    return init_world(chosen), chosen


# ------------------------------------------------------------------------------------ files
def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _truncate_csv(path: Path, columns: tuple[str, ...], last_step: int) -> None:
    """Keep the header and the rows up to `last_step` (a resumed run rewrites what came after)."""
    rows = []
    if path.exists():
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                try:
                    if int(row["step"]) <= last_step:
                        rows.append(row)
                except (KeyError, TypeError, ValueError):
                    continue  # a line cut short by a kill
    lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in rows]
    _atomic_write_text(path, "\n".join(lines) + "\n")


def _append_csv(path: Path, values: list) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(",".join(str(v) for v in values) + "\n")


def read_log(output_dir: Path) -> list[dict[str, float]]:
    """The rows of `log.csv` as numbers."""
    with (Path(output_dir) / "log.csv").open(newline="", encoding="utf-8") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


# ------------------------------------------------------------------------------------ setup
def _seed_everything(seed: int, rank: int) -> None:
    torch.manual_seed(seed)
    np.random.seed((seed + rank) % 2**32)
    random.seed(seed + rank)


def _check_resumable(state: dict, path: Path, model_name: str, settings: TrainSettings, training_set: TrainingSet) -> None:
    if state["model_name"] != model_name:
        raise CheckpointMismatch(f"{path}: trains {state['model_name']}, not {model_name}; pass --model {state['model_name']}")
    run = state["run"]
    if run["settings"] != settings.identity():
        changed = sorted(k for k in settings.identity() if run["settings"].get(k) != settings.identity()[k])
        raise CheckpointMismatch(
            f"{path}: the run was started with other {', '.join(changed)}; resume with the same options "
            "or choose a new --output"
        )
    if tuple(run["class_names"]) != tuple(training_set.class_names):
        raise CheckpointMismatch(f"{path}: the run was started with another class list; resume on the same training set")


def _lr_range(optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    lrs = [group["lr"] for group in optimizer.param_groups]
    return max(lrs), min(lrs)


def _build_model(model_name: str, settings: TrainSettings, training_set: TrainingSet, resume_from: Path | None,
                 clip_init: str | Path | None) -> tuple[CATSeg, dict | None, dict]:
    """The model with its starting weights (checkpoint, CLIP weights or random), q/v split out for
    fine-tuning; the checkpoint read (if resuming) and the run's identity."""
    model = create_model(model_name)
    if settings.augment.crop_size != model.config.crop_size:
        raise TrainingError(f"crop size {settings.augment.crop_size} differs from {model_name}'s input {model.config.crop_size}")
    run_info = {
        "model_name": model_name,
        "training_set": training_set.name,
        "class_names": list(training_set.class_names),
        "ignore_index": training_set.ignore_index,
        "settings": settings.identity(),
        "clip_init": None,
    }
    state = None
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        _check_resumable(state, resume_from, model_name, settings, training_set)
        model.load_state_dict(state["model"], strict=True)
        run_info = state["run"]
    elif clip_init is not None:
        run_info["clip_init"] = load_clip_weights(model, model_name, clip_init)
    model.freeze_for_finetuning()
    return model, state, run_info


def _restore_progress(state: dict, path: Path, optimizer: torch.optim.Optimizer, scheduler, world: World) -> int:
    """Load optimizer, scheduler and this rank's random state; returns the step to continue from."""
    saved_names = [g.get("name") for g in state["optimizer"]["param_groups"]]
    if saved_names != [g["name"] for g in optimizer.param_groups]:
        raise CheckpointMismatch(f"{path}: its optimizer groups do not match this model's trainable tensors")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if len(state["rng"]) == world.size:
        restore_rng(state["rng"][world.rank])
    return int(state["step"])


class _LogWindow:
    """Loss and gradient norm summed on the device since the last log line (no sync per step)."""

    def __init__(self, device: torch.device):
        self.totals = torch.zeros(2, device=device)
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        self.totals += torch.stack([loss.detach().float(), grad_norm.detach().float()])
        self.steps += 1

    def close(self, world: World) -> tuple[float, float, float]:
        """(mean loss, mean grad norm) over all ranks and the seconds per step; starts a new window."""
        totals = self.totals.clone()
        totals = sum_across(world, totals) / world.size
        mean_loss, mean_norm = (totals / self.steps).tolist()
        now = time.perf_counter()
        per_step = (now - self.started) / self.steps
        self.totals.zero_()
        self.steps, self.started = 0, now
        return mean_loss, mean_norm, per_step


def _due(step: int, period: int, last: int) -> bool:
    return step % period == 0 or step == last


def train(
    model_name: str,
    training_set: TrainingSet,
    output_dir: Path,
    settings: TrainSettings = TrainSettings(),
    *,
    clip_init: str | Path | None = None,
    resume: bool = False,
    evaluate: Evaluate | None = None,
    device: str | None = None,
    log: Log = print,
) -> TrainResult:
    """Train `model_name` on `training_set` into `output_dir`; see the module docstring.

    clip_init: where the CLIP towers start ("openai", a weights file, or None for the random
    initialisation of `create_model`, e.g. for catseg-tiny). resume: continue from the newest
    checkpoint in `output_dir` (a fresh start when there is none); without it an `output_dir`
    that already holds checkpoints is refused.
    """
    if settings.precision not in PRECISIONS:
        raise TrainingError(f"--precision {settings.precision}: choose one of {', '.join(PRECISIONS)}")
    output_dir = Path(output_dir)
    world, dev = init_distributed(device)
    say = log if world.is_main else (lambda message: None)
    if settings.batch_size % world.size:
        raise TrainingError(f"--batch-size {settings.batch_size} is not divisible by the {world.size} processes")
    if dev.type == "cuda":
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.benchmark = True

    found = list_checkpoints(output_dir)
    if found and not resume:
        raise TrainingError(
            f"{output_dir} already holds a training run ({found[-1][1].name}); pass --resume to continue it "
            "or choose another --output"
        )
    resume_from = latest_checkpoint(output_dir) if resume else None

    _seed_everything(settings.seed, world.rank)
    model, state, run_info = _build_model(model_name, settings, training_set, resume_from, clip_init)
    model.to(dev).train()
    optimizer = build_optimizer(model, model.clip, settings.optim)
    scheduler = build_scheduler(optimizer, settings.iters)
    start = 0 if state is None else _restore_progress(state, resume_from, optimizer, scheduler, world)
    if state is not None:
        say(f"resumed from {resume_from} at step {start}")

    log_path = output_dir / "log.csv"
    eval_path = output_dir / "eval.csv"
    if world.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_partial_writes(output_dir)
        _atomic_write_text(output_dir / "run.json", json.dumps({**run_info, "world_size": world.size,
                                                                "precision": settings.precision}, indent=2) + "\n")
        _truncate_csv(log_path, LOG_COLUMNS, start)
        if evaluate is not None:
            _truncate_csv(eval_path, ("step", "metric", "value"), start)
    trainable = sum(p.numel() for p in trainable_parameters(optimizer))
    say(f"training {model_name} on {training_set.name} ({len(training_set.source)} images, "
        f"{len(training_set.class_names)} classes) for {settings.iters} steps of {settings.batch_size} "
        f"on {world.size} x {dev.type}, {trainable / 1e6:.2f} M trainable parameters, {settings.precision}")

    tokens = model.tokenize(list(training_set.class_names))  # encoded under autograd on every step
    forward: nn.Module = model
    if world.size > 1:
        forward = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                          broadcast_buffers=False)
    # The ignore value is a fact of the training set (its spec), which the loss also reads: the stream
    # checks labels against it and pads crops with it.
    augment = dataclasses.replace(settings.augment, ignore_index=training_set.ignore_index)
    stream = AugmentedStream(training_set.source, augment, len(training_set.class_names), settings.seed)
    sampler = StreamSampler(start, settings.iters, settings.batch_size, world.rank, world.size)
    loader = DataLoader(stream, batch_size=sampler.per_rank, sampler=sampler, num_workers=settings.num_workers,
                        pin_memory=dev.type == "cuda", persistent_workers=False)
    autocast = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16")

    step = start
    window = _LogWindow(dev)
    started = time.perf_counter()
    for images, labels in loader:
        images = model.normalize(images.to(dev, non_blocking=True))
        labels = labels.to(dev, non_blocking=True)
        with autocast:
            logits = forward(images, tokens)
        loss = segmentation_loss(logits, labels, training_set.ignore_index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = clip_gradients(optimizer, settings.optim.grad_clip_norm)
        lr, clip_lr = _lr_range(optimizer)
        optimizer.step()
        scheduler.step()
        step += 1
        window.add(loss, grad_norm)

        if _due(step, settings.log_period, settings.iters):
            mean_loss, mean_norm, per_step = window.close(world)
            if world.is_main:
                _append_csv(log_path, [step, f"{mean_loss:.6f}", f"{lr:.6e}", f"{clip_lr:.6e}", f"{mean_norm:.6e}",
                                       f"{per_step:.3f}", f"{time.perf_counter() - started:.1f}"])
            eta = time.strftime("%H:%M:%S", time.gmtime(per_step * (settings.iters - step)))
            say(f"step {step}/{settings.iters}  loss {mean_loss:.4f}  lr {lr:.3e}  grad_norm {mean_norm:.3e}  "
                f"{per_step:.2f} s/step  eta {eta}")

        if _due(step, settings.checkpoint_period, settings.iters):
            rng = [capture_rng()]
            if world.size > 1:
                rng = [None] * world.size
                dist.all_gather_object(rng, capture_rng())
            if world.is_main:
                path = checkpoint_path(output_dir, step)
                save_checkpoint(path, model_name=model_name, model_state=model.canonical_state_dict(),
                                optimizer=optimizer, scheduler=scheduler, step=step, rng=rng, run=run_info)
                prune_checkpoints(output_dir, settings.keep_checkpoints)
                say(f"saved {path}")
            barrier(world)

        if evaluate is not None and settings.eval_period > 0 and _due(step, settings.eval_period, settings.iters):
            model.eval()
            metrics = evaluate(model, step, world)
            model.train()
            if world.is_main:
                for name, value in metrics.items():
                    _append_csv(eval_path, [step, name, value])
            say(f"evaluation at step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
            window.started = time.perf_counter()  # evaluation time is not training time

    final = output_dir / FINAL_WEIGHTS
    if world.is_main and step == settings.iters:
        save_safetensors(model.canonical_state_dict(), model.config, final, None)
        say(f"wrote {final}")
    barrier(world)
    return TrainResult(output_dir, start, step, final, log_path)
