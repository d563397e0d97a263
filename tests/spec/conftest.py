"""Spec-test session hooks: the fuzz run's case count, printed at the end and written as JSON on request.

MLSPEC_FUZZ_REPORT=<path> (relative to the repository root; "1" means benchmarks/results/fuzz.json) writes
{"cases": N, "failures": F, "strategies": {...}, ...} after a run that executed any fuzz case.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tests.fixtures.paths import REPO
from tests.spec.fuzz_strategies import FUZZ_STATS

log = logging.getLogger(__name__)
DEFAULT_REPORT = Path("benchmarks") / "results" / "fuzz.json"


def _report_path(raw: str) -> Path:
    path = DEFAULT_REPORT if raw.strip().lower() in ("1", "true", "yes") else Path(raw)
    return path if path.is_absolute() else REPO / path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FUZZ_STATS.total:
        return
    report = FUZZ_STATS.as_report()
    failed = [r.nodeid for r in terminalreporter.stats.get("failed", []) if "test_spec_fuzz" in r.nodeid]
    report["failed_tests"] = len(failed)
    report["pytest_exitstatus"] = int(exitstatus)
    write = terminalreporter.write_line
    terminalreporter.write_sep("-", "mlspec spec fuzz")
    write(
        f"fuzz: {report['cases']} cases in {report['wall_s']} s "
        f"(MLSPEC_FUZZ_EXAMPLES={report['examples_setting']}); "
        f"{report['failures']} property failures"
    )
    for name, counts in report["strategies"].items():
        outcomes = ", ".join(
            f"{k} {v}" for k, v in counts.items() if k not in ("cases", "loader_ms_per_case")
        )
        write(f"  {name}: {counts['cases']} cases, {counts['loader_ms_per_case']} ms each ({outcomes})")
    raw = os.environ.get("MLSPEC_FUZZ_REPORT", "")
    if raw.strip():
        path = _report_path(raw)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        write(f"fuzz report written to {path}")
