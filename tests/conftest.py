"""Shared test fixtures.

`shared_dir` is the project's `../shared` folder (present in CI beside the checkout, absent in a
user's clone): tests that need it skip with a clear reason when it is missing.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
TEST_DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} is absent: this test needs the project's shared/ folder beside the checkout")
    return SHARED_DIR


@pytest.fixture()
def cli():
    """Run `bench ARGS...` in-process; returns the click Result (exit_code, stdout, stderr)."""
    from catseg_bench.cli import app

    runner = CliRunner()

    def invoke(*args: str, **kwargs):
        return runner.invoke(app, [str(a) for a in args], **kwargs)

    return invoke


def kill_once_progress_is_saved(proc, state: Path, timeout: float = 300) -> int:
    """SIGKILL a running `bench` process as soon as it has saved progress to `state`; returns how
    many images the saved state holds."""
    deadline = time.monotonic() + timeout
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state.exists(), "the run finished or stalled before it saved any progress"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with np.load(state) as saved:
        return int(saved["done"])
