"""`benchmarks/device_check.sh --dry-run`: every step of the GPU check runs on the CPU with catseg-tiny.

The script is the first thing run when a GPU is lent; this keeps its plumbing (each step, the JSON,
the summary) working between such occasions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_device_check_dry_run_runs_every_step_and_writes_one_json(tmp_path):
    out = tmp_path / "device_check.json"
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "benchmarks" / "device_check.sh"), "--dry-run", "--out", str(out)],
        env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    record = json.loads(out.read_text())
    assert record["dry_run"] is True
    statuses = {s["step"]: s["status"] for s in record["steps"]}
    assert statuses == {"agreement": "ok", "confusion_cuda": "skipped", "speed_catseg-tiny": "ok", "speed_san-tiny": "ok",
                        "synth_data": "ok", "run": "ok", "torchrun": "ok", "compile": "skipped",
                        "speed_grounded-sam": "skipped", "speed_zsseg-b": "skipped", "speed_ovseg-l": "skipped",
                        "speed_zegformer-b": "skipped"}
    precisions = record["agreement"]["precisions"]
    assert precisions["fp32"]["max_abs_vs_cpu_fp32"] == 0 and precisions["tf32"]["max_abs_vs_cpu_fp32"] == 0
    speed = record["speed"]["catseg-tiny"]
    assert [r["eval_set"] for r in speed["rows"]] == ["deepcrack", "cub_200"]
    assert [r["classes"] for r in speed["rows"]] == [2, 201]
    assert speed["projected_seconds"] == sum(r["projected_seconds"] for r in speed["rows"])
    assert [r["classes"] for r in record["speed"]["san-tiny"]["rows"]] == [2, 201]
    assert set(record["run"]) == {"deepcrack", "suim"} and record["torchrun_equals_single_process"]
    assert "torchrun gives the same mIoU: True" in done.stdout
