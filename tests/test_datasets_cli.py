"""`bench datasets list | show | synth | check | export` as a user runs them."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from catseg_bench.data import DATA_ROOT_ENV

from spec_texts import IN_DOMAIN_NAMES, MESS_CLASS_NAMES, MESS_DOMAINS, MESS_NAMES, SOLAR_SPEC


def test_list_json_is_the_22_mess_datasets_then_the_in_domain_suite(cli):
    res = cli("datasets", "list", "--json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert [r["name"] for r in records] == MESS_NAMES + IN_DOMAIN_NAMES
    assert {r["domain"] for r in records[len(MESS_NAMES):]} == {"In-domain"}
    records = records[:len(MESS_NAMES)]
    by_name = {r["name"]: r for r in records}
    for domain, names in MESS_DOMAINS.items():
        assert all(by_name[n]["domain"] == domain for n in names)
    mess_names = {e["mess_name"]: e for e in _show_all(cli, records)}
    for record in records:
        keys = {"name", "display_name", "domain", "split", "num_classes", "num_images", "class_names", "license", "link"}
        assert keys <= record.keys()
        if record["name"] == "paxray4":
            assert record["class_names"] is None and record["num_classes"] == 2
            assert [s["name"] for s in record["subsets"]] == ["lungs", "mediastinum", "bones", "diaphragm"]
            for subset, mess_key in zip(record["subsets"], ("lungs", "mediastinum", "bones", "diaphragm")):
                assert subset["class_names"] == MESS_CLASS_NAMES[f"paxray_sem_seg_test_{mess_key}"]
        else:
            assert record["class_names"] == MESS_CLASS_NAMES[_mess_name(mess_names, record["name"])]
            assert record["num_classes"] == len(record["class_names"])


def _show_all(cli, records):
    details = []
    for record in records:
        res = cli("datasets", "show", record["name"], "--json")
        assert res.exit_code == 0, res.output
        details.append(json.loads(res.stdout))
    return details


def _mess_name(by_mess_name, name):
    return next(key for key, detail in by_mess_name.items() if detail["name"] == name)


def test_user_spec_appears_beside_the_22(cli, tmp_path):
    (tmp_path / "solar.toml").write_text(SOLAR_SPEC, encoding="utf-8")
    res = cli("datasets", "list", "--json", "--specs", tmp_path)
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    assert len(records) == 22 + 6 + 1 and records[-1]["name"] == "solar" and records[-1]["domain"] == "Energy"
    table = cli("datasets", "list", "--specs", tmp_path)
    assert table.exit_code == 0 and "Solar Panels" in table.stdout and "Agriculture and Biology" in table.stdout


def test_list_table_names_every_dataset(cli):
    res = cli("datasets", "list")
    assert res.exit_code == 0
    for names in MESS_DOMAINS.values():
        assert all(f" {n} " in res.stdout for n in names)
    assert "4x2" in res.stdout  # PAXRay-4: four binary subsets


def test_show_prints_fields_and_prompts(cli):
    res = cli("datasets", "show", "cwfid")
    assert res.exit_code == 0, res.output
    for text in ("CWFID", "Agriculture and Biology", "cwfid/annotations_detectron2/test", "_annotation.png",
                 "crop seedling", "images_without_labels", "skip", "spec_hash"):
        assert text in res.stdout
    detail = json.loads(cli("datasets", "show", "paxray4.lungs", "--json").stdout)
    assert detail["name"] == "paxray4" and detail["subsets"][0]["label_dir"].endswith("/lungs")


def _error_text(res) -> str:
    """The one line a user reads for a BenchError (no traceback)."""
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, res.output
    return lines[0]


def test_unknown_dataset_is_an_error(cli):
    res = cli("datasets", "show", "cwfd")
    assert res.exit_code == 1 and "unknown dataset 'cwfd'" in _error_text(res)


def test_synth_then_check_passes(cli, tmp_path):
    res = cli("datasets", "synth", "all", "--out", tmp_path, "--images", 2, "--seed", 3)
    assert res.exit_code == 0, res.output
    assert "wrote 62 image/label pairs for 31 evaluation set(s)" in res.stdout  # 25 MESS sets + 6 in-domain
    check = cli("datasets", "check", "--data-root", tmp_path)
    assert check.exit_code == 0, check.output
    assert "all 31 evaluation set(s) OK" in check.stdout


def test_check_reports_planted_defects_by_file_and_fails(cli, tmp_path, monkeypatch):
    assert cli("datasets", "synth", "pst900", "suim", "zerowaste_f", "--out", tmp_path, "--images", 3).exit_code == 0
    (tmp_path / "PST900_RGBT_Dataset/test/labels/synth_001.png").unlink()  # missing label
    label_path = tmp_path / "PST900_RGBT_Dataset/test/labels/synth_000.png"
    with Image.open(label_path) as image:
        label = np.array(image)
    label[1, 1] = 7  # value 7 in a 5-class label
    Image.fromarray(label).save(label_path)
    size_path = tmp_path / "zerowaste-f/splits_final_deblurred/test/sem_seg/synth_002.PNG"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(size_path, format="PNG")  # size mismatch
    Image.new("RGB", (64, 64)).save(tmp_path / "SUIM/TEST/images/extra.jpg")  # an extra image

    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))  # the data root from the environment
    res = cli("datasets", "check", "pst900", "suim", "zerowaste_f")
    assert res.exit_code == 1
    out = res.stdout
    for file, kind in [
        ("PST900_RGBT_Dataset/test/thermal/synth_001.png", "unpaired_image"),
        ("PST900_RGBT_Dataset/test/labels/synth_000.png", "label_values"),
        ("zerowaste-f/splits_final_deblurred/test/sem_seg/synth_002.PNG", "size_mismatch"),
        ("SUIM/TEST/images/extra.jpg", "unpaired_image"),
    ]:
        line = next((line for line in out.splitlines() if file in line), "")
        assert kind in line, f"{file} not reported as {kind}:\n{out}"
    assert "label values 7 are outside the classes 0..4" in out
    assert "5 problem(s) in 3 of 3 evaluation set(s)" in out  # + the count of pst900 (2 of 3 pairs)

    as_json = json.loads(cli("datasets", "check", "pst900", "suim", "zerowaste_f", "--json").stdout)
    assert sorted(f["kind"] for f in as_json["findings"]) == [
        "count", "label_values", "size_mismatch", "unpaired_image", "unpaired_image",
    ]


def test_check_without_data_root_says_how_to_give_one(cli, monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    res = cli("datasets", "check", "cwfid")
    assert res.exit_code == 1 and "--data-root DIR or set CATSEG_BENCH_DATA" in _error_text(res)


def test_export_then_check_the_export_root(cli, tmp_path):
    assert cli("datasets", "synth", "paxray4", "--out", tmp_path / "data", "--images", 2).exit_code == 0
    res = cli("datasets", "export", "paxray4", "--data-root", tmp_path / "data", "--to", tmp_path / "hf")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "paxray4.bones", "paxray4.diaphragm", "paxray4.lungs", "paxray4.mediastinum",
    ]
    check = cli("datasets", "check", "paxray4", "--data-root", tmp_path / "hf", "--json")
    assert check.exit_code == 0, check.output
    assert [e["source"] for e in json.loads(check.stdout)["eval_sets"]] == ["export"] * 4


def test_check_decodes_images_by_default_and_headers_only_is_the_fast_look(cli, tmp_path):
    """The reported case: a truncated image passed `check` (headers only) and failed the run."""
    assert cli("datasets", "synth", "pst900", "--out", tmp_path, "--images", 2).exit_code == 0
    image = tmp_path / "PST900_RGBT_Dataset/test/thermal/synth_000.png"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])
    fast = cli("datasets", "check", "pst900", "--data-root", tmp_path, "--headers-only")
    assert fast.exit_code == 0 and "all 1 evaluation set(s) OK" in fast.stdout
    full = cli("datasets", "check", "pst900", "--data-root", tmp_path, "--json")
    assert full.exit_code == 1
    findings = json.loads(full.stdout)["findings"]
    assert [(f["kind"], f["file"]) for f in findings] == [("bad_image", str(image))]
    assert "truncated" in findings[0]["message"]
