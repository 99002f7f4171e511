"""Aggregation (PAXRay-4, domains, Mean), published tables, and `bench table` output."""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest

from catseg_bench.aggregate import aggregate, aggregate_results
from catseg_bench.errors import BenchError
from catseg_bench.results import load_published, load_results, write_result
from catseg_bench.specs import load_benchmark, load_specs
from catseg_bench.tables import build_table, match_key, render_latex

from conftest import TEST_DATA

GOLDEN = TEST_DATA / "table_golden.md"


@pytest.fixture(scope="module")
def specs():
    return load_specs()


@pytest.fixture(scope="module")
def benchmark():
    return load_benchmark()


def full_scores(specs, benchmark, value=10.0):
    scores = {}
    for name in benchmark.members:
        for eval_set in specs[name].eval_sets():
            scores[eval_set.name] = value
    return scores


def test_paxray4_is_the_mean_of_its_four_subsets(specs, benchmark):
    scores = full_scores(specs, benchmark)
    scores.update({"paxray4.lungs": 80.0, "paxray4.mediastinum": 60.0, "paxray4.bones": 40.0, "paxray4.diaphragm": 20.0})
    row = aggregate(scores, benchmark, specs)
    assert row.datasets["paxray4"] == pytest.approx(50.0)
    assert row.domains["Medical Sciences"] == pytest.approx((10 + 10 + 10 + 50) / 4)
    assert row.mean == pytest.approx((21 * 10 + 50) / 22)
    assert row.complete


def test_missing_dataset_or_subset_makes_domain_and_mean_incomplete(specs, benchmark):
    scores = full_scores(specs, benchmark)
    del scores["paxray4.bones"], scores["suim"]
    row = aggregate(scores, benchmark, specs)
    assert row.missing == ("paxray4.bones", "suim")
    assert row.datasets["paxray4"] is None and row.datasets["suim"] is None
    assert row.domains["Medical Sciences"] is None and row.domains["Agriculture and Biology"] is None
    assert row.domains["General"] == pytest.approx(10.0)
    assert row.mean is None  # not a mean over the 20 others


def test_mean_is_over_datasets_not_domains(specs, benchmark):
    catseg_l = next(r for r in load_published("mess2023").rows if r.model == "CAT-Seg-L")
    row = aggregate(catseg_l.scores, benchmark, specs)
    assert round(row.mean, 2) == 38.14 == catseg_l.reported["Mean"]
    assert round(sum(row.domains.values()) / 5, 2) == 37.67  # the mean of domain means would be wrong


def test_published_tables_are_complete_and_ordered(specs, benchmark):
    seed = load_published("seed")
    assert [r.model for r in seed.rows] == [
        "Random (LB)", "Best sup. (UB)", "ZSSeg-B", "ZegFormer-B", "X-Decoder-T", "SAN-B", "OpenSeeD-T",
        "Gr.-SAM-B", "CAT-Seg-B", "OVSeg-L", "SAN-L", "Gr.-SAM-L", "CAT-Seg-L",
    ]
    mess = load_published("mess2023")
    assert len(mess.rows) == 15
    assert {r.weights for r in mess.rows if r.model.startswith("CAT-Seg")} == {"2023 v1"}
    assert {r.weights for r in seed.rows if r.model.startswith("CAT-Seg")} == {"CVPR 2024"}
    for table in (seed, mess):
        for row in table.rows:
            assert list(row.scores) == list(benchmark.members), row.model
            assert all(isinstance(v, float) for v in row.scores.values()), row.model


def test_published_notes_cite_the_paper_and_the_leaderboard_not_files_a_clone_lacks(cli):
    for name, cited in [("seed", "Cho et al., CAT-Seg: Cost Aggregation for Open-Vocabulary Semantic Segmentation "
                                 "(CVPR 2024), supplementary material, Table 1"),
                        ("mess2023", "github.com/blumenstiel/mess-benchmark")]:
        printed = cli("table", "--published", name, "--format", "markdown")
        assert printed.exit_code == 0 and cited in printed.stdout
        assert "shared/" not in printed.stdout


