"""A run's safety rails: DataLoader workers die with their parent, one writer per output folder,
and checks made before any work (writable output, numeric settings)."""

from __future__ import annotations

import contextlib
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
            os.write(1, f"{os.getpid()}\\n".encode())  # one write: the two workers never interleave
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


@contextlib.contextmanager
def lock_held_by_another_process(folder: Path):
    """A process holding `folder`'s run lock (as a running `bench run` does); SIGKILLed at the end."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from catseg_bench.lock import OutputLock; "
         "lock = OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_second_writer_is_refused_naming_the_first_and_a_dead_one_s_lock_is_taken_over(tmp_path):
    with lock_held_by_another_process(tmp_path) as holder:
        with pytest.raises(BenchError, match=rf"another bench run \(pid {holder.pid} on .*\) is writing results here"):
            OutputLock(tmp_path).acquire()
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


# ------------------------------------------------------------------------------------------ bench run


@pytest.fixture()
def no_model(monkeypatch):
    """Building a model fails the test: what is checked must be refused before."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the options were checked")

    monkeypatch.setattr("catseg_bench.registry.build_segmenter", refuse)


def _run(cli, *args):
    return cli("run", "--model", "catseg-tiny", "--device", "cpu", "--datasets", "cwfid", *args)


def _last_line(result) -> str:
    return [line for line in result.output.splitlines() if line.strip()][-1]


def test_bad_options_and_an_unwritable_output_are_refused_before_any_model_is_built(cli, tmp_path, monkeypatch, no_model):
    a_file = tmp_path / "file"
    a_file.write_text("")
    result = _run(cli, "--data-root", tmp_path, "--output", a_file / "out")
    assert result.exit_code == 1 and f"--output folder not writable: {a_file}" in result.output
    result = _run(cli, "--data-root", tmp_path, "--output", tmp_path / "out", "--published", "foo")
    assert result.exit_code == 1 and "no published table named 'foo'" in result.output
    monkeypatch.setenv("CATSEG_BENCH_PROGRESS_SECONDS", "soon")
    result = _run(cli, "--data-root", tmp_path, "--output", tmp_path / "out")
    assert result.exit_code == 1 and "$CATSEG_BENCH_PROGRESS_SECONDS='soon' is not a number of seconds" in result.output


def test_a_second_run_on_the_same_output_exits_at_once_naming_the_first(cli, tmp_path, no_model):
    with lock_held_by_another_process(tmp_path / "out") as holder:
        result = _run(cli, "--data-root", tmp_path, "--output", tmp_path / "out")
    assert result.exit_code == 1
    assert f"another bench run (pid {holder.pid} on" in result.output and "give this run another --output" in result.output


def test_ctrl_c_says_in_one_line_that_the_run_can_be_resumed(cli, tmp_path, monkeypatch):
    from catseg_bench.runner import BenchmarkRunner
    from catseg_bench.specs import load_specs
    from catseg_bench.synth import write_suite

    write_suite(tmp_path / "data", [load_specs()["cwfid"]], images_per_set=1)

    def interrupted(self, eval_sets):
        raise KeyboardInterrupt

    monkeypatch.setattr(BenchmarkRunner, "run", interrupted)
    result = cli("run", "--model", "random", "--datasets", "cwfid", "--data-root", tmp_path / "data", "--output", tmp_path / "out")
    assert result.exit_code == 130
    assert " ".join(result.output.split()).endswith(
        f"interrupted: finished results are kept in {tmp_path / 'out'}; run the same command again to resume "
        "(the set in progress continues from its last saved image)")
    with OutputLock(tmp_path / "out"):  # the lock went with the run
        pass


def test_when_every_set_fails_the_failure_summary_is_the_last_line(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("run", "--model", "random", "--datasets", "cwfid,deepcrack", "--data-root", tmp_path / "empty",
                 "--output", tmp_path / "out", "--published", "none")
    assert result.exit_code == 1
    assert _last_line(result).startswith("Error: 2 of 2 evaluation sets failed: cwfid, deepcrack")


def test_run_fails_a_set_of_unconverted_masks_and_shows_a_new_domain_after_mess(cli, tmp_path):
    import numpy as np
    from PIL import Image

    from catseg_bench.specs import load_specs
    from catseg_bench.synth import write_suite
    from spec_texts import write_user_spec

    spec_dir = tmp_path / "specs"
    write_user_spec(spec_dir)
    specs = load_specs([spec_dir])
    write_suite(tmp_path / "data", [specs["deepcrack"], specs["solar"]], images_per_set=2)
    for path in (tmp_path / "data" / specs["deepcrack"].eval_sets()[0].label_dir).glob("*.png"):
        label = np.array(Image.open(path))
        Image.fromarray(np.where(label == 1, 255, label).astype(np.uint8)).save(path)  # 0/255 masks
    result = cli("run", "--model", "random", "--datasets", "deepcrack,solar", "--data-root", tmp_path / "data",
                 "--output", tmp_path / "out", "--published", "none", "--specs", spec_dir)
    assert result.exit_code == 1  # 0/255 labels fail their set; the other goes on
    output = " ".join(result.output.split())
    assert "failed deepcrack: deepcrack: labels hold only class 0 ('concrete or asphalt') and ignore (255)" in output
    assert "Energy" in output and "Solar Panels" in output
