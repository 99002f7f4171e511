"""Suites as data (issue 23): the in-domain suite's table, its published rows, and how results of one
suite stay out of another suite's table. Runs use the brightness-threshold plugin of the provenance
tests on synthetic copies (`random` has no analytic matrix for PAS-20b's prompts)."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest

from catseg_bench.aggregate import Aggregate, ModelRow, aggregate, aggregate_results
from catseg_bench.errors import BenchError
from catseg_bench.results import load_published, load_results, published_dir, write_result
from catseg_bench.specs import load_all
from catseg_bench.tables import DELTA, OURS, PUBLISHED, build_table

from conftest import SHARED_DIR

IN_DOMAIN = ["ade847", "pc459", "ade150", "pc59", "voc20", "voc20b"]
HEADERS = ["A-847", "PC-459", "A-150", "PC-59", "PAS-20", "PAS-20b"]
SUPPLEMENTARY = SHARED_DIR / "seed" / "catseg_supplementary.txt"


@pytest.fixture(scope="module")
def loaded():
    specs, suites = load_all()
    return specs, suites


@pytest.fixture(scope="module")
def in_domain_seed():
    return load_published("seed", "in_domain")


def test_the_in_domain_suite_is_the_six_sets_in_the_papers_order(loaded):
    specs, suites = loaded
    suite = suites["in_domain"]
    assert list(suite.members) == IN_DOMAIN and len(suite.domains) == 1
    assert [specs[name].display_name for name in suite.members] == HEADERS


def test_seed_is_each_suites_own_table_and_a_file_of_another_suite_is_refused():
    assert load_published("seed").path.name == "seed_table1.json"
    assert load_published("seed", "mess").path.name == "seed_table1.json"
    in_domain = load_published("seed", "in_domain")
    assert in_domain.path.name == "seed_in_domain.json" and in_domain.suite == "in_domain"
    with pytest.raises(BenchError, match="for suite in_domain, not mess; use --suite in_domain"):
        load_published(published_dir() / "seed_in_domain.json", "mess")
    with pytest.raises(BenchError, match=r"no published table named 'mess2023' for suite in_domain in .*; known for in_domain: seed$"):
        load_published("mess2023", "in_domain")


def test_in_domain_rows_are_keyed_by_the_suite_and_name_their_source(in_domain_seed):
    for row in in_domain_seed.rows:
        assert list(row.scores) == IN_DOMAIN, row.model
        assert all(v is None or isinstance(v, float) for v in row.scores.values()), row.model
        assert row.source, row.model
        assert not row.reported, row.model  # no source prints an in-domain aggregate
    models = [row.model for row in in_domain_seed.rows]
    assert models[:5] == ["CAT-Seg-B", "CAT-Seg-L", "CAT-Seg-L w/ training reso.", "CAT-Seg EVA-02-CLIP-L/14",
                          "CAT-Seg SigLIP-ViT-L/16"]
    assert {"ZSSeg-B", "ZegFormer-B", "OVSeg-L", "SAN-B", "SAN-L"} <= set(models)


def _supplementary_rows(text: str, caption: str) -> dict[str, list[float]]:
    """The rows (name -> six numbers) of the tab-separated table printed just above `caption`."""
    lines = text[: text.index(caption)].rstrip().splitlines()
    rows = {}
    for line in reversed(lines):
        cells = line.split("\t")
        if len(cells) != 7 or not re.fullmatch(r"[\d.]+", cells[1].strip()):
            break
        rows[cells[0].strip()] = [float(c) for c in cells[1:]]
    return rows


@pytest.mark.skipif(not SUPPLEMENTARY.is_file(), reason="needs ../shared/seed/catseg_supplementary.txt beside the checkout")
def test_table_3_and_4_rows_are_the_supplementarys_numbers(in_domain_seed):
    text = SUPPLEMENTARY.read_text(encoding="utf-8")
    table3 = _supplementary_rows(text, "Table 3. Ablation study of inference strategy.")
    table4 = _supplementary_rows(text, "Table 4. Results on various VLMs.")
    ours = {row.model: [row.scores[name] for name in IN_DOMAIN] for row in in_domain_seed.rows}
    assert ours["CAT-Seg-L w/ training reso."] == table3["CAT-Seg w/ training reso."]
    assert ours["CAT-Seg-L"] == table3["Ours"] == table4["CLIP-ViT-L/14"]
    assert ours["CAT-Seg EVA-02-CLIP-L/14"] == table4["EVA-02-CLIP-L/14 [32]"]
    assert ours["CAT-Seg SigLIP-ViT-L/16"] == table4["SigLIP-ViT-L/16 [40]"]


def test_published_rows_recompute_to_their_numbers_and_a_mean_only_when_complete(loaded, in_domain_seed):
    specs, suites = loaded
    suite = suites["in_domain"]
    table = build_table([], in_domain_seed, suite, specs)
    assert [c.key for c in table.columns] == IN_DOMAIN + ["Mean"]  # one group: no group mean beside the Mean
    for prow, trow in zip(in_domain_seed.rows, table.rows):
        assert trow.kind == PUBLISHED and trow.label == prow.label
        assert [trow.values[name] for name in IN_DOMAIN] == [prow.scores[name] for name in IN_DOMAIN]
        values = list(prow.scores.values())
        expected = None if None in values else sum(values) / 6
        assert trow.values["Mean"] == (pytest.approx(expected) if expected is not None else None), prow.model
    catseg_b = next(r for r in table.rows if r.label == "CAT-Seg-B [CVPR 2024 weights]")
    assert catseg_b.values["Mean"] == pytest.approx((12.0 + 19.0 + 31.8 + 57.5 + 94.6 + 77.3) / 6)
    assert any(note.startswith("ZSSeg-B: from CAT-Seg arXiv v1 (2303.11797v1) Table 1") for note in table.notes)


def _row(model_id: str, settings: dict, scores: dict, suite, specs) -> ModelRow:
    return ModelRow(f"{model_id} [mode={settings['mode']}]", model_id, aggregate(scores, suite, specs),
                    settings=settings)


def test_a_whole_mode_catseg_l_meets_the_training_resolution_row_and_patch_inference_catseg_l(loaded, in_domain_seed):
    specs, suites = loaded
    suite = suites["in_domain"]
    scores = dict.fromkeys(IN_DOMAIN, 50.0)
    rows = [_row("catseg-l", {"mode": "whole", "precision": "fp32"}, scores, suite, specs),
            _row("catseg-l", {"mode": "sliding", "precision": "fp32"}, scores, suite, specs)]
    labels = [r.label for r in build_table(rows, in_domain_seed, suite, specs).rows]
    at = labels.index("CAT-Seg-L [CVPR 2024 weights]")
    assert labels[at + 1 : at + 3] == ["catseg-l [mode=sliding]", "Δ vs CAT-Seg-L [CVPR 2024 weights]"]
    at = labels.index("CAT-Seg-L w/ training reso. [CVPR 2024 weights]")
    assert labels[at + 1 : at + 3] == ["catseg-l [mode=whole]", "Δ vs CAT-Seg-L w/ training reso. [CVPR 2024 weights]"]


def test_shared_settings_of_a_row_are_those_all_its_results_have(tmp_path, loaded):
    specs, suites = loaded
    suite = suites["in_domain"]
    for index, name in enumerate(IN_DOMAIN[:2]):
        eval_set = specs[name].eval_sets()[0]
        k = eval_set.num_classes
        conf = np.zeros((k + 1, k + 1), dtype=np.int64)
        conf[np.arange(k), np.arange(k)] = 1
        settings = {"mode": "whole", "precision": "fp32" if index == 0 else "tf32"}
        write_result(tmp_path / "catseg-l", eval_set=eval_set, model_id="catseg-l", checkpoint_sha256=None,
                     settings=settings, confusion=conf, images_scored=1)
    (row,) = aggregate_results(load_results([tmp_path]), suite, specs)
    assert row.settings == {"mode": "whole"}


# ------------------------------------------------------------------------- a real run on synthetic sets


@pytest.fixture(scope="module")
def in_domain_run(tmp_path_factory):
    """`bench run --datasets suite:in_domain` of a small plugin on synthetic copies of the six sets, then one
    MESS set into the same output."""
    from typer.testing import CliRunner

    from catseg_bench.cli import app
    from test_provenance import PLUGIN

    root = tmp_path_factory.mktemp("in_domain")
    (root / "site").mkdir()
    (root / "site" / "suites_plugin.py").write_text(PLUGIN)
    runner = CliRunner()

    def bench(*args):
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 0, res.output + repr(res.exception)
        return res

    model = ("--model", "suites_plugin:Segmenter", "--workers", "0", "--data-root", root / "data", "--output", root / "out")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root / "site"))
        bench("datasets", "synth", "suite:in_domain,cwfid", "--out", root / "data", "--images", "2")
        ran = bench("run", *model, "--datasets", "suite:in_domain")
        bench("run", *model, "--datasets", "cwfid", "--published", "none")
    return root / "out", ran


def test_the_run_scores_the_six_sets_and_ends_with_the_in_domain_table(in_domain_run):
    out, ran = in_domain_run
    assert sorted(p.stem for p in (out / "bright").glob("*.json") if not p.name.startswith(".")) == sorted(
        IN_DOMAIN + ["cwfid"])
    text = " ".join(ran.stdout.split())
    assert "In-domain" in text and "CAT-Seg-L w/ training reso." in text
    assert "Supplementary Table 1" not in text and "Gr.-SAM-B" not in text  # not the MESS table


def test_in_domain_table_lays_out_the_suite_with_the_seed_rows(cli, in_domain_run, in_domain_seed):
    out, _ = in_domain_run
    printed = cli("table", out, "--suite", "in_domain", "--published", "seed", "--format", "csv")
    assert printed.exit_code == 0, printed.output
    rows = list(csv.DictReader(io.StringIO(printed.stdout)))
    assert list(rows[0]) == ["model", *HEADERS, "Mean"]
    assert [r["model"] for r in rows] == [p.label for p in in_domain_seed.rows] + ["bright (synthetic data)"]
    ours = rows[-1]
    assert all(ours[h] != "" for h in HEADERS) and ours["Mean"] != ""
    mean = sum(float(ours[h]) for h in HEADERS) / 6
    assert abs(float(ours["Mean"]) - mean) <= 0.01  # the Mean of the six, from the 2-decimal cells
    # the default --published is the suite's seed table; the JSON layout names the columns
    document = json.loads(cli("table", out, "--suite", "in_domain", "--format", "json").stdout)
    assert [c["header"] for c in document["columns"]] == HEADERS + ["Mean"]
    assert [r["kind"] for r in document["rows"]].count(OURS) == 1 and DELTA not in [r["kind"] for r in document["rows"]]


def test_mess_table_keeps_in_domain_results_out_and_says_where_they_are(cli, in_domain_run):
    out, _ = in_domain_run
    printed = cli("table", out, "--published", "none", "--format", "csv")
    assert printed.exit_code == 0, printed.output
    header = next(csv.reader(io.StringIO(printed.stdout)))
    assert not set(HEADERS) & set(header) and len(header) == 1 + 22 + 5 + 1
    markdown = cli("table", out, "--published", "none", "--format", "markdown").stdout
    assert ("Results for datasets of the in_domain suite (ade847, pc459, ade150, pc59, voc20, voc20b) are in its own "
            "table: bench table --suite in_domain.") in " ".join(markdown.split())
    in_domain = cli("table", out, "--suite", "in_domain", "--published", "none", "--format", "csv").stdout
    assert "CWFID" not in in_domain.splitlines()[0]


def test_report_lays_out_the_in_domain_suite(in_domain_run, tmp_path):
    from catseg_bench.report import build_report

    out, _ = in_domain_run
    page = build_report([out], resamples=10, benchmark_name="in_domain")
    assert "<h1>In-domain report</h1>" in page
    assert "CAT-Seg-L w/ training reso." in page and "PAS-20b" in page


def test_unknown_suite_in_table(cli):
    res = cli("table", "--suite", "outdoor")
    assert res.exit_code == 1 and "no suite named 'outdoor'; known suites: in_domain, mess" in res.output


def test_row_settings_must_map_names_to_values(tmp_path):
    document = json.loads((published_dir() / "seed_in_domain.json").read_text(encoding="utf-8"))
    document["rows"][2]["settings"] = ["mode", "whole"]
    own = tmp_path / "mine.json"
    own.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(BenchError, match=r"mine.json: row 'CAT-Seg-L w/ training reso.': settings must map setting "
                                         r"names to values"):
        load_published(own, "in_domain")


def test_an_all_classes_run_is_shown_but_compared_with_no_cvpr_row(loaded, in_domain_seed):
    """The official CAT-Seg keeps 256 classes per view; `all_classes=true` is another protocol, so its
    A-847/PC-459 numbers must not get a Δ against the published rows (which record all_classes=false)."""
    specs, suites = loaded
    suite = suites["in_domain"]
    scores = dict.fromkeys(IN_DOMAIN, 50.0)
    rows = [_row("catseg-l", {"mode": "sliding", "all_classes": True}, scores, suite, specs),
            _row("catseg-b", {"mode": "sliding"}, scores, suite, specs)]
    labels = [r.label for r in build_table(rows, in_domain_seed, suite, specs).rows]
    assert "catseg-l [mode=sliding]" in labels
    assert not any(label.startswith("Δ vs CAT-Seg-L") for label in labels)
    assert "Δ vs CAT-Seg-B [CVPR 2024 weights]" in labels
