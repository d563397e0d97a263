"""The serving benchmark's driver works end to end on a tiny run (no timing assertions: figures are noise).

Runs benchmarks/bench_serve.py as `make bench-serve` does, with --quick (one round of half a second),
two of its cases and the load test shortened, and checks the JSON it writes: every case was answered
without errors and carries its limit, ratio and peers; the load test reports both batches.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "benchmarks" / "bench_serve.py"
CASES = ["digits b1 c8 json", "cifar b16 c8 binary"]


def test_driver_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "serve.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--quick",
            "--load-test",
            "--cases",
            ",".join(CASES),
            "--output",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [case["case"] for case in report["cases"]] == CASES
    for case in report["cases"]:
        assert case["errors"] == 0 and case["req_s"] > 0
        assert case["limit_rows_s"] > 0 and case["ratio_to_limit"] > 0
        assert (
            case["rows_s"] == case["req_s"] * case["batch"]
            or abs(case["rows_s"] - case["req_s"] * case["batch"]) < 1
        )
        assert len(case["runs"]) == 1
    assert report["cases"][1]["peers_req_s_from_performance_md"]["triton"] == 298
    assert report["rss_mib_idle"] > 0 and set(report["breakdown_us"]) == {
        "digits b1 json",
        "cifar b16 binary",
    }
    runs = report["load_test"]["runs"]
    assert [run["batch"] for run in runs] == [1, 32] and report["load_test"]["connections"] == 50
    assert all(run["requests"] > 0 and run["errors"] == 0 and run["rss_mib_after"] > 0 for run in runs)
    assert "| digits b1 c8 json |" in completed.stdout


def test_a_baseline_run_reports_both_servers_cpu_per_request(tmp_path: Path) -> None:
    """`make bench-serve BASELINE=<commit>`: the other checkout's server runs interleaved with this one, and each
    case carries both servers' CPU per request and the change (here the baseline is this very checkout)."""
    out = tmp_path / "serve_vs_baseline.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--quick",
            "--cases",
            "digits b1 c8 json",
            "--baseline",
            str(REPO / "plugins"),
            "--output",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    (case,) = json.loads(out.read_text())["cases"]
    assert len(case["runs"]) == len(case["baseline_runs"]) == 1
    assert case["server_cpu_us_per_req"] > 0 and case["baseline_server_cpu_us_per_req"] > 0
    assert isinstance(case["server_cpu_change_pct"], float)
    assert "now vs before" in completed.stdout and " % |" in completed.stdout
