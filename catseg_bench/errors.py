"""The one exception type for user-facing problems.

It subclasses :class:`click.ClickException`, so the CLI (and typer's test runner) prints it as one
line, ``Error: <message>``, and exits with status 1 without a traceback.
"""

import click


class BenchError(click.ClickException):
    """A problem the user can fix: the message names the file (or option) and the fix, on one line."""
