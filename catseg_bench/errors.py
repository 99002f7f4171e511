"""The one exception type for problems a user can fix.

A plain exception: the library raises it, and only `catseg_bench.cli` turns it into the one-line
``Error: <message>`` and exit status 1 of the `bench` command.
"""


class BenchError(Exception):
    """A problem the user can fix: the message names the file (or option) and the fix, on one line."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
