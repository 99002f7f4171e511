"""The `bench` command line: a thin typer layer; every command lives in `catseg_bench.commands`.

The library raises plain exceptions; this module alone turns the ones a user can fix into the
one-line ``Error: <message>`` and exit status 1 (typer's own usage errors keep their form).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
from pathlib import PurePath

import typer
from typer.core import TyperGroup

from catseg_bench import commands
from catseg_bench.errors import BenchError
from model.common.files import user_path

try:  # typer >= 0.26 runs on a vendored copy of click and catches only that copy's exceptions
    from typer._click.exceptions import ClickException
except ImportError:
    from click import ClickException

# Library exceptions whose message is meant for the user, by (module, class). A module that was never
# imported cannot have raised one, so they are looked up in `sys.modules` instead of imported here
# (importing `model.checkpoint` would load torch for every `bench --help`).
USER_ERRORS = (
    ("model.checkpoint", "CheckpointError"),
    ("model.common.device", "DeviceError"),
    ("model.common.download", "DownloadError"),
    ("model.training.data", "TrainingDataError"),
    ("model.training.loop", "TrainingError"),
    ("model.training.state", "CheckpointMismatch"),
)


def user_error_types() -> tuple[type[Exception], ...]:
    loaded = (getattr(sys.modules[module], name) for module, name in USER_ERRORS if module in sys.modules)
    return (BenchError, *loaded)


def one_line(err: Exception) -> str:
    return " ".join(str(err).split())


class BenchGroup(TyperGroup):
    """Runs a command and reports a library error as click does its own: ``Error: <one line>``, status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as err:
            if isinstance(err, user_error_types()):
                raise ClickException(one_line(err)) from None
            raise


app = typer.Typer(
    name="bench",
    cls=BenchGroup,
    help="MESS benchmark harness for CAT-Seg: datasets, inference, scoring and Table 1.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # errors print as one plain line: "Error: <message>"
)


def _expanded(value):
    """A path option's value with `~` and `$VARS` expanded (`user_path`); other values as they are."""
    if isinstance(value, PurePath):
        return user_path(value)
    if isinstance(value, (list, tuple)) and any(isinstance(item, PurePath) for item in value):
        return type(value)(_expanded(item) for item in value)
    return value


def expanding_paths(command):
    """`command` with every path argument expanded, as a shell does for a bare word but not for
    ``--output=~/x``. Typer reads the signature through ``functools.wraps``."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        return command(*map(_expanded, args), **{name: _expanded(value) for name, value in kwargs.items()})

    return run


def _expand_path_options(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        info.callback = expanding_paths(info.callback)
    for group in typer_app.registered_groups:
        _expand_path_options(group.typer_instance)


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(app)
    _expand_path_options(app)


_register_commands()


def main() -> None:
    app()