def csv_rows(res):
    assert res.exit_code == 0, res.output
    return list(csv.DictReader(io.StringIO(res.stdout)))


def test_csv_reproduces_the_seed_mean_column(cli, specs):
    rows = csv_rows(cli("table", "--published", "seed", "--format", "csv"))
    seed = load_published("seed")
    assert [r["model"] for r in rows] == [p.label for p in seed.rows]
    header = list(rows[0])
    assert header[0] == "model" and header[-1] == "Mean" and len(header) == 1 + 22 + 5 + 1
    assert header[1:23] == [specs[n].display_name for n in load_benchmark().members]
    assert header[23:28] == ["General", "Earth Monitoring", "Medical Sciences", "Engineering", "Agriculture and Biology"]
    for row, published in zip(rows, seed.rows):
        assert abs(float(row["Mean"]) - published.reported["Mean"]) <= 0.01 + 1e-9, published.model


def test_csv_reproduces_the_2023_leaderboard_domain_means(cli):
    rows = csv_rows(cli("table", "--published", "mess2023", "--format", "csv"))
    mess = load_published("mess2023")
    off = []
    for row, published in zip(rows, mess.rows):
        for column, value in published.reported.items():
            if abs(float(row[column]) - value) > 0.01 + 1e-9:
                off.append((published.model, column))
    # The one inconsistency of the source itself (README of results/published): its domain table's
    # Best supervised General/Mean disagree with its own per-dataset table.
    assert off == [("Best supervised", "General"), ("Best supervised", "Mean")]
    assert rows[1]["model"] == "Best supervised" and rows[1]["Mean"] == "70.99"  # its per-dataset table's Mean


def write_model(out, specs, benchmark, model_id, *, skip=(), partial=(), untrained=False):
    """Result files with deterministic synthetic confusion matrices, one per eval set."""
    index = 0
    for name in benchmark.members:
        for eval_set in specs[name].eval_sets():
            index += 1
            if eval_set.name in skip:
                continue
            k = eval_set.num_classes
            conf = np.ones((k + 1, k + 1), dtype=np.int64)
            conf[np.arange(k), np.arange(k)] = 3 * k + index
            conf[k, :] = 0
            write_result(
                out / model_id, eval_set=eval_set, model_id=model_id, checkpoint_sha256=None, settings={},
                confusion=conf, images_scored=3, partial=eval_set.name in partial, untrained=untrained,
            )


@pytest.fixture(scope="module")
def result_dirs(tmp_path_factory, specs, benchmark):
    root = tmp_path_factory.mktemp("results")
    write_model(root, specs, benchmark, "catseg-b")
    write_model(root, specs, benchmark, "my-model", skip={"cwfid", "paxray4.bones"}, partial={"dram"})
    return root


def test_golden_markdown_table(cli, result_dirs):
    res = cli("table", result_dirs, "--published", "seed", "--format", "markdown")
    assert res.exit_code == 0, res.output
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(res.stdout)
    assert res.stdout == GOLDEN.read_text()


def test_our_rows_follow_their_published_row_with_deltas(result_dirs, specs, benchmark):
    rows = aggregate_results(load_results([result_dirs]), benchmark, specs)
    table = build_table(rows, load_published("seed"), benchmark, specs)
    labels = [r.label for r in table.rows]
    at = labels.index("CAT-Seg-B [CVPR 2024 weights]")
    assert labels[at + 1 : at + 3] == ["catseg-b", "Δ vs CAT-Seg-B [CVPR 2024 weights]"]
    assert labels[-1] == "my-model"
    ours, delta = table.rows[at + 1], table.rows[at + 2]
    assert delta.values["bdd100k"] == pytest.approx(ours.values["bdd100k"] - 46.71)
    assert delta.values["Mean"] == pytest.approx(ours.values["Mean"] - (sum(load_published("seed").rows[8].scores.values()) / 22))
    mine = table.rows[-1]
    assert mine.values["cwfid"] is None and mine.values["dram"] is None and mine.values["paxray4"] is None
    assert mine.values["Mean"] is None and mine.values["General"] is None and mine.values["Engineering"] is not None
    assert any("my-model: incomplete, no score for: dram, paxray4.bones, cwfid" == n for n in table.notes)
    assert any("my-model: dram: partial (3 of 718 images), not counted" == n for n in table.notes)


