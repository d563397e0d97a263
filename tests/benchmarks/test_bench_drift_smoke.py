"""The profiling and drift benchmark's driver works end to end on tiny tables (no timing assertions: figures
are noise): it adds a complete "profile_drift" section to the results file, keeping bench_data.py's part, with
the validate_data task timed as it runs (registry lookup included)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "benchmarks" / "bench_drift.py"


def test_driver_adds_a_complete_section_to_the_results(tmp_path: Path) -> None:
    out = tmp_path / "data.json"
    out.write_text(
        json.dumps({"benchmark": "data", "rows": 2000, "targets": {"all_met": True}}), encoding="utf-8"
    )
    completed = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--rows",
            "3000",
            "--small-rows",
            "300",
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "| large | 3,000 x 20 |" in completed.stdout and "| small | 300 x 20 |" in completed.stdout

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["rows"] == 2000 and report["targets"] == {"all_met": True}  # bench_data.py's part is kept
    section = report["profile_drift"]
    assert set(section["cases"]) == {"large", "small"}
    for name, rows in (("large", 3000), ("small", 300)):
        case = section["cases"][name]
        assert case["rows"] == rows and case["columns"] == 20 and case["seconds"] > 0
        assert set(case["phases"]) == {"profile", "compare", "json", "plot"}
        assert case["imports_seconds"] > 0 and case["bytes"]["drift.png"] > 0
    assert "num_0" in section["cases"]["large"]["drifted_columns"]  # the new rows' unit change is caught
    # The validate_data task itself, registry lookup included: cold (its imports) and warm, on the small table.
    task = section["task"]
    assert task["rows"] == 300 and task["cold_seconds"] > task["warm_seconds"] > 0 and task["parse_imports_seconds"] > 0
    assert task["outcome"] in ("warned", "passed") and "num_0" in task["drifted_columns"]  # its new rows' unit change
    assert "| validate_data task |" in completed.stdout
    targets = section["targets"]
    assert targets["large_within_10s"] is (section["cases"]["large"]["seconds"] <= 10)
    assert targets["small_under_1s"] is (section["cases"]["small"]["seconds"] <= 1)
    assert targets["task_cold_under_1s"] is (task["cold_seconds"] <= 1)
    assert targets["task_warm_under_1s"] is (task["warm_seconds"] <= 1)
    assert targets["all_met"] is all(value for key, value in targets.items() if key != "all_met")
