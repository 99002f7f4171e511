"""Checks made before any work starts, so a run fails in its first second, not after its first set.

- :func:`require_writable_folder`: the output folder exists (or can be made) and takes a file;
- :func:`seconds_from_env`: a numeric environment setting, refused in one line when it is not a number;
- :func:`os_error_line`: an ``OSError`` as one line naming the path and what to do about it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from catseg_bench.errors import BenchError

_FIXES = {
    errno.ENOSPC: "free some space or choose another folder",
    errno.EDQUOT: "free some space (disk quota exceeded) or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EACCES: "fix its permissions or choose another folder",
    errno.EPERM: "fix its permissions or choose another folder",
}


def os_error_line(err: OSError, path: Path | str | None = None, option: str = "--output") -> str:
    """``<path>: <reason>; <fix>`` for an OSError (the path from the error, else `path`)."""
    where = err.filename if err.filename is not None else path
    reason = err.strerror or str(err)
    fix = _FIXES.get(err.errno, "check the folder")
    if fix.endswith("another folder"):
        fix += f" ({option})"
    return f"{where}: {reason}; {fix}"


def require_writable_folder(folder: Path | str, option: str = "--output") -> Path:
    """`folder`, created if needed, once a file could be written in it; else a one-line BenchError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".bench-write-test-")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise BenchError(f"{option} folder not writable: {os_error_line(err, folder, option)}") from None
    return folder


def seconds_from_env(name: str, default: float) -> float:
    """A number of seconds (>= 0) from environment variable `name`, `default` when unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise BenchError(f"${name}={value!r} is not a number of seconds >= 0; set it like {name}=1, or unset it")
    return seconds
