"""The data benchmark's driver works end to end on a tiny table (no timing assertions: figures are noise).

Runs benchmarks/bench_data.py as `make bench-data` does, with --rows 2000, one round and no warm-up runs, from
CSV, Parquet and PostgreSQL (a real server, as tests/fixtures/postgres.py starts one; without PostgreSQL installed
only the files, when MLSPEC_CI_ALLOW_NO_POSTGRES=1 allows that), and checks the JSON it writes: both variants
trained on the same rows, their ONNX models answer as they do, the figures are positive and the targets are
reported as booleans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.fixtures.postgres import postgres_bin

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "benchmarks" / "bench_data.py"
ROWS = 2000


def _sources() -> list[str]:
    if postgres_bin() is not None:
        return ["csv", "parquet", "postgres"]
    if os.environ.get("MLSPEC_CI_ALLOW_NO_POSTGRES") == "1":
        return ["csv", "parquet"]
    pytest.fail("PostgreSQL is not installed (apt-get install postgresql, as .ci/run does), or set "
                "MLSPEC_CI_ALLOW_NO_POSTGRES=1 to measure the files only")


def test_driver_writes_a_complete_report(tmp_path: Path) -> None:
    sources = _sources()
    out = tmp_path / "data.json"
    completed = subprocess.run(
        [
            sys.executable, str(DRIVER), "--rows", str(ROWS), "--rounds", "1", "--sources", ",".join(sources),
            "--out", str(out), "--workdir", str(tmp_path / "work"), "--no-warmup",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "| csv | mlspec |" in completed.stdout and "| csv | handwritten |" in completed.stdout

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["benchmark"] == "data" and report["rows"] == ROWS and report["rounds"] == 1
    assert list(report["cases"]) == sources
    for kind, case in report["cases"].items():
        train_rows = {variant: case[variant]["raw"][0]["train_rows"] for variant in ("handwritten", "mlspec")}
        assert train_rows["handwritten"] == train_rows["mlspec"] == int(ROWS * 0.7), (kind, train_rows)
        for variant in ("handwritten", "mlspec"):
            figures = case[variant]
            assert figures["rows_per_second"] > 0 and figures["seconds"] > 0, (kind, variant)
            assert figures["peak_rss_mib"] > 0 and figures["onnx_agrees"] is True, (kind, variant)
            assert 0.6 < figures["test_accuracy"] <= 1.0, (kind, variant, figures["test_accuracy"])
            assert {"import", "fit", "export"} <= set(figures["phases"]), (kind, variant)
        ratios = case["ratios"]
        assert abs(ratios["time"] - case["mlspec"]["seconds"] / case["handwritten"]["seconds"]) < 0.01
        assert report["targets"][f"{kind}_time_within_1.3x"] is (ratios["time"] <= 1.3)
        assert report["targets"][f"{kind}_memory_within_1.5x"] is (ratios["memory"] <= 1.5)
    small = report["small_prepare"]
    assert small["train_rows"] == 700 and small["seconds"] > 0
    assert report["targets"]["small_prepare_under_2s"] is (small["seconds"] < 2.0)
    targets = report["targets"]
    assert targets["all_met"] is all(met for name, met in targets.items() if name != "all_met")
    # The generated table is cached for the next run.
    assert (tmp_path / "work" / f"table-{ROWS}-v1" / "table.parquet").is_file()
