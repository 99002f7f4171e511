"""The `bench` command line: a thin typer layer; every command lives in `catseg_bench.commands`."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from catseg_bench import commands

app = typer.Typer(
    name="bench",
    help="MESS benchmark harness for CAT-Seg: datasets, inference, scoring and Table 1.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # errors print as one plain line: "Error: <message>"
)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)


_register_commands()


def main() -> None:
    app()