def test_compare_option_and_metric_without_published_numbers(cli, result_dirs):
    res = cli("table", result_dirs, "--published", "seed", "--format", "csv", "--compare", "my-model=SAN-B")
    labels = [r["model"] for r in csv_rows(res)]
    assert labels[labels.index("SAN-B") + 1] == "my-model"
    res = cli("table", result_dirs, "--format", "markdown", "--metric", "CoI-mIoU")
    assert res.exit_code == 0 and "report mIoU, not CoI-mIoU: not shown" in res.stdout
    assert "Random (LB)" not in res.stdout and "| catseg-b |" in res.stdout


def test_latex_and_rich_render(cli, result_dirs, specs, benchmark):
    rows = aggregate_results(load_results([result_dirs]), benchmark, specs)
    latex = render_latex(build_table(rows, load_published("seed"), benchmark, specs))
    assert r"\multicolumn{7}{c}{General}" in latex and r"\textit{$\Delta$ vs CAT-Seg-B [CVPR 2024 weights]}" in latex
    assert latex.count(r"\\") == 2 + 13 + 2 + 1
    res = cli("table", result_dirs, "--published", "mess2023")
    assert res.exit_code == 0
    assert "Agri. and Biology" in res.stdout and "Δ vs CAT-Seg-B [2023 v1 weights]" in res.stdout


def test_plot_writes_a_png(cli, result_dirs, tmp_path):
    res = cli("table", result_dirs, "--published", "seed", "--format", "csv", "--plot", tmp_path / "domains.png")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "domains.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_san_rows_sit_beside_the_published_san_rows_and_untrained_ones_are_never_compared(tmp_path, specs, benchmark):
    write_model(tmp_path / "trained", specs, benchmark, "san-b")
    write_model(tmp_path / "trained", specs, benchmark, "san-l")
    rows = aggregate_results(load_results([tmp_path / "trained"]), benchmark, specs)
    labels = [r.label for r in build_table(rows, load_published("seed"), benchmark, specs).rows]
    for ours, published in (("san-b", "SAN-B"), ("san-l", "SAN-L")):
        at = labels.index(published)
        assert labels[at + 1 : at + 3] == [ours, f"Δ vs {published}"]
    kvasir = specs["kvasir_instrument"].eval_sets()[0]
    conf = np.eye(kvasir.num_classes + 1, dtype=np.int64)
    write_result(tmp_path / "untrained" / "san-b", eval_set=kvasir, model_id="san-b", checkpoint_sha256=None,
                 settings={"random_init_seed": 0}, confusion=conf, images_scored=3, untrained=True)
    rows = aggregate_results(load_results([tmp_path / "untrained"]), benchmark, specs)
    table = build_table(rows, load_published("seed"), benchmark, specs)
    assert not [r.label for r in table.rows if r.label.startswith("Δ")]
    assert "san-b (untrained)" in [r.label for r in table.rows]


