"""Two models (untrained catseg-tiny and Random) run on a synthetic suite with --save-samples 2, then
`bench report` on their results."""

from __future__ import annotations

import numpy as np
import pytest

from catseg_bench.bootstrap import result_stats
from catseg_bench.data import open_eval_set
from catseg_bench.results import load_results, read_result
from catseg_bench.samples import choose_samples, load_samples
from catseg_bench.specs import load_specs
from catseg_bench.synth import write_suite

from report_html import parse_report

SPECS = load_specs()
DATASETS = ["cwfid", "kvasir_instrument"]
TINY = ("run", "--model", "catseg-tiny", "--checkpoint", "none", "--device", "cpu", "--workers", "0", "--published",
        "none", "--mode", "whole", "--datasets", ",".join(DATASETS), "--save-samples", "2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from typer.testing import CliRunner

    from catseg_bench.cli import app

    root = tmp_path_factory.mktemp("suite")
    write_suite(root, [SPECS[n] for n in DATASETS], images_per_set=2, seed=5)
    out = tmp_path_factory.mktemp("runs")
    runner = CliRunner()
    ran = runner.invoke(app, [*TINY, "--data-root", str(root), "--output", str(out)])
    assert ran.exit_code == 0, ran.output
    ran = runner.invoke(app, ["run", "--model", "random", "--datasets", ",".join(DATASETS), "--data-root", str(root),
                              "--output", str(out), "--published", "none"])
    assert ran.exit_code == 0, ran.output
    return root, out


def test_runs_write_per_image_counts_and_samples(runs):
    root, out = runs
    for result in load_results([out]):
        stats, why = result_stats(result)
        assert why is None and stats.matches(result.confusion())
        eval_set = next(e for e in SPECS[result.dataset].eval_sets() if e.name == result.eval_set)
        names = open_eval_set(eval_set, root).names
        assert list(stats.names) == names  # sample order
        if result.model_id == "catseg-tiny":
            samples = load_samples(result)
            assert {s.name for s in samples} == choose_samples(names, 2)
            for sample in samples:
                label = open_eval_set(eval_set, root).read_label(names.index(sample.name))
                assert sample.label.shape == label.shape and np.array_equal(sample.label, label)
                assert sample.image.shape == label.shape + (3,) and sample.prediction.shape == label.shape


def test_report_of_two_models_is_self_contained_and_equal_to_the_result_files(runs, cli, tmp_path):
    _, out = runs
    report = tmp_path / "report.html"
    made = cli("report", out, "--out", report, "--compare", "catseg-tiny", out / "random", "--bootstrap", "200",
               "--published", "seed")
    assert made.exit_code == 0, made.output
    text = report.read_text(encoding="utf-8")
    page = parse_report(text)
    assert page.image_sources and all(src.startswith("data:image/png;base64,") for src in page.image_sources)
    assert not [link for link in page.links if link.startswith(("http:", "https:", "//"))]
    assert page.sections == ["kvasir_instrument", "cwfid"]  # Table 1 order
    # Per set: 2 samples x (image, ground truth, catseg-tiny's prediction; Random has none) and a heat map
    # per model; + the domain chart.
    assert len(page.image_sources) == len(DATASETS) * (2 * 3 + 2) + 1
    for model, label in (("catseg-tiny", "catseg-tiny (untrained) (synthetic data)"), ("random", "random (synthetic data)")):
        for name in DATASETS:
            result = read_result(out / model / f"{name}.json")
            summary = next(t for t in page.tables if t.section == name)
            cells = summary.row(label)
            assert float(cells[1].value) == result.metrics["mIoU"]
            assert float(cells[2].value) <= result.metrics["mIoU"] <= float(cells[2].high)
            assert int(cells[-2].value) == result.images_scored
    paired = next(t for t in page.tables if t.section == "cwfid").row("A − B (paired)")
    a = read_result(out / "catseg-tiny" / "cwfid.json").metrics["mIoU"]
    b = read_result(out / "random" / "cwfid.json").metrics["mIoU"]
    assert float(paired[1].value) == pytest.approx(a - b)
    table1 = next(t for t in page.tables if "table1" in t.css_class)
    assert table1.row("Random (LB)") and table1.row("random (synthetic data)")  # published rows beside ours
    assert "Δ vs" not in text  # a synthetic suite is never compared with published rows
