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
        from rich.text import Text

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
                row["weights_licences"] = entry.weights_licences()
            except BenchError as err:  # a broken plugin is listed with its error, not hidden
                row["error"] = str(err)
                parameters = []
            row["arguments"] = [
                {"name": p.name, "type": p.annotation, "required": p.required, "default": None if p.required else p.default}
                for p in parameters
            ]
            row["parameters"] = parameters
            rows.append(row)
        if as_json:
            typer.echo(json.dumps([{k: v for k, v in row.items() if k != "parameters"} for row in rows],
                                  indent=2, default=str))
            return
        # Three columns, so that 80 characters hold them: names and arguments are never broken inside.
        table = Table(title="Registered models (bench run --model NAME [--model-args k=v,...])", title_justify="left",
                      show_lines=True)
        table.add_column("name", no_wrap=True)
        table.add_column("description")
        longest = max((len(p.describe()) for entry in rows for p in entry.get("parameters", [])), default=1)
        table.add_column("--model-args", min_width=min(longest, 30))
        for row in rows:
            args = "\n".join(p.describe() for p in row.pop("parameters")) or (
                "–" if "error" not in row else f"cannot load: {row['error']}")
            options = ", ".join(f"--{name}" for name in row.get("run_options", [])) or "–"
            tags, licences = row.get("weights", []), row.get("weights_licences", {})
            notes = [[*(["default"] if i == 0 else []), *([licences[tag]] if tag in licences else [])]
                     for i, tag in enumerate(tags)]
            weights = ", ".join(f"{tag} ({', '.join(n)})" if n else tag for tag, n in zip(tags, notes)) or "–"
            about = Text.assemble(row["description"], "\n", ("source: ", "dim"), row["source"], "\n",
                                  ("weights (--checkpoint): ", "dim"), weights, "\n", ("run options: ", "dim"), options)
            table.add_row(Text(row["name"]), about, Text(args))
        Console().print(table, highlight=False)
