"""One writer per output folder: `bench run` holds ``<output>/.bench-run.lock`` while it writes there.

The lock is an advisory ``flock`` on that file, so the operating system releases it when its holder
dies, however it dies (SIGKILL included): a lock file left by a dead run is simply taken over. The
file records the holder's pid, host and start time, so a second run on the same folder exits at
once with one line naming the running process, instead of computing everything a second time and
racing the first one's writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from catseg_bench.errors import BenchError
from catseg_bench.preflight import require_writable_folder

LOCK_NAME = ".bench-run.lock"


class OutputLock:
    """``with OutputLock(folder):`` — exclusive use of `folder` by this process (a BenchError if taken)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._handle = None

    def acquire(self) -> "OutputLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise BenchError(
                f"{self.folder}: another bench run ({holder}) is writing results here; wait for it to finish, "
                "or give this run another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }))
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the flock
            self._handle = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def exclusive_output(folder: Path | str, is_main: bool = True):
    """The run's hold on its output folder: checked writable and locked by the main process (the
    other torchrun processes write nothing there but through it), released when the run ends.
    A folder made here is removed again if the run fails before writing anything into it."""
    if not is_main:
        yield
        return
    folder = Path(folder)
    created = not folder.exists()
    require_writable_folder(folder)
    try:
        with OutputLock(folder):
            yield
    except BaseException:
        if created and {p.name for p in folder.iterdir()} <= {LOCK_NAME}:
            # A run that failed before writing anything (say, its model would not build) leaves no folder.
            (folder / LOCK_NAME).unlink(missing_ok=True)
            folder.rmdir()
        raise


def _describe(text: str) -> str:
    try:
        record = json.loads(text)
        return f"pid {record['pid']} on {record['host']}, started {record['started']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not yet recorded its pid"
