"""The parse benchmark's driver works end to end on a tiny input (no timing assertions: figures are noise).

Runs benchmarks/bench_parse.py as `make bench-parse BASELINE=...` does (this checkout's plugins folder as the
baseline), with N=5, one round, without dag-factory and without the diagnostics, and checks the JSON it writes: every measurement compiled exactly N DAGs of the
same shape, the figures are positive numbers, and the targets are reported as booleans or "not measured".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlspec.compiler import TASK_ORDER

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "benchmarks" / "bench_parse.py"
N = 5


def _positive_stats(stats: dict) -> None:
    assert set(stats) == {"median", "min", "max"}
    assert 0 < stats["min"] <= stats["median"] <= stats["max"]


def test_driver_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "parse.json"
    workdir = tmp_path / "work"
    completed = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "--n",
            str(N),
            "--rounds",
            "1",
            "--skip-dagfactory",
            "--no-diagnostics",
            "--out",
            str(out),
            "--workdir",
            str(workdir),
            "--baseline",
            str(REPO / "plugins"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "| mlspec |" in completed.stdout and "| handwritten |" in completed.stdout

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["benchmark"] == "parse"
    assert report["n_specs"] == N and report["rounds"] == 1
    assert set(report["measurements"]) == {
        "mlspec", "mlspec_cached", "handwritten", "mlspec_baseline", "mlspec_baseline_cached",
    }
    for name, measurement in report["measurements"].items():
        assert measurement["dags_per_pass"] == N, name
        assert [raw["dag_counts"] for raw in measurement["raw"]] == [[N, N]], name
        _positive_stats(measurement["per_dag_ms"]["cold"])
        _positive_stats(measurement["per_dag_ms"]["warm"])
        _positive_stats(measurement["airflow_import_ms"])
        assert set(measurement["cpu_per_dag_ms"]["cold"]) == {"median", "min", "max"}
        assert measurement["tool_import_ms"]["min"] >= 0
        shape = measurement["shape"]
        assert [task["task_id"] for task in shape["tasks"]] == list(TASK_ORDER)
        assert all(task["operator"].startswith("mlspec.operators.") for task in shape["tasks"])
        assert shape["schedule"] == "@weekly" and "mlspec" in shape["tags"]

    # The hand-written DAG is the same DAG as mlspec's, field by field.
    assert report["shape_check"]["handwritten_vs_mlspec"] == []
    assert report["measurements"]["mlspec"]["shape"] == report["measurements"]["handwritten"]["shape"]

    for name in ("mlspec_baseline", "mlspec_baseline_cached"):
        assert report["ratios"][f"{name}_over_handwritten"] > 0
    assert report["versions"]["mlspec_baseline"] == str(REPO / "plugins")

    targets = report["targets"]
    hand_ms = report["measurements"]["handwritten"]["per_dag_ms"]["cold"]["median"]
    for name, suffix in (("mlspec", ""), ("mlspec_cached", "_cached")):
        ratio = report["ratios"][f"mlspec_within_1_5x_of_handwritten{suffix}"]
        mlspec_ms = report["measurements"][name]["per_dag_ms"]["cold"]["median"]
        assert abs(ratio - mlspec_ms / hand_ms) < 0.01
        assert targets[f"mlspec_within_1_5x_of_handwritten{suffix}"]["met"] is (ratio <= 1.5)
        assert targets[f"mlspec_2x_faster_than_dagfactory{suffix}"]["met"] is None
    assert targets["all_met"] is None  # one target could not be measured without dag-factory

    assert report["versions"]["airflow"] and report["versions"]["dag_factory"] is None
    assert report["machine"]["cpu_count"] >= 1
    assert report["diagnostics"] == {}
    # Its inputs: N specs that mlspec compiled, and the generated hand-written DAG file.
    assert len(list((workdir / "specs").glob("*.yaml"))) == N
    assert (workdir / "handwritten" / "handwritten_dags.py").is_file()
