"""`bench convert`: an official CAT-Seg checkpoint -> our safetensors format.

The official detectron2 file (819 MB for B, with AdamW state) becomes the model's canonical state
dict (617 MB for B): keys renamed, q/k/v merged, every key and shape checked, the variant and the
source file's sha256 in the metadata. `--checkpoint FILE.safetensors` loads it without pickle.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from catseg_bench.errors import BenchError


def convert(
    checkpoint: str = typer.Argument(..., help="Official checkpoint: path, http(s) URL or 'hub'."),
    model: str = typer.Option(..., "--model", help="The variant it holds: catseg-b, catseg-l or catseg-tiny."),
    out: Path = typer.Option(..., "--out", help="FILE.safetensors to write."),
) -> None:
    """Convert CHECKPOINT to a .safetensors file of this project's format."""
    import model as catseg_model
    from model.checkpoint import load_state, save_safetensors
    from model.factory import expected_shapes

    if out.suffix != ".safetensors":
        raise BenchError(f"--out {out}: the output must end in .safetensors")
    try:
        config = catseg_model.get_config(model)
    except ValueError as err:
        raise BenchError(f"--model {model}: {err}") from None
    try:
        state, sha256, _ = load_state(checkpoint, config, expected_shapes(config))
    except catseg_model.CheckpointError as err:
        raise BenchError(str(err)) from None
    save_safetensors(state, config, out, source_sha256=sha256)
    params = sum(v.numel() for v in state.values())
    Console().print(f"wrote {out}: {model}, {len(state)} tensors, {params:,} values, from sha256 {sha256}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