def test_a_published_row_alias_places_a_model_the_loose_name_misses(tmp_path, specs, benchmark, cli):
    """seed_table1.json's "Gr.-SAM-B" row names grounded-sam-b as an alias; an untrained run is never compared."""
    assert match_key("grounded-sam-b") != match_key("Gr.-SAM-B")
    write_model(tmp_path, specs, benchmark, "grounded-sam-b")
    write_model(tmp_path, specs, benchmark, "grounded-sam-l", untrained=True)
    table = build_table(aggregate_results(load_results([tmp_path]), benchmark, specs), load_published("seed"),
                        benchmark, specs)
    labels = [r.label for r in table.rows]
    at = labels.index("Gr.-SAM-B")
    assert labels[at + 1 : at + 3] == ["grounded-sam-b", "Δ vs Gr.-SAM-B"]
    assert table.rows[at + 2].values["deepcrack"] == pytest.approx(table.rows[at + 1].values["deepcrack"] - 59.02)
    assert labels[labels.index("Gr.-SAM-L") + 1] == "CAT-Seg-L [CVPR 2024 weights]"
    assert labels[-1] == "grounded-sam-l (untrained)" and "Δ vs Gr.-SAM-L" not in labels
    labels = [r["model"] for r in csv_rows(cli("table", tmp_path, "--published", "seed", "--format", "csv"))]
    assert labels[labels.index("Gr.-SAM-B") + 1] == "grounded-sam-b"


def test_aliases_must_be_a_list_of_names(tmp_path):
    from catseg_bench.results import published_dir

    own = tmp_path / "mine.json"
    own.write_text((published_dir() / "seed_table1.json").read_text().replace('["grounded-sam-b"]', '"grounded-sam-b"'))
    with pytest.raises(BenchError, match="aliases must be a list of model names"):
        load_published(own)


def test_match_key():
    assert match_key("catseg-b") == match_key("CAT-Seg-B") == "catsegb"
    assert match_key("random") == match_key("Random (LB)") == match_key("Random")
    assert match_key("catseg-b") == match_key("CAT-Seg-B [2023 v1 weights]")


def error_text(res) -> str:
    return res.output + (str(res.exception) if res.exception else "")


def test_errors(cli, tmp_path):
    res = cli("table", tmp_path / "missing", "--published", "none")
    assert res.exit_code != 0 and "results folder does not exist" in error_text(res)
    res = cli("table", "--published", "nope")
    assert res.exit_code != 0 and "no published table named 'nope'" in error_text(res)
    res = cli("table", "--published", "none")
    assert res.exit_code != 0 and "nothing to show" in error_text(res)
    res = cli("table", "--metric", "bogus")
    assert res.exit_code != 0 and "--metric 'bogus' is not a result metric" in error_text(res)


def test_notes_flag_stale_specs_mixed_settings_and_partial_results(tmp_path, specs, benchmark):
    conf = np.array([[5, 1, 0], [1, 5, 0], [0, 0, 0]])
    kvasir, cryo = specs["kvasir_instrument"].eval_sets()[0], specs["cryonuseg"].eval_sets()[0]
    write_result(tmp_path / "m", eval_set=kvasir, model_id="m", checkpoint_sha256="a", settings={},
                 confusion=conf, images_scored=1)
    path = write_result(tmp_path / "m", eval_set=cryo, model_id="m", checkpoint_sha256="b", settings={},
                        confusion=conf, images_scored=1, partial=True)
    path.write_text(path.read_text().replace(specs["cryonuseg"].spec_hash, "0123456789abcdef"))
    results = load_results([tmp_path])
    (row,) = aggregate_results(results, benchmark, specs)
    assert row.aggregate.datasets["kvasir_instrument"] == pytest.approx(100 * (5 / 7))
    assert row.aggregate.datasets["cryonuseg"] is None
    assert "cryonuseg: partial (1 of 30 images), not counted" in row.notes
    assert "mixes 2 checkpoint/settings combinations" in row.notes
    (row,) = aggregate_results(results, benchmark, specs, include_partial=True)
    assert row.aggregate.datasets["cryonuseg"] == pytest.approx(100 * (5 / 7))
    assert "cryonuseg: scored under an older spec (0123456789abcdef); re-run it" in row.notes


def test_same_model_in_two_folders_gets_two_labelled_rows(tmp_path, specs, benchmark):
    conf = np.array([[5, 1, 0], [1, 5, 0], [0, 0, 0]])
    kvasir = specs["kvasir_instrument"].eval_sets()[0]
    for run in ("run1", "run2"):
        write_result(tmp_path / run / "catseg-b", eval_set=kvasir, model_id="catseg-b", checkpoint_sha256=None,
                     settings={}, confusion=conf, images_scored=1)
    rows = aggregate_results(load_results([tmp_path]), benchmark, specs)
    assert [r.label for r in rows] == ["catseg-b (run1/catseg-b)", "catseg-b (run2/catseg-b)"]


