"""The wheel: every package of the checkout in it, and the published tables beside the code."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _listed() -> set[str]:
    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_folder_of_code_or_specs_is_a_listed_package():
    found = {".".join(path.parent.relative_to(ROOT).parts)
             for top in ("catseg_bench", "model", "dataset_specs")
             for pattern in ("*.py", "*.toml") for path in (ROOT / top).rglob(pattern)
             if "__pycache__" not in path.parts}
    assert found | {"catseg_bench.published"} == _listed()


@pytest.mark.slow
def test_the_wheel_carries_the_published_tables_and_reads_them_installed(tmp_path):
    pytest.importorskip("build")
    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside pyproject.toml
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("catseg_bench", "model", "dataset_specs", "results/published"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path / "dist",
                            source], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    assert {"catseg_bench/published/seed_table1.json", "catseg_bench/published/mess2023_leaderboard.json",
            "dataset_specs/cwfid.toml", "dataset_specs/training/coco_stuff_171.toml"} <= names
    read = subprocess.run([sys.executable, "-c", "from catseg_bench.results import load_published, published_dir; "
                           "print(published_dir()); print(load_published('seed').rows[8].model)"],
                          capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "installed")},
                          timeout=120)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split() == [str(tmp_path / "installed" / "catseg_bench" / "published"), "CAT-Seg-B"]
