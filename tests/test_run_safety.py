"""A run's safety rails: DataLoader workers die with their parent, one writer per output folder,
and checks made before any work (writable output, numeric settings)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from catseg_bench.errors import BenchError
from catseg_bench.lock import LOCK_NAME, OutputLock
from catseg_bench.preflight import os_error_line, require_writable_folder, seconds_from_env

REPO = Path(__file__).resolve().parents[1]

_LOADER_SCRIPT = textwrap.dedent("""
    import os, sys, time
    from torch.utils.data import DataLoader, Dataset
    from catseg_bench.worker_exit import DieWithParent

    class Stuck(Dataset):  # a worker busy in one item (a huge image, a hung decoder) never checks on its parent
        def __len__(self):
            return 100
        def __getitem__(self, index):
            print(os.getpid(), flush=True)
            time.sleep(120)
            return index

    init = DieWithParent() if sys.argv[1] == "fixed" else None
    for item in DataLoader(Stuck(), batch_size=None, num_workers=2, worker_init_fn=init):
        pass
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _workers_after_sigkill(tmp_path, mode: str, wait: float) -> list[int]:
    script = tmp_path / "loader.py"
    script.write_text(_LOADER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True, env=env)
    workers = [int(parent.stdout.readline()), int(parent.stdout.readline())]
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # never leave the reproduction's orphans behind
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG (and /proc) are Linux only")
def test_dataloader_workers_die_with_a_sigkilled_parent(tmp_path):
    assert len(_workers_after_sigkill(tmp_path, "plain", wait=3.0)) == 2  # orphans, reproduced
    assert _workers_after_sigkill(tmp_path, "fixed", wait=5.0) == []


# ------------------------------------------------------------------------------------------ one writer


def test_a_second_writer_is_refused_naming_the_first_and_a_dead_one_s_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from catseg_bench.lock import OutputLock; "
         "lock = OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BenchError, match=rf"another bench run \(pid {holder.pid} on .*\) is writing results here"):
            OutputLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid  # the dead run's lock file stays
    with OutputLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()  # and is taken over


# ------------------------------------------------------------------------------------------ before any work


def test_an_unwritable_output_folder_is_refused_with_its_path_and_a_fix(tmp_path, monkeypatch):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    with pytest.raises(BenchError, match=rf"--output folder not writable: {a_file}.*: Not a directory"):
        require_writable_folder(a_file / "out")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", kwargs.get("dir"))

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(BenchError) as info:
        require_writable_folder(tmp_path / "out")
    assert info.value.message == (
        f"--output folder not writable: {tmp_path / 'out'}: Read-only file system; "
        "the file system is read-only: choose another folder (--output)"
    )


def test_os_errors_name_the_path_and_the_fix():
    full = OSError(errno.ENOSPC, "No space left on device", "/data/out/m/x.json")
    assert os_error_line(full) == "/data/out/m/x.json: No space left on device; free some space or choose another folder (--output)"


@pytest.mark.parametrize("value, expected", [("", 1.0), ("0", 0.0), ("2.5", 2.5), ("abc", None), ("-1", None), ("nan", None)])
def test_numeric_settings_from_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("CATSEG_BENCH_PROGRESS_SECONDS", value)
    if expected is None:
        with pytest.raises(BenchError, match=r"\$CATSEG_BENCH_PROGRESS_SECONDS=.* is not a number of seconds"):
            seconds_from_env("CATSEG_BENCH_PROGRESS_SECONDS", 1.0)
    else:
        assert seconds_from_env("CATSEG_BENCH_PROGRESS_SECONDS", 1.0) == expected
