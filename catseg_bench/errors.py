"""The one exception type for user-facing problems.

It subclasses the ClickException that typer's command runner catches, so `bench` prints it as one
line, ``Error: <message>``, and exits with status 1 without a traceback.
"""

try:  # typer >= 0.26 runs on a vendored copy of click and catches only that copy's exceptions
    from typer._click.exceptions import ClickException
except ImportError:
    from click import ClickException


class BenchError(ClickException):
    """A problem the user can fix: the message names the file (or option) and the fix, on one line."""
