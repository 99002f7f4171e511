"""One module per `bench` command group.

Each module defines ``register(app: typer.Typer) -> None`` and is picked up by
:mod:`catseg_bench.cli`, so adding a command never touches a shared file.
"""
