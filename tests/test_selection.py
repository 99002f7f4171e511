"""The one dataset-selection grammar: `all`, `domain:NAME`, dataset and eval-set names."""

from __future__ import annotations

import pytest

from catseg_bench.errors import BenchError
from catseg_bench.selection import select_datasets, select_eval_sets
from catseg_bench.specs import load_all


@pytest.fixture(scope="module")
def mess():
    specs, benchmarks = load_all()
    return specs, benchmarks["mess"]


def test_datasets_are_named_once_in_selection_order(mess):
    specs, benchmark = mess
    chosen = select_datasets(["paxray4.lungs", "cwfid", "paxray4"], specs, benchmark)
    assert [s.name for s in chosen] == ["paxray4", "cwfid"]


def test_all_and_domain_select_whole_datasets(mess):
    specs, benchmark = mess
    assert [s.name for s in select_datasets(["all"], specs, benchmark)] == list(benchmark.members)
    medical = next(d for d in benchmark.domains if "paxray4" in d.datasets)
    assert [s.name for s in select_datasets([f"domain:{medical.name}"], specs, benchmark)] == list(medical.datasets)


def test_an_unknown_subset_names_the_subsets_there_are(mess):
    specs, benchmark = mess
    with pytest.raises(BenchError, match="no such subset; paxray4 has: paxray4.lungs, "):
        select_eval_sets("paxray4.ribs", specs, benchmark)


def test_prepare_and_score_use_the_grammar(cli, tmp_path):
    prepare = cli("prepare", "domain:nowhere", "--data-root", tmp_path)
    assert prepare.exit_code == 1 and "no such domain" in prepare.output
    score = cli("score", "--dataset", "cwfid,paxray4", "--pred", tmp_path, "--output", tmp_path / "o")
    assert score.exit_code == 1 and "selects several datasets" in score.output


def solar_suite(directory):
    """A user's dataset spec and a benchmark file naming it: the suite `energy`."""
    from spec_texts import write_user_spec

    write_user_spec(directory)
    (directory / "energy.toml").write_text(
        'name = "energy"\ndisplay_name = "Energy"\naggregation = "mean"\n\n'
        '[[domains]]\nname = "Energy"\ndatasets = ["solar"]\n', encoding="utf-8")
    return directory


def test_suite_selects_a_benchmarks_datasets_and_all_stays_mess(tmp_path):
    specs, benchmarks = load_all([solar_suite(tmp_path)])
    mess = benchmarks["mess"]
    by_suite = select_eval_sets("suite:mess", specs, mess, benchmarks)
    assert by_suite == select_eval_sets("all", specs, mess, benchmarks)
    assert [es.name for es in by_suite][:2] == ["bdd100k", "dark_zurich"] and len(by_suite) == 21 + 4
    # a user's benchmark file in --specs is a suite too; `all` does not grow with it
    assert [es.name for es in select_eval_sets("suite:energy", specs, mess, benchmarks)] == ["solar"]
    assert "solar" not in {es.spec.name for es in select_eval_sets("all", specs, mess, benchmarks)}
    assert [s.name for s in select_datasets(["suite:energy"], specs, mess, benchmarks)] == ["solar"]


def test_an_unknown_suite_is_one_line_naming_the_known_ones(tmp_path):
    specs, benchmarks = load_all([solar_suite(tmp_path)])
    with pytest.raises(BenchError) as err:
        select_eval_sets("suite:outdoor", specs, benchmarks["mess"], benchmarks)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("no suite named 'outdoor'; known suites: ") and "energy" in message and "mess" in message


def test_every_command_with_datasets_speaks_suite(cli, tmp_path):
    specs_dir = solar_suite(tmp_path / "specs")
    unknown = [
        cli("run", "--model", "random", "--datasets", "suite:outdoor", "--data-root", tmp_path, "--output", tmp_path / "o"),
        cli("prepare", "suite:outdoor", "--data-root", tmp_path),
        cli("datasets", "check", "suite:outdoor", "--data-root", tmp_path),
        cli("datasets", "synth", "suite:outdoor", "--out", tmp_path / "s"),
    ]
    for res in unknown:
        assert res.exit_code == 1 and "no suite named 'outdoor'; known suites: " in res.output, res.output
    synth = cli("datasets", "synth", "suite:energy", "--out", tmp_path / "s", "--specs", specs_dir, "--images", "2")
    assert synth.exit_code == 0 and "for 1 evaluation set(s)" in synth.output, synth.output
