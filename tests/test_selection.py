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
