"""Every path a user gives expands `~` and `$VARS`, on the command line and in the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from catseg_bench import api
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite
from model.common.files import user_path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("BENCH_TEST_PLACE", "place")
    monkeypatch.chdir(tmp_path)
    write_suite(home / "suite", [load_specs()["cwfid"]], images_per_set=1, seed=1)
    return home


def test_user_path_expands_home_and_variables(home):
    assert user_path("~/x") == home / "x"
    assert user_path("$BENCH_TEST_PLACE/y") == Path("place/y")
    assert user_path(Path("plain/z")) == Path("plain/z")


def test_cli_path_options_written_with_equals_expand_home_and_variables(cli, home, tmp_path):
    ran = cli("run", "--model", "random", "--datasets", "cwfid", "--data-root=~/suite", "--output=~/x",
              "--published", "none")
    assert ran.exit_code == 0, ran.output
    assert (home / "x" / "random" / "cwfid.json").is_file()
    assert not (tmp_path / "~").exists()

    table = cli("table", "~/x", "--published", "none", "--format", "csv")
    assert table.exit_code == 0 and table.output.startswith("model,"), table.output
    report = cli("report", "~/x", "--out=$BENCH_TEST_PLACE/r.html", "--published", "none", "--bootstrap", "10")
    assert report.exit_code == 0, report.output
    assert (tmp_path / "place" / "r.html").is_file() and not (tmp_path / "$BENCH_TEST_PLACE").exists()


def test_api_path_arguments_expand_home(home, tmp_path):
    report = api.evaluate("random", "cwfid", data_root="~/suite", output="~/api")
    assert report.ok and report.output == home / "api"
    assert (home / "api" / "random" / "cwfid.json").is_file() and not (tmp_path / "~").exists()
    assert set(api.load_results(["~/api"])["model"]) == {"random"}
    assert "CWFID" in api.make_table(["~/api"], published=None, fmt="csv")
