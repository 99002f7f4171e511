"""DataLoader workers that die with the process that started them.

When `bench run` is killed with SIGKILL, PyTorch's DataLoader cannot shut its worker processes
down: they would stay in a futex wait, holding hundreds of MB each, until killed by hand. On
Linux, :class:`DieWithParent` (a ``worker_init_fn``) asks the kernel to send each worker SIGKILL
when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and exits at once if the parent is already
gone. On other systems it does nothing (PyTorch's own watchdog stops workers there, more slowly).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _prctl():
    """libc's prctl, or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    return getattr(libc, "prctl", None)


class DieWithParent:
    """A picklable ``worker_init_fn``: the worker is killed when the process that built it dies."""

    def __init__(self):
        self.parent_pid = os.getpid()

    def __call__(self, worker_id: int) -> None:
        prctl = _prctl()
        if prctl is None:
            return
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != self.parent_pid:  # the parent died before the request took effect
            os._exit(1)
