"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint `OUTPUT/checkpoints/step_0005000.pt` is a torch file (loadable with
`weights_only=True`) holding:

- `model`: the canonical state dict (q/k/v merged, our key names) — so the same file loads with
  `create_model(name, checkpoint=path)` and `bench run --checkpoint path`;
- `optimizer`, `scheduler`: their state dicts (optimizer groups carry their tensor names, which are
  checked on resume);
- `step`: optimizer steps done; `rng`: the random states of every process (index = rank);
- `model_name`, `run`: the run's identity (settings that must not change on resume).

The newest file is the one with the highest step; a file is complete or absent (temp file in the
same folder, then `os.replace`), so a killed run never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.common.files import atomic_write

CHECKPOINT_FORMAT = "catseg-bench-train"
CHECKPOINT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_STEP_FILE = re.compile(r"^step_(\d{7,})\.pt$")


def checkpoint_path(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINT_DIR / f"step_{step:07d}.pt"


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in the run folder, oldest first."""
    folder = Path(output_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(path: Path, *, model_name: str, model_state: dict, optimizer: torch.optim.Optimizer,
                    scheduler: Any, step: int, rng: list[dict], run: dict) -> None:
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model_name": model_name,
            "model": {k: v.detach().cpu() for k, v in model_state.items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "rng": rng,
            "run": run,
        },
        path,
    )


class CheckpointMismatch(ValueError):
    """A checkpoint that cannot continue this run (another model, other settings, unreadable)."""


def load_checkpoint(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointMismatch(f"{path}: unreadable training checkpoint ({str(exc).splitlines()[0]}); delete it to resume from the one before") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointMismatch(f"{path}: not a training checkpoint of `bench train`")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointMismatch(f"{path}: training checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}")
    return state


def remove_partial_writes(output_dir: Path) -> None:
    """Delete temp files a killed run left mid-write: checkpoints, and the run folder's own files
    (`model_final.safetensors`, `run.json`, the logs); none of them was ever a finished file."""
    for folder in (Path(output_dir), Path(output_dir) / CHECKPOINT_DIR):
        if folder.is_dir():
            for path in folder.glob("*.tmp"):
                path.unlink(missing_ok=True)


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (keep <= 0 keeps them all)."""
    if keep <= 0:
        return
    for _, path in list_checkpoints(output_dir)[:-keep]:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ random states
def capture_rng() -> dict:
    """This process's random states in a form `torch.load(weights_only=True)` accepts."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