@pytest.mark.parametrize("width", [80, 200])
def test_rich_never_shortens_numbers(width, specs, benchmark):
    from rich.console import Console

    from catseg_bench.console_table import print_table

    console = Console(width=width, record=True, file=io.StringIO())
    table = print_table(console, [], published="seed", fmt="rich")
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    summary = text[text.index("Summary"):]
    for row in table.rows:
        assert f"{row.values['Mean']:.2f}" in summary and f"{row.values['Agriculture and Biology']:.2f}" in summary


def test_published_by_path(cli, tmp_path):
    from catseg_bench.results import published_dir

    own = tmp_path / "mine.json"
    own.write_text((published_dir() / "seed_table1.json").read_text().replace('"name": "seed"', '"name": "mine"'))
    rows = csv_rows(cli("table", "--published", own, "--format", "csv"))
    assert len(rows) == 13 and rows[0]["model"] == "Random (LB)"


def test_a_tampered_confusion_matrix_is_set_aside_and_the_table_goes_on(cli, tmp_path, specs):
    """The reported case: an edited `.confusion.npy` was trusted, one corrupt JSON aborted `bench table`."""
    conf = np.array([[5, 1, 0], [1, 5, 0], [0, 0, 0]])
    kvasir, cryo = specs["kvasir_instrument"].eval_sets()[0], specs["cryonuseg"].eval_sets()[0]
    for eval_set in (kvasir, cryo):
        write_result(tmp_path / "m", eval_set=eval_set, model_id="m", checkpoint_sha256=None, settings={},
                     confusion=conf, images_scored=1)
    np.save(tmp_path / "m" / "cryonuseg.confusion.npy", np.array([[9, 0, 0], [0, 9, 0], [0, 0, 0]]))
    (tmp_path / "m" / "dram.json").write_text('{"schema": "catseg-bench/result", "schema_ver')  # cut short
    with pytest.raises(BenchError, match="cryonuseg.confusion.npy: does not match the sha256 recorded in cryonuseg.json"):
        load_results([tmp_path])
    res = cli("table", tmp_path, "--published", "none", "--format", "markdown")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert f"skipped {tmp_path / 'm' / 'cryonuseg.json'}" in out and "does not match the sha256" in out
    assert f"skipped {tmp_path / 'm' / 'dram.json'}: " in out and "not valid JSON" in out
    row = next(line for line in out.splitlines() if line.startswith("| m |"))
    assert "71.43" in row  # kvasir's 100 * 5/7 is still shown


