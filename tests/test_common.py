"""model.common: atomic writes with the umask's modes, imports that stay light, and the CLI's one-line errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from model.common.files import atomic_write, atomic_write_bytes, atomic_write_json, sha256_file

REPO_ROOT = Path(__file__).resolve().parents[1]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_the_umask_gives(tmp_path, umask, mask, expected):
    umask(mask)
    atomic_write_bytes(tmp_path / "a.bin", b"abc")
    atomic_write_json(tmp_path / "sub" / "b.json", {"x": 1})
    atomic_write(tmp_path / "c.txt", lambda tmp: Path(tmp).write_text("written by a callback"))
    assert [_mode(tmp_path / name) for name in ("a.bin", "sub/b.json", "c.txt")] == [expected] * 3
    assert json.loads((tmp_path / "sub" / "b.json").read_text()) == {"x": 1}
    assert (tmp_path / "c.txt").read_text() == "written by a callback"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "c.txt", "sub"]  # no temp file left


def test_overwriting_replaces_a_private_file_with_a_readable_one(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "result.json"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write_json(target, {"new": True})
    assert _mode(target) == 0o644 and json.loads(target.read_text()) == {"new": True}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"old")

    def half_write(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_write)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == [target.name]


def test_training_checkpoints_are_readable_by_others(tmp_path, umask):
    import torch

    from model.training.state import atomic_torch_save

    umask(0o022)
    atomic_torch_save({"step": torch.tensor(3)}, tmp_path / "step.pt")
    assert _mode(tmp_path / "step.pt") == 0o644
    assert torch.load(tmp_path / "step.pt")["step"].item() == 3


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    data = os.urandom(3 << 20)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def _loaded_after(code: str) -> set[str]:
    """Which of torch/typer/click a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in ('torch', 'typer', 'click') if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_shared_file_and_download_helpers_load_no_torch():
    assert _loaded_after("import model.common.files, model.common.download") == set()


def test_specs_load_neither_typer_nor_torch():
    assert _loaded_after("import catseg_bench.specs, catseg_bench.selection") == set()


def test_no_library_module_loads_typer():
    code = (
        "import importlib, pkgutil, catseg_bench, model\n"
        "for pkg in (catseg_bench, model):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if info.name.startswith('catseg_bench.commands') or info.name in ('catseg_bench.cli', 'catseg_bench.__main__'):\n"
        "            continue\n"
        "        importlib.import_module(info.name)\n"
    )
    assert not {"typer", "click"} & _loaded_after(code)


def test_bench_help_loads_no_torch():
    assert "torch" not in _loaded_after("from catseg_bench.cli import app")


def test_a_library_error_is_one_error_line_and_status_1(cli):
    result = cli("run", "--device", "tpu", "--datasets", "cwfid")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error: ")] == [
        "Error: --device tpu: choose auto, cpu or cuda[:N]"
    ]


def test_python_m_catseg_bench_prints_the_same_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run([sys.executable, "-m", "catseg_bench", "prepare", "paxray4.ribs", "--data-root", str(tmp_path)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "Error: dataset 'paxray4.ribs': no such subset; paxray4 has: paxray4.lungs, paxray4.mediastinum, "
        "paxray4.bones, paxray4.diaphragm"
    ]


def test_world_of_one_process_shards_everything_to_rank_0(monkeypatch):
    import torch

    from model.common.world import World, any_across, init_world, sum_across

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    world = init_world(torch.device("cpu"))
    assert world == World() and world.is_main and world.shard(3) == [0, 1, 2]
    assert World(rank=1, size=3).shard(8) == [1, 4, 7]
    assert sum_across(world, torch.tensor([2])).item() == 2 and any_across(world, True, torch.device("cpu"))


def test_missing_prepare_extras_name_the_install_line(monkeypatch, tmp_path):
    from catseg_bench.errors import BenchError
    from catseg_bench.prepare.extract import _libarchive
    from catseg_bench.prepare.recipes import read_sentinel2

    monkeypatch.setitem(sys.modules, "tifffile", None)
    monkeypatch.setitem(sys.modules, "libarchive", None)
    with pytest.raises(BenchError, match=r'needs tifffile: pip install libarchive-c tifffile scipy pycocotools \(the "prepare" extra; from a clone: pip install -e "\.\[prepare\]"\)'):
        read_sentinel2(tmp_path / "x.tif")
    with pytest.raises(BenchError, match=r'needs libarchive-c: pip install libarchive-c tifffile scipy pycocotools \(the "prepare" extra'):
        _libarchive()
