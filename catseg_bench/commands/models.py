"""`bench models list`: every segmenter `bench run --model` accepts, with its source and arguments."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    models = typer.Typer(help="Registered segmenters (built-in, and installed packages' entry points).",
                         no_args_is_help=True)
    app.add_typer(models, name="models")

    @models.command("list")
    def list_models(
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ) -> None:
        """Every registered model: name, source (built-in or package), description and --model-args."""
        from rich.console import Console
        from rich.table import Table

        from catseg_bench.errors import BenchError
        from catseg_bench.registry import available_segmenters

        rows = []
        for entry in available_segmenters().values():
            row = {"name": entry.name, "source": entry.source, "target": entry.target,
                   "description": entry.description, "arguments": []}
            try:
                row["description"] = entry.summary()
                parameters = entry.parameters()
                row["run_options"] = entry.run_options()
                row["weights"] = entry.weights()
            except BenchError as err:  # a broken plugin is listed with its error, not hidden
                row["error"] = str(err)
                parameters = []
            row["arguments"] = [
                {"name": p.name, "type": p.annotation, "required": p.required, "default": None if p.required else p.default}
                for p in parameters
            ]
            row["shown_arguments"] = ", ".join(p.describe() for p in parameters)
            rows.append(row)
        if as_json:
            typer.echo(json.dumps([{k: v for k, v in row.items() if k != "shown_arguments"} for row in rows],
                                  indent=2, default=str))
            return
        table = Table(title="Registered models (bench run --model NAME [--model-args k=v,...])", title_justify="left")
        for header in ("name", "source", "description", "weights (--checkpoint)", "--model-args", "run options"):
            table.add_column(header, overflow="fold")
        for row in rows:
            args = row["shown_arguments"] or ("–" if "error" not in row else f"cannot load: {row['error']}")
            options = ", ".join(f"--{name}" for name in row.get("run_options", [])) or "–"
            tags = row.get("weights", [])
            weights = ", ".join([f"{tags[0]} (default)", *tags[1:]]) if tags else "–"
            table.add_row(row["name"], row["source"], row["description"], weights, args, options)
        Console().print(table)