def test_a_user_dataset_of_a_new_domain_gets_its_own_group_after_the_mess_domains(cli, tmp_path, specs):
    from spec_texts import write_user_spec

    spec_dir = tmp_path / "specs"
    write_user_spec(spec_dir)  # "solar", domain "Energy"
    solar = load_specs([spec_dir])["solar"].eval_sets()[0]
    kvasir = specs["kvasir_instrument"].eval_sets()[0]
    conf3 = np.diag([4, 4, 4, 0]) + np.array([[0, 4, 0, 0]] * 3 + [[0, 0, 0, 0]])
    write_result(tmp_path / "out" / "m", eval_set=solar, model_id="m", checkpoint_sha256=None, settings={},
                 confusion=conf3, images_scored=1)
    write_result(tmp_path / "out" / "m", eval_set=kvasir, model_id="m", checkpoint_sha256=None, settings={},
                 confusion=np.array([[5, 1, 0], [1, 5, 0], [0, 0, 0]]), images_scored=1)
    res = cli("table", tmp_path / "out", "--published", "seed", "--format", "csv", "--specs", spec_dir)
    assert res.exit_code == 0, res.output
    header, *rows = list(csv.reader(io.StringIO(res.stdout)))
    assert header[-3:] == ["Agriculture and Biology", "extra:Energy", "Mean"]
    assert header.index("Solar Panels") == header.index("CWFID") + 1  # after the last MESS dataset
    ours = next(r for r in rows if r[0] == "m")
    # [pred, gt]: class 0 TP 4, gt 4, predicted 8 -> IoU 4/8; class 1 TP 8, gt 16, predicted 8 -> 8/16;
    # class 2 TP 4, gt 4, predicted 8 -> 4/8.
    expected = 50.0
    assert float(ours[header.index("Solar Panels")]) == pytest.approx(expected, abs=0.01)
    assert float(ours[header.index("extra:Energy")]) == pytest.approx(expected, abs=0.01)
    assert ours[header.index("Mean")] == ""  # the MESS Mean is not filled by a user dataset
    seed = next(r for r in rows if r[0].startswith("CAT-Seg-B"))
    assert seed[header.index("Solar Panels")] == "" and seed[header.index("Mean")] != ""
    rich = cli("table", tmp_path / "out", "--published", "none", "--specs", spec_dir)
    assert "Energy" in rich.stdout and "not part of its Mean" in " ".join(rich.stdout.split())
    without = cli("table", tmp_path / "out", "--published", "none", "--format", "markdown")
    assert "Results for datasets without a spec are not shown: solar; pass their folder with --specs." in without.stdout


def _blocks(text: str) -> list[list[str]]:
    """The tables of a rich Table 1 print-out: lines from a block title to the blank line after its rows."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.strip().startswith("Model ") and current is None:
            current = [line]
        elif current is not None:
            if not line.strip():
                blocks.append(current)
                current = None
            else:
                current.append(line)
    return blocks


@pytest.mark.parametrize("width", [60, 80])
def test_at_80_columns_every_block_keeps_the_model_column_and_the_mean(cli, tmp_path, specs, width):
    from spec_texts import write_user_spec

    spec_dir = tmp_path / "specs"
    write_user_spec(spec_dir)  # "solar", domain "Energy": one more column in the Summary
    solar = load_specs([spec_dir])["solar"].eval_sets()[0]
    write_result(tmp_path / "out" / "a-long-model-name", eval_set=solar, model_id="a-long-model-name",
                 checkpoint_sha256=None, settings={}, confusion=np.diag([4, 4, 4, 0]), images_scored=1)
    res = cli("table", tmp_path / "out", "--published", "seed", "--specs", spec_dir, env={"COLUMNS": str(width)})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(map(len, lines)) <= width
    blocks = _blocks(res.stdout)
    assert len(blocks) >= 7  # five MESS domains, Energy, the Summary (split when it does not fit)
    for block in blocks:
        assert any("a-long-model-name" in line for line in block), block[0]
        assert any(line.strip().startswith("Random (LB)") for line in block), block[0]
    summary = res.stdout[res.stdout.index("Summary"):]
    headers = " ".join(" ".join(b[0] for b in _blocks(summary)).split())
    assert "Energy" in headers and "Mean" in headers
    assert "10.27" in summary  # the Random row's Mean is printed, not dropped


def test_at_80_columns_the_lists_keep_names_and_arguments_whole(cli):
    listed = cli("models", "list", env={"COLUMNS": "80"})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    cells = [cell.strip() for line in lines for cell in line.split("│")]
    for name in ("catseg-b", "catseg-tiny", "predictions", "clearclip"):
        assert name in cells
    assert "prob_threshold: float = 0.0" in cells and "model_id: str | None = None" in cells
    datasets = cli("datasets", "list", env={"COLUMNS": "80"})
    assert datasets.exit_code == 0 and max(map(len, datasets.stdout.splitlines())) <= 80
    cells = [cell.strip() for line in datasets.stdout.splitlines() for cell in line.split("│")]
    assert "kvasir_instrument" in cells and "zerowaste_f" in cells
    assert "bench datasets show NAME" in datasets.stdout
