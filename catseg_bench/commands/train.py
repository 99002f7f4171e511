"""`bench train`: train CAT-Seg with the official recipe (one process or `torchrun`), and
`bench export-official`: write any checkpoint in the official detectron2 key layout."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from catseg_bench.errors import BenchError

DEMO_ITERS = 100
DEMO_BATCH_SIZE = 2  # two cores: a smaller batch gives more steps in the same minutes
DEMO_WORKERS = 1
DEMO_OUTPUT = Path("train-demo")
CLIP_INIT_NONE = "none"


def _clip_init(value: Optional[str], model: str) -> Optional[str]:
    """Default: the pretrained CLIP the variant's config names (OpenAI for B and L, open_clip's
    EVA-02 / SigLIP weights for the Table 4 variants), else the random towers (tiny)."""
    from model.training.clip_init import start_tag

    if value is None:
        return start_tag(model)
    return None if value == CLIP_INIT_NONE else value


def _eval_options(eval_sets: str, data_root: Optional[Path], limit: int, mode: str, precision: str, workers: int):
    from catseg_bench.data import resolve_data_root
    from catseg_bench.selection import select_eval_sets
    from catseg_bench.specs import load_all
    from catseg_bench.training import EvalOptions

    specs, benchmarks = load_all()
    return EvalOptions(tuple(select_eval_sets(eval_sets, specs, benchmarks["mess"], benchmarks)), resolve_data_root(data_root),
                       limit=limit or None, mode=mode, precision=precision, workers=workers)


def _print_demo(console: Console, report) -> None:
    table = Table(title="Held-out synthetic scenes (MESS scoring, sliding inference)", title_justify="left")
    for header in ("model", "mIoU"):
        table.add_column(header, justify="left" if header == "model" else "right")
    table.add_row("Random lower bound", f"{report.after.random_miou:.2f}")
    table.add_row(f"{report.model}, untrained", f"{report.before.miou:.2f}")
    table.add_row(f"{report.model}, trained {report.steps} steps", f"{report.after.miou:.2f}")
    console.print(table)
    console.print(f"loss {report.first_loss:.4f} (first logged) -> {report.last_loss:.4f} (last); "
                  f"{report.seconds / 60:.1f} min in all")
    verdict = "[green]PASS[/]" if report.passed else "[red]FAIL[/]"
    console.print(f"{verdict}: the loss {'fell' if report.last_loss < report.first_loss else 'did not fall'} and the "
                  f"trained model {'beats' if report.after.miou > report.after.random_miou else 'does not beat'} Random")


def train_command(
    model: Optional[str] = typer.Option(None, "--model", help="catseg-b (default), catseg-l or catseg-tiny."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Prepared data (default $CATSEG_BENCH_DATA)."),
    output: Optional[Path] = typer.Option(None, "--output", help="Run folder: log.csv, checkpoints/, model_final.safetensors."),
    iters: Optional[int] = typer.Option(None, "--iters", min=1, help=f"Optimizer steps (80000; demo {DEMO_ITERS})."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help=f"Global batch, split over the torchrun processes (4; demo {DEMO_BATCH_SIZE})."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 (official) or bf16 (autocast)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output."),
    demo: bool = typer.Option(False, "--demo", help="catseg-tiny (or --model catseg-eva02-tiny / catseg-siglip-tiny) on synthetic scenes on the CPU, then held-out scores."),
    dataset: str = typer.Option("coco_stuff_171", "--dataset", help="Training spec name (dataset_specs/training) or .toml path."),
    clip_init: Optional[str] = typer.Option(None, "--clip-init", help="openai (EVA-02 / SigLIP variants: merged2b_s6b_b61k / webli), a CLIP weights file, or none "
                                            "(default: openai; none for catseg-tiny)."),
    seed: int = typer.Option(0, "--seed", help="Initialisation, data order and augmentation."),
    checkpoint_period: int = typer.Option(5000, "--checkpoint-period", min=1, help="Steps between checkpoints."),
    keep_checkpoints: int = typer.Option(2, "--keep-checkpoints", min=0, help="Newest checkpoints kept (0: all)."),
    log_period: int = typer.Option(20, "--log-period", min=1, help="Steps between log lines."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help=f"Data-loader workers per process (min(4, CPUs); demo {DEMO_WORKERS})."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when visible)."),
    eval_sets: str = typer.Option("", "--eval-sets", help="Datasets to evaluate periodically, e.g. suim,kvasir_instrument or suite:in_domain."),
    eval_period: int = typer.Option(5000, "--eval-period", min=1, help="Steps between evaluations."),
    eval_limit: int = typer.Option(50, "--eval-limit", min=0, help="Images per evaluation set (0: all)."),
    eval_mode: str = typer.Option("sliding", "--eval-mode", help="sliding or whole."),
) -> None:
    """Train CAT-Seg with the official recipe on COCO-Stuff-171 (or --demo: a few CPU minutes)."""
    from model.checkpoint import CheckpointError
    from model.factory import list_models
    from model.training.data import TrainingDataError
    from model.training.loop import TrainSettings, TrainingError, train
    from model.training.state import CheckpointMismatch

    console = Console()
    if demo:
        from catseg_bench.demo import DEMO_MODEL, TRAIN_DEMO_MODELS

        if model not in (None, *TRAIN_DEMO_MODELS):
            raise BenchError(f"--demo trains a tiny variant on synthetic scenes: --model {' or '.join(TRAIN_DEMO_MODELS)}")
        if eval_sets:
            raise BenchError("--demo scores held-out synthetic scenes; drop --eval-sets")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise BenchError("--demo runs in one process; start it without torchrun")
        model = model or DEMO_MODEL
    model = model or "catseg-b"
    if model not in list_models():
        raise BenchError(f"--model {model}: choose one of {', '.join(list_models())}")
    if not demo and output is None:
        raise BenchError("--output DIR is required: the run folder for log.csv, checkpoints and the final weights")
    settings = TrainSettings(
        iters=iters or (DEMO_ITERS if demo else TrainSettings.iters),
        batch_size=batch_size or (DEMO_BATCH_SIZE if demo else TrainSettings.batch_size),
        precision=precision,
        seed=seed,
        checkpoint_period=checkpoint_period,
        keep_checkpoints=keep_checkpoints,
        log_period=log_period,
        eval_period=eval_period,
        num_workers=workers if workers is not None else (DEMO_WORKERS if demo else min(4, os.cpu_count() or 1)),
    )

    def log(message: str) -> None:
        console.print(message, highlight=False, soft_wrap=True)

    try:
        if demo:
            from catseg_bench.training import run_demo

            report = run_demo(output or DEMO_OUTPUT, settings, resume, log, model)
            _print_demo(console, report)
            return
        from catseg_bench.data import resolve_data_root
        from catseg_bench.training import load_training_spec, open_training_set, periodic_evaluator

        training_set = open_training_set(load_training_spec(dataset), resolve_data_root(data_root))
        evaluate = None
        if eval_sets:
            options = _eval_options(eval_sets, data_root, eval_limit, eval_mode, precision, min(settings.num_workers, 2))
            evaluate = periodic_evaluator(model, options, output, log)
        train(model, training_set, output, settings, clip_init=_clip_init(clip_init, model), resume=resume,
              evaluate=evaluate, device=device, log=log)
    except (TrainingError, CheckpointMismatch, CheckpointError, TrainingDataError) as err:
        raise BenchError(str(err)) from None
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def export_official_command(
    checkpoint: str = typer.Argument(..., help="A checkpoint of ours: training step_*.pt, .safetensors, or a state dict."),
    model: str = typer.Option(..., "--model", help="The variant it holds: catseg-b, catseg-l or catseg-tiny."),
    out: Path = typer.Option(..., "--out", help="FILE.pth to write: {'model': official state dict}."),
) -> None:
    """Write CHECKPOINT in the official CAT-Seg key layout (loads in the official code and in `bench run`)."""
    import model as catseg_model
    from model.training.export import save_official

    try:
        net = catseg_model.create_model(model, checkpoint=checkpoint)
    except (catseg_model.CheckpointError, ValueError) as err:
        raise BenchError(str(err)) from None
    save_official(net.canonical_state_dict(), net.config, out)
    Console().print(f"wrote {out}: {model} in the official key layout, from sha256 {net.checkpoint_sha256}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("export-official")(export_official_command)
