"""`bench report` and the table exports on hand-made result folders (the run end to end is in
test_report_e2e.py)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from catseg_bench.errors import BenchError
from catseg_bench.metrics import ConfusionMatrix
from catseg_bench.per_image import PerImageRecorder, image_confusion, per_image_path
from catseg_bench.report import build_report
from catseg_bench.results import Timing, load_published, read_result, write_result
from catseg_bench.samples import choose_samples, load_samples, save_sample
from catseg_bench.specs import load_benchmark, load_specs
from catseg_bench.tables import INTERVAL, OURS, PUBLISHED, Table, TableRow, _chart_columns, table_columns

from report_html import parse_report

SPECS = load_specs()
SETS = SPECS["cwfid"].eval_sets() + SPECS["paxray4"].eval_sets()
STRANGE = "m<b>&\"x"  # a model id that must be escaped


def _write_model(out, model_id: str, noise: float, seed: int, images: int = 8):
    rng = np.random.default_rng(seed)
    for eval_set in SETS:
        k = eval_set.num_classes
        recorder, whole = PerImageRecorder(k), ConfusionMatrix(k, eval_set.ignore_index)
        names = [f"im<{i}>" for i in range(images)]
        keep = choose_samples(names, 2)
        for name in names:
            gt = np.random.default_rng(abs(hash((eval_set.name, name))) % 2**32).integers(0, k, (20, 24))
            gt[0] = eval_set.ignore_index
            pred = np.where(rng.random(gt.shape) < noise, rng.integers(0, k, gt.shape), np.where(gt >= k, 0, gt))
            single = image_confusion(pred, gt, k, eval_set.ignore_index)
            whole.merge(single)
            recorder.add(name, single.numpy())
            if name in keep:
                save_sample(out / model_id, eval_set.name, name, image=np.zeros((20, 24, 3), np.uint8), label=gt,
                            prediction=pred, provenance={"spec_hash": eval_set.spec_hash, "model_id": model_id,
                                                         "checkpoint_sha256": None, "settings": {"s": 1}})
        write_result(out / model_id, eval_set=eval_set, model_id=model_id, checkpoint_sha256=None, settings={"s": 1},
                     confusion=whole, images_scored=images, images_total=images,
                     timing=Timing(1.0, 10, "cpu"), per_image=recorder.stats())


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    _write_model(out, "good", 0.2, 1)
    _write_model(out, STRANGE, 0.6, 2)
    return out


def test_report_is_self_contained_escaped_and_equal_to_the_result_files(results):
    text = build_report([results], compare=("good", STRANGE), resamples=200, published="none")
    page = parse_report(text)
    assert page.image_sources and all(src.startswith("data:image/png;base64,") for src in page.image_sources)
    assert not [link for link in page.links if "://" in link]
    assert "http://" not in text and "https://" not in text
    assert page.sections == [e.name for e in SETS[1:] + SETS[:1]]  # Table 1 order: Medical before Agri.
    assert STRANGE not in text and "m&lt;b&gt;&amp;&quot;x" in text
    # 2 samples x (image, GT, 2 predictions) per set, plus a heat map per run and set, plus the chart.
    assert len(page.image_sources) == len(SETS) * (2 * 4 + 2) + 1
    for eval_set in SETS:
        summary = next(t for t in page.tables if t.section == eval_set.name)
        for model in ("good", STRANGE):
            result = read_result(results / model / f"{eval_set.name}.json")
            cells = summary.row(model)
            assert float(cells[1].value) == result.metrics["mIoU"]
            low, high = float(cells[2].value), float(cells[2].high)
            assert low <= result.metrics["mIoU"] <= high
        assert summary.row("A − B (paired)")[1].value is not None
        per_class = next(t for t in page.tables if t.section == eval_set.name and "per-class" in t.css_class)
        good = read_result(results / "good" / f"{eval_set.name}.json")
        for name, iou in good.per_class_iou.items():
            assert float(per_class.row(name)[2].value) == iou
    table1 = next(t for t in page.tables if "table1" in t.css_class)
    good_row = table1.row("good")
    paxray = np.mean([read_result(results / "good" / f"{e.name}.json").metrics["mIoU"] for e in SETS[1:]])
    # Two of 22 datasets measured: Table 1 shows them, their domains' means and the Mean.
    columns = ["paxray4", "Medical Sciences", "cwfid", "Agriculture and Biology", "Mean"]
    assert len(good_row) == 1 + len(columns)
    assert float(good_row[1 + columns.index("paxray4")].value) == pytest.approx(paxray)
    interval_row = next(cells for cls, cells in table1.rows if cls == INTERVAL and cells[0].text == "95 % CI")
    assert float(interval_row[1 + columns.index("paxray4")].value) <= paxray


def test_table1_scrolls_with_its_labels_in_view_and_the_full_layout_on_request(results):
    text = build_report([results], resamples=20, published="seed", full_table=True)
    table1 = next(t for t in parse_report(text).tables if "table1" in t.css_class)
    columns = [c.key for c in table_columns(load_benchmark(), SPECS)]
    seed = load_published("seed").rows[8]
    assert seed.model == "CAT-Seg-B"
    assert len(table1.row("good")) == 1 + len(columns) == len(table1.row(seed.label))
    assert "Table 1 shows the 2 measured" not in text
    compact = build_report([results], resamples=20, published="seed")
    assert "Table 1 shows the 2 measured of its 22 datasets; `bench report --full-table` shows the whole layout." in compact
    cat_seg_b = next(t for t in parse_report(compact).tables if "table1" in t.css_class).row(seed.label)
    assert [float(c.value) for c in cat_seg_b[1:4:2]] == [seed.scores["paxray4"], seed.scores["cwfid"]]
    assert float(cat_seg_b[-1].value) == pytest.approx(seed.reported["Mean"], abs=0.01)
    for page in (text, compact):
        assert '<div class="scroll"><table class="table1">' in page
        assert '<th rowspan="2" class="label">Model</th>' in page and '<td class="label">good</td>' in page
        assert "table.table1 .label{position:sticky;left:0" in page


def test_include_partial_lets_limit_results_into_the_report_and_the_table(results, tmp_path, cli):
    import shutil

    copy = tmp_path / "partial"
    shutil.copytree(results / "good", copy / "good")
    path = copy / "good" / "cwfid.json"
    document = json.loads(path.read_text())
    document["partial"] = True
    path.write_text(json.dumps(document))
    cwfid = read_result(path).metrics["mIoU"]

    def table1(text):
        return next(t for t in parse_report(text).tables if "table1" in t.css_class)

    left_out = build_report([copy], resamples=20, published="none", full_table=True)
    columns = [c.key for c in table_columns(load_benchmark(), SPECS)]
    assert table1(left_out).row("good")[1 + columns.index("cwfid")].value == ""
    let_in = build_report([copy], resamples=20, published="none", full_table=True, include_partial=True)
    assert float(table1(let_in).row("good")[1 + columns.index("cwfid")].value) == cwfid
    ran = cli("report", copy, "--out", tmp_path / "r.html", "--include-partial", "--full-table", "--bootstrap", "10",
              "--published", "none")
    assert ran.exit_code == 0, ran.output
    assert float(table1((tmp_path / "r.html").read_text()).row("good")[1 + columns.index("cwfid")].value) == cwfid

    for flag, expected in [((), ""), (("--include-partial",), f"{cwfid:.2f}")]:
        res = cli("table", copy, "--published", "none", "--format", "csv", *flag)
        row = next(csv.DictReader(io.StringIO(res.stdout)))
        assert res.exit_code == 0 and row["CWFID"] == expected


def test_results_without_per_image_counts_are_reported_without_intervals(results, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(results / "good", copy / "good")
    per_image_path(copy / "good", "cwfid").unlink()
    text = build_report([copy], resamples=50, published="none")
    assert "cwfid: no per-image statistics (an older result): no interval" in text
    summary = next(t for t in parse_report(text).tables if t.section == "cwfid")
    assert summary.row("good")[2].value == ""  # no interval
    assert summary.row("good")[1].value is not None


def test_samples_are_chosen_by_name_and_kept_to_their_run(results):
    names = [f"im<{i}>" for i in range(8)]
    assert choose_samples(names, 2) == choose_samples(list(reversed(names)), 2)
    result = read_result(results / "good" / "cwfid.json")
    assert [s.name for s in load_samples(result)] == sorted(choose_samples(names, 2))
    other = read_result(results / STRANGE / "cwfid.json")
    assert {s.name for s in load_samples(other)} == choose_samples(names, 2)


def test_report_errors(results, tmp_path, cli):
    with pytest.raises(BenchError, match="is not one of the runs"):
        build_report([results], compare=("good", "nope"), resamples=20, published="none")
    with pytest.raises(BenchError, match="no result files"):
        build_report([tmp_path], resamples=20, published="none")
    wrong = cli("report", results, "--out", tmp_path / "r.txt")
    assert wrong.exit_code == 1 and "ending in .html" in wrong.output


def test_table_exports_mess_csv_json_and_ci(cli, results):
    res = cli("table", results, "--published", "none", "--format", "mess-csv")
    assert res.exit_code == 0, res.output
    lines = list(csv.reader(io.StringIO(res.stdout)))
    assert lines[0] == ["Dataset", "Model", "Domain", "mIoU"]
    good = [line for line in lines[1:] if line[1] == "good"]
    assert len(good) == 23 and good[-1] == ["Mean", "good", "Mean", "-"]
    assert good[0] == ["BDD100K", "good", "General", "-"]
    cwfid = read_result(results / "good" / "cwfid.json").metrics["mIoU"]
    assert ["CWFID", "good", "Agriculture and Biology", str(round(cwfid, 2))] in good
    assert ["Kvasir-Instrument", "good", "Medical Sciences", "-"] in good

    res = cli("table", results, "--published", "none", "--format", "json", "--ci", "--bootstrap", "100")
    assert res.exit_code == 0, res.output
    document = json.loads(res.stdout)
    rows = {(r["kind"], r.get("of", r["label"])): r for r in document["rows"]}
    assert rows[("ours", "good")]["values"]["cwfid"] == cwfid
    low, high = rows[("interval", "good")]["values"]["cwfid"]
    assert low <= cwfid <= high and rows[("interval", "good")]["values"]["Mean"] is None

    res = cli("table", results, "--published", "none", "--ci", "--bootstrap", "100")
    assert res.exit_code == 0 and "95 % CI" in res.stdout
    res = cli("table", results, "--ci", "--metric", "pACC")
    assert res.exit_code == 1 and "mIoU only" in res.output


def test_chart_draws_an_incomplete_domain_by_its_datasets():
    benchmark = load_benchmark()
    table = Table("t — mIoU (%)", table_columns(benchmark, SPECS))
    values = {c.key: None for c in table.columns}
    values.update({"cwfid": 40.0, "suim": 30.0, "chase_db1": 20.0})
    table.rows.append(TableRow("ours", OURS, values))
    chosen, by_dataset = _chart_columns(table, table.rows)
    assert [c.key for c in chosen] == ["chase_db1", "suim", "cwfid"]
    assert by_dataset == ["Medical Sciences", "Agri. and Biology"]
    complete = dict(values, **{"Medical Sciences": 25.0, "Mean": 30.0})
    chosen, by_dataset = _chart_columns(table, [TableRow("ours", OURS, complete)])
    assert [c.key for c in chosen] == ["Medical Sciences", "suim", "cwfid", "Mean"]
    # A published row with every domain does not hide that ours has none: ours is drawn by dataset.
    published = TableRow("Random (LB)", PUBLISHED, {c.key: 1.0 for c in table.columns})
    chosen, by_dataset = _chart_columns(table, [published, table.rows[0]])
    assert [c.key for c in chosen] == ["chase_db1", "suim", "cwfid"]
